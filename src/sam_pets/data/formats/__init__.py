"""On-disk formats: one module per format, pure ``read_*`` / ``write_*`` functions."""
