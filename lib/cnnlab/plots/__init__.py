"""Matplotlib figures the course shows. Every function returns a ``matplotlib.figure.Figure``."""
