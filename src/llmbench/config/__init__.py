"""The run's configuration: options, the one settings resolver, the matrix, built-in models, the combination."""
