# fastnn's caching allocator for large outputs (output_cache.h), as a NumPy data
# allocator: `empty(shape, dtype)` allocates with it, everything else in the process keeps
# NumPy's default.  Arrays remember the allocator that made them, so a freed output comes
# back to this cache whoever frees it.
cimport numpy as cnp

from cpython.pycapsule cimport PyCapsule_New

import numpy as np

cnp.import_array()

cdef extern from "output_cache.h" nogil:
    ctypedef struct fnn_cache_state:
        int count
        size_t bytes
        size_t limit
        size_t hits, misses
    fnn_cache_state fnn_cache
    size_t FNN_CACHE_MIN
    void* fnn_cache_malloc(void* ctx, size_t size)
    void* fnn_cache_calloc(void* ctx, size_t nelem, size_t elsize)
    void* fnn_cache_realloc(void* ctx, void* ptr, size_t new_size)
    void fnn_cache_free(void* ctx, void* ptr, size_t size)
    void fnn_cache_clear()
    size_t FNN_CACHE_TAIL

cdef extern from "numpy/ndarraytypes.h":
    ctypedef struct PyDataMemAllocator:
        void* ctx
        void* (*malloc)(void* ctx, size_t size)
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize)
        void* (*realloc)(void* ctx, void* ptr, size_t new_size)
        void (*free)(void* ctx, void* ptr, size_t size)
    ctypedef struct PyDataMem_Handler:
        char name[127]
        unsigned char version
        PyDataMemAllocator allocator

cdef PyDataMem_Handler _handler
_handler.name[:] = b"fastnn_output_cache" + b"\0" * (127 - 19)
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = fnn_cache_malloc
_handler.allocator.calloc = fnn_cache_calloc
_handler.allocator.realloc = fnn_cache_realloc
_handler.allocator.free = fnn_cache_free

_capsule = PyCapsule_New(<void*>&_handler, "mem_handler", NULL)

#: Arrays smaller than this (bytes) are allocated by NumPy as usual.
MIN_BYTES = FNN_CACHE_MIN
#: The NumPy memory handler of the cache, for kernels that allocate their results in
#: Cython (dense_arrays.empty_like_cached).
HANDLER = _capsule


def empty(Py_ssize_t size, dtype):
    """A new 1-D array of ``size`` elements of ``dtype``, its memory from the cache when
    it is large (a block freed earlier with exactly this size, whose pages are already
    mapped), else from NumPy."""
    return empty_shaped((size,), dtype)


def empty_shaped(tuple shape, dtype):
    """A new C-contiguous array of ``shape`` (a tuple of non-negative ints) and ``dtype``,
    its memory from the cache when it is large, else from NumPy (small arrays straight
    from PyArray_EMPTY: their whole cost is the allocation's overhead)."""
    cdef cnp.npy_intp dims[cnp.NPY_MAXDIMS]
    cdef Py_ssize_t ndim = len(shape), k
    cdef cnp.npy_intp size = 1
    if ndim > cnp.NPY_MAXDIMS:
        raise ValueError(f"fastnn: {ndim} dimensions, at most {cnp.NPY_MAXDIMS} allowed")
    for k in range(ndim):
        dims[k] = shape[k]
        if dims[k] < 0:
            raise ValueError(f"fastnn: negative dimension in shape {shape}")
        size *= dims[k]
    cdef cnp.dtype dt = dtype if type(dtype) is cnp.dtype else np.dtype(dtype)
    if size * dt.itemsize < <cnp.npy_intp>FNN_CACHE_MIN:
        # plain numeric types in native byte order: a type number says all there is
        if dt.type_num <= cnp.NPY_CLONGDOUBLE and cnp.PyArray_IsNativeByteOrder(dt.byteorder):
            return cnp.PyArray_EMPTY(<int>ndim, dims, dt.type_num, 0)
        return np.empty(shape, dtype=dt)
    old = cnp.PyDataMem_SetHandler(_capsule)
    try:
        return np.empty(shape, dtype=dt)
    finally:
        cnp.PyDataMem_SetHandler(old)


cdef extern from "numpy/ndarraytypes.h":
    void* PyArray_HANDLER(cnp.ndarray arr)  # the owner's memory handler (a capsule)


def readable_after(a):
    """How many bytes after the last element of the C-contiguous NumPy array ``a`` may be
    read (never written): FNN_CACHE_TAIL and whatever of its owner's data follows, when
    its memory comes from this cache (fastnn's large outputs and views of them), else
    0."""
    if not isinstance(a, cnp.ndarray):
        return 0
    cdef cnp.ndarray arr = <cnp.ndarray>a, owner = arr
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return 0
    while not cnp.PyArray_CHKFLAGS(owner, cnp.NPY_ARRAY_OWNDATA):
        base = cnp.get_array_base(owner)
        if not isinstance(base, cnp.ndarray):
            return 0
        owner = <cnp.ndarray>base
    if PyArray_HANDLER(owner) != <void*>_capsule or not cnp.PyArray_IS_C_CONTIGUOUS(owner):
        return 0
    cdef char* start = <char*>cnp.PyArray_DATA(owner)
    cdef char* stop = start + cnp.PyArray_NBYTES(owner)
    cdef char* first = <char*>cnp.PyArray_DATA(arr)
    cdef char* end = first + cnp.PyArray_NBYTES(arr)
    if first < start or end > stop:
        return 0
    return <Py_ssize_t>(stop - end) + <Py_ssize_t>FNN_CACHE_TAIL


#: Readable bytes after the data of every array this cache allocates.
TAIL_BYTES = FNN_CACHE_TAIL


def zeros(Py_ssize_t size, dtype):
    """Like :func:`empty`, filled with zeros."""
    out = empty(size, dtype)
    out.fill(0)
    return out


def stats():
    """(free blocks, bytes held free, limit in bytes, hits, misses)."""
    return (fnn_cache.count, fnn_cache.bytes, fnn_cache.limit, fnn_cache.hits,
            fnn_cache.misses)


def set_limit(size_t limit):
    """Hold at most ``limit`` bytes of freed blocks (0 disables the cache)."""
    fnn_cache.limit = limit
    if fnn_cache.bytes > limit:
        fnn_cache_clear()


def clear():
    """Return every freed block held by the cache to the system."""
    fnn_cache_clear()
