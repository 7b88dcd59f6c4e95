"""Tests of fastnn.distributed: in-process parts and jobs under mpiexec."""
