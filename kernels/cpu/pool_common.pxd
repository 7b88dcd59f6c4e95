# Shared by the pooling modules (pool_max.pyx, pool_avg.pyx): the C row kernels of
# pool_rows.h and the geometry of a call (work_split.pxd splits the work over threads).
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void** ptr, size_t alignment, size_t size)

cdef extern from "pool_rows.h" nogil:
    ctypedef struct pool_shape:
        Py_ssize_t H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw, ow_lo, ow_hi

    void pool_shape_init(pool_shape* s)
    int pool_set_avx2(int enabled)

    void pool_max_rows_f32(const pool_shape* s, const float* x, float* y, Py_ssize_t oh0,
                           Py_ssize_t oh1, float* buf)
    void pool_max_rows_f64(const pool_shape* s, const double* x, double* y, Py_ssize_t oh0,
                           Py_ssize_t oh1, double* buf)
    void pool_argmax_rows_f32(const pool_shape* s, const float* x, float* y, int64_t* index,
                              Py_ssize_t oh0, Py_ssize_t oh1, float* buf, int32_t* fbuf,
                              int32_t* frow)
    void pool_argmax_rows_f64(const pool_shape* s, const double* x, double* y,
                              int64_t* index, Py_ssize_t oh0, Py_ssize_t oh1, double* buf,
                              int32_t* fbuf, int32_t* frow)
    void pool_max_backward_indices_f32(const pool_shape* s, const float* gy,
                                       const int64_t* index, float* gx, Py_ssize_t planes)
    void pool_max_backward_indices_f64(const pool_shape* s, const double* gy,
                                       const int64_t* index, double* gx, Py_ssize_t planes)
    void pool_max_backward_recompute_f32(const pool_shape* s, const float* gy,
                                         const float* x, float* gx, float* buf,
                                         int32_t* fbuf, float* vrow, int32_t* frow)
    void pool_max_backward_recompute_f64(const pool_shape* s, const double* gy,
                                         const double* x, double* gx, double* buf,
                                         int32_t* fbuf, double* vrow, int32_t* frow)
    void pool_avg_rows_f32(const pool_shape* s, const float* x, float* y, Py_ssize_t oh0,
                           Py_ssize_t oh1, const float* div_h, const float* div_w,
                           float* buf)
    void pool_avg_rows_f64(const pool_shape* s, const double* x, double* y, Py_ssize_t oh0,
                           Py_ssize_t oh1, const double* div_h, const double* div_w,
                           double* buf)
    void pool_avg_backward_f32(const pool_shape* s, const float* gy, float* gx,
                               const float* div_h, const float* div_w, float* buf,
                               float* share)
    void pool_avg_backward_f64(const pool_shape* s, const double* gy, double* gx,
                               const double* div_h, const double* div_w, double* buf,
                               double* share)


cdef inline pool_shape unpack_shape(tuple geometry):
    """The pool_shape of the 12-tuple (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw) that
    fastnn/_backends/cpu/pool.py builds from a validated PoolGeometry."""
    cdef pool_shape s
    (s.H, s.W, s.Ho, s.Wo, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw) = geometry
    pool_shape_init(&s)
    return s


cdef inline Py_ssize_t plane_rows(const pool_shape* s, Py_ssize_t lo, Py_ssize_t hi,
                                  Py_ssize_t* plane, Py_ssize_t* first) noexcept nogil:
    """The run of output rows that starts at lo of the flattened (plane, row) order and
    ends at hi or at its plane's last row: sets its plane and first row, returns the row
    after its last."""
    plane[0] = lo // s.Ho
    first[0] = lo - plane[0] * s.Ho
    return min(s.Ho, first[0] + hi - lo)


#: Each thread's scratch rows start this many elements apart (at least; see padded):
#: 128 bytes of float32, so that two threads never write the same cache line (or the
#: pair of lines a core prefetches together).
cdef enum:
    SCRATCH_ALIGN = 32


cdef inline Py_ssize_t padded(Py_ssize_t n) noexcept nogil:
    """n rounded up to a multiple of SCRATCH_ALIGN elements: the distance between two
    threads' scratch rows.  Unpadded, rows of a 14-wide plane put both threads' rows in
    one cache line, and the line bouncing between cores made 2 threads slower than 1."""
    return (n + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


cdef inline void* scratch_rows(size_t nbytes, str op) except NULL:
    """A 128-byte aligned block of nbytes for a call's scratch rows, or MemoryError
    naming op; free() it."""
    cdef void* block = NULL
    if posix_memalign(&block, 128, max(nbytes, 1)) != 0 or block == NULL:
        raise MemoryError(f"{op}: out of memory for the scratch rows")
    return block
