"""Reports of saved runs: tables, plots, the HTML page and the markdown summary, exports."""
