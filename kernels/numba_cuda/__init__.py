"""numba-cuda kernels (@cuda.jit): device code only; launch code lives in fastnn/backends/numba_cuda."""
