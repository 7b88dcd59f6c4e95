# Array plumbing shared by the dense-family kernel modules (activation, softmax, loss,
# gemm, backprop): numpy arrays in, raw pointers and new C-contiguous arrays out, and the
# split of flat loops over OpenMP threads.  `cimport dense_arrays as da`; every module that
# does must call cnp.import_array() first.
cimport numpy as cnp


cdef inline cnp.ndarray carray(object x):
    """x as a C-contiguous, aligned, native-byte-order float32/float64 ndarray: x itself
    when it already is one, else a copy.  Numpy scalars become 0-d arrays."""
    cdef int typenum
    if not cnp.PyArray_Check(x):
        x = cnp.PyArray_FROMANY(x, cnp.NPY_NOTYPE, 0, 0, 0)
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        raise TypeError(f"expected a float32 or float64 array, got dtype {x.dtype}")
    return <cnp.ndarray>cnp.PyArray_FROMANY(x, typenum, 0, 0, cnp.NPY_ARRAY_CARRAY_RO)


cdef inline cnp.ndarray empty_like(cnp.ndarray x):
    """A new uninitialised C-contiguous array with x's shape and dtype."""
    return <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x),
                                          cnp.PyArray_TYPE(x), 0)


cdef inline cnp.ndarray empty_like_cached(cnp.ndarray x, object handler, Py_ssize_t min_bytes):
    """empty_like, its memory from fastnn's output cache (output_cache.HANDLER, passed in
    by the calling module) when it is at least ``min_bytes`` (output_cache.MIN_BYTES):
    a large result of a training loop then reuses pages already mapped instead of
    faulting in fresh ones every step."""
    if cnp.PyArray_NBYTES(x) < min_bytes:
        return empty_like(x)
    old = cnp.PyDataMem_SetHandler(handler)
    try:
        return empty_like(x)
    finally:
        cnp.PyDataMem_SetHandler(old)


cdef inline cnp.ndarray empty_2d(Py_ssize_t rows, Py_ssize_t cols, int typenum):
    """A new uninitialised C-contiguous (rows, cols) array."""
    cdef cnp.npy_intp dims[2]
    dims[0] = rows
    dims[1] = cols
    return <cnp.ndarray>cnp.PyArray_EMPTY(2, dims, typenum, 0)


cdef inline cnp.ndarray empty_2d_cached(Py_ssize_t rows, Py_ssize_t cols, int typenum,
                                       object handler, Py_ssize_t min_bytes):
    """empty_2d, its memory from fastnn's output cache when it is at least ``min_bytes``
    (see empty_like_cached): a large product's result reuses pages already mapped."""
    cdef Py_ssize_t item = 4 if typenum == cnp.NPY_FLOAT else 8
    if rows * cols * item < min_bytes:
        return empty_2d(rows, cols, typenum)
    old = cnp.PyDataMem_SetHandler(handler)
    try:
        return empty_2d(rows, cols, typenum)
    finally:
        cnp.PyDataMem_SetHandler(old)


cdef inline bint same_layout(cnp.ndarray a, cnp.ndarray b):
    """Same element count and dtype (both are C-contiguous: same flat layout)."""
    return (cnp.PyArray_SIZE(a) == cnp.PyArray_SIZE(b)
            and cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b))


cdef extern from "parallel_scale.h" nogil:
    Py_ssize_t fnn_scaled_min(Py_ssize_t prior)
    void fnn_set_parallel_scale(double scale)


cdef inline int threads_for(Py_ssize_t work, Py_ssize_t per_thread,
                            int num_threads) noexcept nogil:
    """How many threads `work` units deserve when each thread should get at least
    `per_thread` of them (a prior, scaled by the measured break-even: parallel_scale.h;
    1 for small work: waking a thread costs microseconds)."""
    cdef Py_ssize_t c = work // max(fnn_scaled_min(per_thread), 1)
    if c < 1:
        return 1
    return <int>c if c < num_threads else num_threads


cdef inline Py_ssize_t chunk_start(Py_ssize_t n, int c, int chunks) noexcept nogil:
    """Start of chunk c of `chunks` equal parts of range(n), rounded down to 16 elements
    (whole cache lines: threads never write the same line).  chunk_start(n, chunks) == n."""
    if c >= chunks:
        return n
    return (n * c // chunks) & ~(<Py_ssize_t>15)


cdef inline Py_ssize_t split_start(Py_ssize_t n, int c, int chunks) noexcept nogil:
    """Start of part c of `chunks` equal parts of range(n) (no rounding: for rows)."""
    if c >= chunks:
        return n
    return n * c // chunks
