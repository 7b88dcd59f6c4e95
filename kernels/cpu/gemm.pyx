# GEMM for the CPU backend, two engines behind one calling style:
#
#   blocked(...)  fastnn's packed, cache-blocked GEMM (gemm_blocked.h) with a fused
#                 epilogue: bias + activation, or a multiply by the activation's
#                 derivative at a pre-activation u.  Any strides, no copies.
#   blas(...)     SciPy's sgemm/dgemm (blas.pxd); operands with no unit stride are copied.
#                 With several threads the result is split into row (or column) blocks,
#                 one single-threaded BLAS call per block in our own OpenMP region: the
#                 caller pins SciPy's BLAS to one thread (fastnn._threads.limit_blas_threads),
#                 so no OpenBLAS worker is left spinning on a core the next kernel needs.
#   epilogue(...) the epilogue alone, in place, on a result the caller owns (after blas).
#
# a and b are 2-d float arrays of one dtype, op(a) = a.T if trans_a (likewise b); the
# Python layer (fastnn/ops/dense.py) has checked dtypes and that the shapes chain.
import time

import numpy as np

cimport numpy as cnp

cimport dense_arrays as da
from blas cimport gemm_rowmajor
from cython.parallel cimport prange
from libc.math cimport INFINITY
cimport openmp

cnp.import_array()

from fastnn.kernels.cpu.output_cache import HANDLER as _CACHE, MIN_BYTES as _CACHE_MIN

#: Results of at least this many bytes come from fastnn's output cache (output_cache.h).
cdef Py_ssize_t _cache_min = _CACHE_MIN

from gemm_blocked cimport (
    fnn_gemm_flops_per_thread,
    fnn_gemm_short_k,
    fnn_epilogue,
    fnn_gemm_args,
    fnn_gemm_f32,
    fnn_gemm_f64,
    fnn_epilogue_f32,
    fnn_epilogue_f64,
    fnn_gemm_variant,
    FNN_GEMM_AUTO,
    FNN_GEMM_GENERIC,
    FNN_GEMM_AVX2,
    FNN_GEMM_AVX512,
    FNN_GEMM_WIDE_GENERIC,
    FNN_GEMM_AVX512_T32,
    FNN_GEMM_AVX512_T48,
)

include "gemm_tuning.pxi"  # set_t48_time, t48_time

#: Instruction-set variants of the blocked GEMM, for tests and benchmarks.
VARIANTS = {
    "auto": FNN_GEMM_AUTO,
    "generic": FNN_GEMM_GENERIC,
    "avx2": FNN_GEMM_AVX2,
    "avx512": FNN_GEMM_AVX512,
    "wide-generic": FNN_GEMM_WIDE_GENERIC,
    "avx512-t32": FNN_GEMM_AVX512_T32,  # AVX-512 with one register tile, forced
    "avx512-t48": FNN_GEMM_AVX512_T48,
}
_VARIANT_NAMES = {code: name for name, code in VARIANTS.items()}

cdef Py_ssize_t INT_MAX = 2147483647


def flops_per_thread():
    """Flops per thread below which the blocked kernel and the BLAS path stay on fewer
    threads (a second thread would not pay for its wake-up)."""
    return fnn_gemm_flops_per_thread


def set_flops_per_thread(double flops):
    """Set :func:`flops_per_thread` (fastnn/_backends/cpu/gemm.py measures it)."""
    global fnn_gemm_flops_per_thread
    if not flops > 0:
        raise ValueError(f"flops per thread must be positive, got {flops}")
    fnn_gemm_flops_per_thread = flops


def short_k():
    """Reductions up to this long run the unpacked path (no packing, no register tiles)."""
    return fnn_gemm_short_k


def set_short_k(Py_ssize_t k):
    """Set :func:`short_k` (fastnn/_backends/cpu/gemm.py measures it; -1 turns it off)."""
    global fnn_gemm_short_k
    fnn_gemm_short_k = k


