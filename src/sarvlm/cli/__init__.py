"""Thin command-line layer over the Python API: one module per verb."""
