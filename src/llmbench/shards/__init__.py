"""Splitting the matrix over CI runners and merging their saved runs."""
