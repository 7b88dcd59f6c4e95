# Row-major GEMM through SciPy's Fortran BLAS (scipy.linalg.cython_blas), for any kernel
# module: `from blas cimport gemm_rowmajor`.  Callers check shapes and strides first.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm


cdef inline void gemm_rowmajor(
    bint trans_a, bint trans_b, int m, int n, int k,
    floating alpha, const floating* a, int lda, const floating* b, int ldb,
    floating beta, floating* c, int ldc,
) noexcept nogil:
    """C = alpha * op(A) @ op(B) + beta * C for row-major C (m x n, row stride ldc).

    op(A) is m x k and op(B) is k x n; lda / ldb are the row strides (in elements) of A
    and B as stored.  Fortran BLAS is column-major, and a row-major matrix is the
    transpose of a column-major one, so we compute C^T = op(B)^T @ op(A)^T by passing
    the operands swapped.  beta == 0 means C is not read (NaN in it is ignored).
    """
    cdef char ta = b"T" if trans_b else b"N"
    cdef char tb = b"T" if trans_a else b"N"
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)
