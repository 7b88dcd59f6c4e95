"""Tests of the CPU backend (Cython kernels), its ISA levels, algorithm choice and tuning."""