def fork_join_seconds(int threads, int reps):
    """The cheapest of ``reps`` empty OpenMP parallel regions of ``threads`` threads, in
    seconds: what a split has to save before it pays."""
    cdef double best = 1e30, t0, t1
    cdef int r, i
    cdef int sink = 0
    with nogil:
        for r in range(reps):
            t0 = openmp.omp_get_wtime()
            for i in prange(threads, num_threads=threads, schedule="static"):
                sink += i
            t1 = openmp.omp_get_wtime()
            if t1 - t0 < best:
                best = t1 - t0
    return best


def variant_name(int requested=-1):
    """The variant that runs for `requested` on this CPU (e.g. "avx2")."""
    return _VARIANT_NAMES[fnn_gemm_variant(requested)]


cdef object _strided(object x):
    """x when its strides are whole elements and its data aligned, else a copy."""
    cdef cnp.ndarray arr = <cnp.ndarray>x
    cdef Py_ssize_t size = cnp.PyArray_ITEMSIZE(arr)
    if (cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_STRIDE(arr, 0) % size == 0
            and (cnp.PyArray_NDIM(arr) < 2 or cnp.PyArray_STRIDE(arr, 1) % size == 0)):
        return arr
    return np.ascontiguousarray(arr)


cdef inline Py_ssize_t _stride(cnp.ndarray x, int axis):
    return cnp.PyArray_STRIDE(x, axis) // cnp.PyArray_ITEMSIZE(x)


cdef int _set_operands(fnn_gemm_args* g, cnp.ndarray a, cnp.ndarray b, bint trans_a,
                       bint trans_b) except -1:
    """Check a and b (2-d, one float dtype, matching inner dimensions) and point g at
    them; returns their typenum."""
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"gemm: expected float32 or float64, got {a.dtype}")
    if cnp.PyArray_TYPE(b) != typenum or cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_NDIM(b) != 2:
        raise ValueError("gemm: a and b must be 2-d arrays of one dtype")
    g.m = cnp.PyArray_DIM(a, 1) if trans_a else cnp.PyArray_DIM(a, 0)
    g.k = cnp.PyArray_DIM(a, 0) if trans_a else cnp.PyArray_DIM(a, 1)
    g.n = cnp.PyArray_DIM(b, 0) if trans_b else cnp.PyArray_DIM(b, 1)
    g.a = cnp.PyArray_DATA(a)
    g.b = cnp.PyArray_DATA(b)
    g.a_rs, g.a_cs = (_stride(a, 1), _stride(a, 0)) if trans_a else (_stride(a, 0), _stride(a, 1))
    g.b_rs, g.b_cs = (_stride(b, 1), _stride(b, 0)) if trans_b else (_stride(b, 0), _stride(b, 1))
    g.accumulate = 0
    if (cnp.PyArray_DIM(b, 1) if trans_b else cnp.PyArray_DIM(b, 0)) != g.k:
        raise ValueError("gemm: inner dimensions differ")
    return typenum


def blocked(a, b, c=None, double alpha=1.0, double beta=0.0, bint trans_a=False,
            bint trans_b=False, int act=0, bias=None, u=None, int num_threads=1,
            int variant=-1):
    """A new C-contiguous (m, n) array from fastnn's blocked GEMM:

        u is None:  act(alpha * op(a) @ op(b) + beta * c + bias)
        u given:    (alpha * op(a) @ op(b) + beta * c) * act'(u)

    c: None or an array broadcast to (m, n) (read only when beta != 0); bias: None or
    (n,); u: (m, n); act: an activation code (kernels/cpu/activation.pyx).
    """
    return _blocked(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, num_threads,
                    variant)


