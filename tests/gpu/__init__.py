"""Tests of CuPy code on the CPU stand-in, and nvcc compile checks of the CUDA sources."""
