"""Tests of the numba-cuda backend under the Numba CUDA simulator (own pytest process)."""