cdef object _blocked(a, b, c, double alpha, double beta, bint trans_a, bint trans_b,
                     int act, bias, u, int num_threads, int variant):
    """:func:`blocked` without its Python argument parsing."""
    cdef fnn_gemm_args g
    cdef cnp.ndarray ac = _strided(a), bc = _strided(b), cc, out, bias_c, u_c
    cdef int typenum, status
    typenum = _set_operands(&g, ac, bc, trans_a, trans_b)
    out = da.empty_2d_cached(g.m, g.n, typenum, _CACHE, _cache_min)
    if alpha == 0.0:
        g.k = 0  # as in BLAS: a zero alpha means a and b are not read (NaN in them ignored)
    g.alpha = alpha
    g.beta = beta
    g.out = cnp.PyArray_DATA(out)
    g.ldo = g.n
    g.c = NULL
    g.c_rs = g.c_cs = 0
    if c is not None and beta != 0.0:
        cc = _strided(np.broadcast_to(c, (g.m, g.n)))
        if cnp.PyArray_TYPE(cc) != typenum:
            raise ValueError("gemm: c must have the dtype of a")
        g.c = cnp.PyArray_DATA(cc)
        g.c_rs = _stride(cc, 0)
        g.c_cs = _stride(cc, 1)
    g.epi.act = act
    g.epi.derivative = 0
    g.epi.bias = NULL
    g.epi.u = NULL
    g.epi.ldu = 0
    if bias is not None:
        bias_c = da.carray(bias)
        if not (cnp.PyArray_SIZE(bias_c) == g.n and cnp.PyArray_TYPE(bias_c) == typenum):
            raise ValueError(f"gemm: bias must hold {g.n} values of the dtype of a")
        g.epi.bias = cnp.PyArray_DATA(bias_c)
    if u is not None:
        u_c = da.carray(u)
        if not (cnp.PyArray_SIZE(u_c) == g.m * g.n and cnp.PyArray_TYPE(u_c) == typenum):
            raise ValueError(f"gemm: u must be ({g.m}, {g.n}) of the dtype of a")
        g.epi.derivative = 1
        g.epi.u = cnp.PyArray_DATA(u_c)
        g.epi.ldu = g.n
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            status = fnn_gemm_f32(&g, num_threads, variant)
        else:
            status = fnn_gemm_f64(&g, num_threads, variant)
    if status != 0:
        raise MemoryError("gemm: cannot allocate the packing buffers")
    return out


# ---- plain products on a remembered engine (the lean path of fastnn.gemm) -------------
#
# (m, n, k, trans_a, trans_b, typenum, threads, generation) -> (BLAS?, threads to run on,
# blocked variant, until): what fastnn/_backends/cpu/_gemm.py chose for the plain product
# op(a) @ op(b) of that shape, so that a later product of the shape costs one dictionary
# lookup above its kernel.
cdef dict _plain_engines = {}
cdef Py_ssize_t _PLAIN_LIMIT = 4096
# The clock of the deadlines below (gemm.py hands over its own, which tests replace).
cdef object _clock = time.monotonic


def set_clock(clock):
    """Read the time of the lean paths' deadlines (``until`` of :func:`remember_plain` and
    :func:`remember_linear`) from ``clock()`` (seconds, monotonic)."""
    global _clock
    _clock = clock


# The context manager that pins SciPy's BLAS to one thread (fastnn._threads's
# limit_blas_threads(), handed over by gemm.py): a lean BLAS call split over the team runs
# inside it, as the general path's does.
cdef object _blas_pin = None


def set_blas_pin(pin):
    """Split the lean paths' BLAS products over the team inside ``pin`` (a context
    manager pinning SciPy's BLAS to one thread); None: they run as one BLAS call."""
    global _blas_pin
    _blas_pin = pin


cdef object _lean_blas(cnp.ndarray a, cnp.ndarray b, bint trans_a, bint trans_b,
                       int threads):
    """A new C-contiguous op(a) @ op(b) through SciPy's BLAS as gemm.py's general path
    runs it on ``threads``: row or column blocks, one BLAS call each on the team, with
    the BLAS pinned to one thread, when :func:`blas_threads` splits the product; else one
    call on the BLAS as it is."""
    cdef Py_ssize_t m = cnp.PyArray_DIM(a, 1 if trans_a else 0)
    cdef Py_ssize_t k = cnp.PyArray_DIM(a, 0 if trans_a else 1)
    cdef Py_ssize_t n = cnp.PyArray_DIM(b, 0 if trans_b else 1)
    if threads > 1 and _blas_pin is not None and blas_threads(m, n, k, threads) != 1:
        with _blas_pin:
            return blas(a, b, None, 1.0, 0.0, trans_a, trans_b, threads)
    return blas(a, b, None, 1.0, 0.0, trans_a, trans_b, 1)


