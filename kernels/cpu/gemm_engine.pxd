# Row-major GEMM on either engine, for kernel modules that call it from their own OpenMP
# threads (`from gemm_engine cimport GEMM_BLAS, gemm_on`): SciPy's BLAS (blas.pxd's
# gemm_rowmajor, with BLAS held to one thread by the caller) or fastnn's blocked GEMM
# (gemm_blocked.h) on the calling thread.  Which one is faster depends on the shape and
# the CPU; the caller's autotuned algorithm choice decides.  Callers check shapes and
# strides first.
from cython cimport floating
from libc.string cimport memset

from blas cimport gemm_rowmajor
from gemm_blocked cimport fnn_gemm_args, fnn_gemm_f32, fnn_gemm_f64

#: The engine code for SciPy's BLAS; any other code is the blocked kernel's variant
#: (gemm_blocked.h's FNN_GEMM_*: fastnn._isa.level_code("gemm")).
cdef enum:
    GEMM_BLAS = -2


cdef inline void gemm_on(
    int engine, bint trans_a, bint trans_b, int m, int n, int k,
    floating alpha, const floating* a, int lda, const floating* b, int ldb,
    floating beta, floating* c, int ldc,
) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C for row-major C (m x n, row stride ldc), as
    gemm_rowmajor, on the engine `engine` names: BLAS, or the blocked kernel on this
    thread (BLAS too when that cannot allocate its packing buffers, which it does before
    writing anything).  beta == 0 means C is not read."""
    cdef fnn_gemm_args g
    cdef Py_ssize_t i, j
    cdef int status
    if engine == GEMM_BLAS or m == 0 or n == 0:
        gemm_rowmajor(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    memset(&g, 0, sizeof(g))
    g.m, g.n, g.k = m, n, k
    g.a, g.b = a, b
    g.a_rs = 1 if trans_a else lda
    g.a_cs = lda if trans_a else 1
    g.b_rs = 1 if trans_b else ldb
    g.b_cs = ldb if trans_b else 1
    g.alpha = alpha
    g.out, g.ldo = c, ldc
    if beta != 0:
        g.accumulate = 1
        if beta != 1:
            for i in range(m):
                for j in range(n):
                    c[i * ldc + j] *= beta
    if floating is float:
        status = fnn_gemm_f32(&g, 1, engine)
    else:
        status = fnn_gemm_f64(&g, 1, engine)
    if status != 0:
        gemm_rowmajor(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, 1 if beta != 0 else 0,
                      c, ldc)
