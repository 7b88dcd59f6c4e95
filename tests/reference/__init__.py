"""Tests of the plain-NumPy reference backend against textbook formulas and PyTorch."""