cdef int _lean_pair(a, b, int a_axis, int b_axis):
    """The typenum of a and b when both are 2-d NumPy arrays (no subclass) of one
    native-order float dtype with a's size along ``a_axis`` equal to b's along ``b_axis``,
    else -1: what a lean path runs without the Python checks."""
    if type(a) is not cnp.ndarray or type(b) is not cnp.ndarray:
        return -1
    cdef cnp.ndarray ac = <cnp.ndarray>a, bc = <cnp.ndarray>b
    cdef int typenum = cnp.PyArray_TYPE(ac)
    if (cnp.PyArray_NDIM(ac) != 2 or cnp.PyArray_NDIM(bc) != 2
            or cnp.PyArray_TYPE(bc) != typenum
            or (typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE)
            or cnp.PyArray_DIM(ac, a_axis) != cnp.PyArray_DIM(bc, b_axis)
            or not (cnp.PyArray_ISNOTSWAPPED(ac) and cnp.PyArray_ISNOTSWAPPED(bc))):
        return -1
    return typenum


def remember_plain(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int typenum, int threads,
                   generation, bint use_blas, int run_threads, int variant,
                   double until=INFINITY, bint trans_a=False, bint trans_b=False):
    """Run the plain products op(a) (m x k) @ op(b) (k x n), op transposing a and b as
    ``trans_a`` and ``trans_b`` say, of dtype ``typenum`` asked for with ``threads``
    threads under autotune ``generation`` through :func:`plain` from now on (until the
    clock reads ``until``: the engine's next re-timing is due then): through SciPy's BLAS
    (``use_blas``: split over ``run_threads`` where :func:`blas_threads` says so, else one
    call), or on the blocked kernel at ``variant`` with ``run_threads`` threads."""
    if len(_plain_engines) >= _PLAIN_LIMIT:
        _plain_engines.clear()
    _plain_engines[(m, n, k, trans_a, trans_b, typenum, threads, generation)] = (
        use_blas, run_threads, variant, until)


def forget_plain():
    """Forget every engine :func:`remember_plain` was told (the choices or the kernels'
    settings changed)."""
    _plain_engines.clear()


def plain(a, b, int threads, generation, bint trans_a=False, bint trans_b=False):
    """A new C-contiguous ``op(a) @ op(b)`` (op transposing as ``trans_a`` and
    ``trans_b`` say) on the engine remembered for its shape, dtype, ``threads`` and
    ``generation``; None when there is none, or when a and b are not 2-d NumPy arrays of
    one native-order float dtype whose shapes chain (the caller then takes the general
    path, which checks and reports)."""
    cdef int typenum = _lean_pair(a, b, 0 if trans_a else 1, 1 if trans_b else 0)
    if typenum < 0:
        return None
    cdef cnp.ndarray ac = <cnp.ndarray>a, bc = <cnp.ndarray>b
    cdef double until
    key = (cnp.PyArray_DIM(ac, 1 if trans_a else 0), cnp.PyArray_DIM(bc, 0 if trans_b else 1),
           cnp.PyArray_DIM(ac, 0 if trans_a else 1), trans_a, trans_b, typenum, threads,
           generation)
    entry = _plain_engines.get(key)
    if entry is None:
        return None
    use_blas, run_threads, variant, until = <tuple>entry
    if until != INFINITY and _clock() >= until:
        # a re-timing is due: the general path runs it, and hands the verdict over again
        # if this path can run it (a BLAS call split over the team cannot)
        del _plain_engines[key]
        return None
    if use_blas:
        return _lean_blas(ac, bc, trans_a, trans_b, run_threads)
    return _blocked(ac, bc, None, 1.0, 0.0, trans_a, trans_b, 0, None, None, run_threads,
                    variant)


