# Row-major GEMM through SciPy's Fortran BLAS (scipy.linalg.cython_blas), for any kernel
# module: `from blas cimport gemm_rowmajor`.  Callers check shapes and strides first.
# Products with one row or one column go to gemv.
from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv


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
    if (n == 1 or m == 1) and k > 0:  # a matrix-vector product: BLAS's gemv kernel
        gemv_rowmajor(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef inline void _gemv(char trans, int rows, int cols, floating alpha, const floating* a,
                       int lda, const floating* x, int incx, floating beta, floating* y,
                       int incy) noexcept nogil:
    """Fortran gemv: y = alpha * op(A) @ x + beta * y, A column-major rows x cols."""
    if floating is float:
        sgemv(&trans, &rows, &cols, &alpha, <float*>a, &lda, <float*>x, &incx, &beta, y, &incy)
    else:
        dgemv(&trans, &rows, &cols, &alpha, <double*>a, &lda, <double*>x, &incx, &beta, y,
              &incy)


cdef inline void gemv_rowmajor(
    bint trans_a, bint trans_b, int m, int n, int k,
    floating alpha, const floating* a, int lda, const floating* b, int ldb,
    floating beta, floating* c, int ldc,
) noexcept nogil:
    """gemm_rowmajor for a result with one column (n == 1) or one row (m == 1), as one
    gemv: GEMM kernels run a single column at a fraction of their speed.  A row-major
    matrix with row stride ld is the column-major transpose with leading dimension ld."""
    cdef char no = b"N", yes = b"T"
    if n == 1:  # c[:, 0] = op(A) @ op(B)[:, 0]; op(B)'s column has stride 1 or ldb
        if trans_a:  # A stored (k, m): column-major (m, k) is op(A)
            _gemv(no, m, k, alpha, a, lda, b, 1 if trans_b else ldb, beta, c, ldc)
        else:  # A stored (m, k): column-major (k, m) is op(A)^T
            _gemv(yes, k, m, alpha, a, lda, b, 1 if trans_b else ldb, beta, c, ldc)
    else:  # m == 1: c[0, :]^T = op(B)^T @ op(A)[0, :]^T; op(A)'s row has stride 1 or lda
        if trans_b:  # B stored (n, k): column-major (k, n) is op(B)
            _gemv(yes, k, n, alpha, b, ldb, a, lda if trans_a else 1, beta, c, 1)
        else:  # B stored (k, n): column-major (n, k) is op(B)^T
            _gemv(no, n, k, alpha, b, ldb, a, lda if trans_a else 1, beta, c, 1)
