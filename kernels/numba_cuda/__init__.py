"""numba-cuda kernels (@cuda.jit): device code only.

The launch code (allocation, launch sizes, registration with the dispatcher) lives in
fastnn/_backends/numba_cuda/.
"""