# ---- dense layers on a remembered way (the lean path of fastnn.linear) -------------------
#
# (m, n, k, typenum, has bias, activation name, threads, generation) ->
# (way, activation code, threads to run on, blocked variant, the loops' kernel), way one
# of the LINEAR_* codes below.
cdef dict _linear_ways = {}

#: How a remembered dense layer runs: dense.pyx's plain loops (the kernel handed over),
#: the blocked GEMM with the bias and activation in its epilogue, or one single-thread
#: BLAS call followed by the epilogue.
LINEAR_LOOPS, LINEAR_BLOCKED, LINEAR_BLAS = 0, 1, 2


def remember_linear(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int typenum, bint has_bias,
                    activation, int threads, generation, int way, int act, int run_threads,
                    int variant, loops=None, double until=INFINITY):
    """Run the dense layers act(x @ w.T + b) with x (m, k), w (n, k) of dtype ``typenum``,
    a bias or not, the activation named ``activation`` (kernel code ``act``), asked for
    with ``threads`` threads under autotune ``generation``, through :func:`linear` from
    now on (until the clock reads ``until``, as in :func:`remember_plain`), the way ``way``
    says (``loops``: the plain loops' kernel, loops(x, w, b, act))."""
    if len(_linear_ways) >= _PLAIN_LIMIT:
        _linear_ways.clear()
    _linear_ways[(m, n, k, typenum, has_bias, activation, threads, generation)] = (
        way, act, run_threads, variant, loops, until)


def forget_linear():
    """Forget every dense layer :func:`remember_linear` was told."""
    _linear_ways.clear()


def linear(x, w, b, activation, int threads, generation):
    """A new C-contiguous act(x @ w.T + b) the way remembered for the layer's sizes,
    dtype, bias, ``activation`` (its name), ``threads`` and ``generation``; None when
    there is none, or when x (m, k), w (n, k) and b (None or (n,)) are not NumPy arrays of
    one native-order float dtype of those shapes (the caller then takes the general
    path, which checks and reports)."""
    if activation is not None and type(activation) is not str:
        return None
    cdef int typenum = _lean_pair(x, w, 1, 1)
    if typenum < 0:
        return None
    cdef cnp.ndarray xc = <cnp.ndarray>x, wc = <cnp.ndarray>w, bc
    cdef double until
    cdef Py_ssize_t n = cnp.PyArray_DIM(wc, 0)
    if b is not None:
        if type(b) is not cnp.ndarray:
            return None
        bc = <cnp.ndarray>b
        if (cnp.PyArray_NDIM(bc) != 1 or cnp.PyArray_DIM(bc, 0) != n
                or cnp.PyArray_TYPE(bc) != typenum or not cnp.PyArray_ISNOTSWAPPED(bc)):
            return None
    key = (cnp.PyArray_DIM(xc, 0), n, cnp.PyArray_DIM(xc, 1), typenum, b is not None,
           activation, threads, generation)
    entry = _linear_ways.get(key)
    if entry is None:
        return None
    way, act, run_threads, variant, loops, until = <tuple>entry
    if until != INFINITY and _clock() >= until:
        del _linear_ways[key]  # as in plain
        return None
    if way == LINEAR_LOOPS:
        return loops(xc, wc, b, act)
    if way == LINEAR_BLOCKED:
        return _blocked(xc, wc, None, 1.0, 0.0, False, True, act, b, None, run_threads,
                        variant)
    out = _lean_blas(xc, wc, False, True, run_threads)
    if act != 0 or b is not None:
        epilogue(out, act, b, None, run_threads)
    return out


cdef tuple _blas_operand(cnp.ndarray x, bint trans):
    """(array, transpose flag, row stride) describing op(x) to a row-major BLAS call
    without a copy when x has a unit stride along one axis, else with one."""
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), cols = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t s0 = _stride(x, 0), s1 = _stride(x, 1)
    if s1 == 1 and s0 >= max(1, cols) and s0 <= INT_MAX:
        return x, trans, s0
    if s0 == 1 and s1 >= max(1, rows) and s1 <= INT_MAX:
        return x.T, not trans, s1
    return np.ascontiguousarray(x), trans, max(1, cols)


def blas_fits(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """Whether the sizes fit the 32-bit integers of the BLAS interface."""
    return max(m, n, k) < INT_MAX


#: Block boundaries of a split BLAS call fall on multiples of this many rows / columns.
cdef int BLAS_SPLIT_ALIGN = 16


cdef void _blas_block(bint is_float, bint ta, bint tb, int m, int n, int k, double alpha,
                      const char* a, int lda, const char* b, int ldb, double beta, char* c,
                      int ldc, bint by_rows, int start, int stop) noexcept nogil:
    """Rows (by_rows) or columns [start, stop) of the row-major product, in one BLAS call."""
    cdef Py_ssize_t item = sizeof(float) if is_float else sizeof(double)
    if by_rows:
        a = a + item * (<Py_ssize_t>start if ta else <Py_ssize_t>start * lda)
        c = c + item * <Py_ssize_t>start * ldc
        m = stop - start
    else:
        b = b + item * (<Py_ssize_t>start * ldb if tb else <Py_ssize_t>start)
        c = c + item * <Py_ssize_t>start
        n = stop - start
    if is_float:
        gemm_rowmajor(ta, tb, m, n, k, <float>alpha, <const float*>a, lda,
                      <const float*>b, ldb, <float>beta, <float*>c, ldc)
    else:
        gemm_rowmajor(ta, tb, m, n, k, alpha, <const double*>a, lda,
                      <const double*>b, ldb, beta, <double*>c, ldc)


def blas(a, b, c=None, double alpha=1.0, double beta=0.0, bint trans_a=False,
         bint trans_b=False, int num_threads=1):
    """A new C-contiguous alpha * op(a) @ op(b) + beta * c from SciPy's BLAS.  c: None
    or an array broadcast to (m, n).  Sizes must satisfy blas_fits.

    num_threads > 1 splits the result into up to that many row (or, for a wide result,
    column) blocks computed in parallel, one BLAS call each, when there is work for them
    (:func:`blas_threads`): call it with SciPy's BLAS pinned to one thread then
    (fastnn._threads.limit_blas_threads)."""
    cdef fnn_gemm_args g
    cdef cnp.ndarray ac = _strided(a), bc = _strided(b), out
    cdef int typenum, m, n, k, lda, ldb
    cdef bint ta, tb
    typenum = _set_operands(&g, ac, bc, trans_a, trans_b)
    if not blas_fits(g.m, g.n, g.k):
        raise ValueError("gemm: sizes too large for the BLAS interface")
    m, n, k = g.m, g.n, g.k
    out = da.empty_2d_cached(m, n, typenum, _CACHE, _cache_min)
    if c is not None and beta != 0.0:
        out[...] = c
    else:
        beta = 0.0
    if m == 0 or n == 0:
        return out
    if k == 0 or alpha == 0.0:  # nothing to multiply, or a and b not to be read
        if beta == 0.0:
            out.fill(0)
        elif beta != 1.0:
            out *= beta
        return out
    ac, ta, lda = _blas_operand(ac, trans_a)
    bc, tb, ldb = _blas_operand(bc, trans_b)
    cdef const char* ap = <const char*>cnp.PyArray_DATA(ac)
    cdef const char* bp = <const char*>cnp.PyArray_DATA(bc)
    cdef char* op = <char*>cnp.PyArray_DATA(out)
    cdef bint is_float = typenum == cnp.NPY_FLOAT, by_rows = m >= n
    cdef int split = m if by_rows else n, p, parts
    cdef double flops = 2.0 * m * n * k
    parts = min(max(num_threads, 1), (split + BLAS_SPLIT_ALIGN - 1) // BLAS_SPLIT_ALIGN)
    parts = min(parts, max(1, <int>(flops / fnn_gemm_flops_per_thread)))
    with nogil:
        if parts <= 1:
            _blas_block(is_float, ta, tb, m, n, k, alpha, ap, lda, bp, ldb, beta, op, n,
                        True, 0, m)
        else:
            for p in prange(parts, num_threads=parts, schedule="static"):
                _blas_block(is_float, ta, tb, m, n, k, alpha, ap, lda, bp, ldb, beta, op, n,
                            by_rows, _split_point(split, parts, p),
                            _split_point(split, parts, p + 1))
    return out


def blas_threads(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int num_threads):
    """How many parallel BLAS calls :func:`blas` makes for an (m x k) @ (k x n) product
    (1: a single call, outside any parallel region)."""
    cdef Py_ssize_t split = m if m >= n else n
    cdef int parts = <int>min(max(num_threads, 1), (split + BLAS_SPLIT_ALIGN - 1) // BLAS_SPLIT_ALIGN)
    return max(1, min(parts, <int>(2.0 * m * n * k / fnn_gemm_flops_per_thread)))


cdef inline int _split_point(int total, int parts, int p) noexcept nogil:
    """Start of block p of `parts` over `total` rows, on a BLAS_SPLIT_ALIGN boundary."""
    if p >= parts:
        return total
    return <int>(<long long>total * p // parts) // BLAS_SPLIT_ALIGN * BLAS_SPLIT_ALIGN


def epilogue(out, int act=0, bias=None, u=None, int num_threads=1):
    """In place on the C-contiguous (m, n) `out` the caller owns: out = act(out + bias),
    or out = out * act'(u) when u is given.  Returns out."""
    cdef cnp.ndarray o = <cnp.ndarray?>out, bias_c, u_c
    cdef fnn_epilogue e
    cdef int typenum = cnp.PyArray_TYPE(o)
    cdef Py_ssize_t m = cnp.PyArray_DIM(o, 0), n = cnp.PyArray_DIM(o, 1)
    if not (cnp.PyArray_IS_C_CONTIGUOUS(o) and cnp.PyArray_ISWRITEABLE(o)
            and cnp.PyArray_NDIM(o) == 2
            and (typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE)):
        raise ValueError("epilogue: out must be a writeable C-contiguous float matrix")
    e.act = act
    e.derivative = 0
    e.bias = NULL
    e.u = NULL
    e.ldu = n
    if bias is not None:
        bias_c = da.carray(bias)
        if not (cnp.PyArray_SIZE(bias_c) == n and cnp.PyArray_TYPE(bias_c) == typenum):
            raise ValueError(f"epilogue: bias must hold {n} values of the dtype of out")
        e.bias = cnp.PyArray_DATA(bias_c)
    if u is not None:
        u_c = da.carray(u)
        if not (cnp.PyArray_SIZE(u_c) == m * n and cnp.PyArray_TYPE(u_c) == typenum):
            raise ValueError(f"epilogue: u must be ({m}, {n}) of the dtype of out")
        e.derivative = 1
        e.u = cnp.PyArray_DATA(u_c)
    if e.derivative == 0 and e.bias == NULL and act == 0:
        return out
    with nogil:
        if typenum == cnp.NPY_FLOAT:
            fnn_epilogue_f32(&e, <float*>cnp.PyArray_DATA(o), m, n, n, num_threads)
        else:
            fnn_epilogue_f64(&e, <double*>cnp.PyArray_DATA(o), m, n, n, num_threads)
    return out


def set_parallel_scale(double scale):
    """Scale this module's work thresholds for threads (parallel_scale.h; fastnn sets it
    from a measurement: fastnn/_backends/cpu/_parallel.py)."""
    da.fnn_set_parallel_scale(scale)
