# Shared by the pooling kernels (pool_max.pyx, pool_avg.pyx): the geometry of one call in
# 2-D form and the arithmetic that finds the real (non-padding) taps of a window.
#
# A 1-D pooling is run as a 2-D one with height 1 and a 1 x k kernel.  Every window is
# scanned in "padded" column coordinates: input column iw sits at pw + iw of a row buffer
# whose columns [0, pw) and [pw + W, row_len) stand for the padding, so that window ow
# reads buffer columns ow * sw + j * dw for j in [0, kw) with no bounds tests.
cimport cython


cdef struct PoolShape:
    Py_ssize_t height          # H, input rows (1 for 1-D)
    Py_ssize_t width           # W, input columns (L for 1-D)
    Py_ssize_t out_height      # Ho
    Py_ssize_t out_width       # Wo
    Py_ssize_t kernel_h
    Py_ssize_t kernel_w
    Py_ssize_t stride_h
    Py_ssize_t stride_w
    Py_ssize_t pad_h
    Py_ssize_t pad_w
    Py_ssize_t dil_h
    Py_ssize_t dil_w
    Py_ssize_t row_len         # columns of a padded row buffer


cdef inline PoolShape unpack_shape(tuple geometry):
    """The PoolShape of the 12-tuple (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw) that
    fastnn/backends/cpu/pool.py builds from a validated PoolGeometry."""
    cdef PoolShape s
    (s.height, s.width, s.out_height, s.out_width, s.kernel_h, s.kernel_w,
     s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h, s.dil_w) = geometry
    s.row_len = padded_row_len(s)
    return s


cdef inline Py_ssize_t padded_row_len(PoolShape s) noexcept nogil:
    """Columns needed by a padded row: the whole input row plus the left padding, and far
    enough right that the last (possibly ceil_mode) window fits."""
    cdef Py_ssize_t reach = (s.out_width - 1) * s.stride_w + (s.kernel_w - 1) * s.dil_w + 1
    return max(reach, s.pad_w + s.width)


@cython.cdivision(True)
cdef inline void real_taps(Py_ssize_t start, Py_ssize_t kernel, Py_ssize_t dilation,
                           Py_ssize_t size, Py_ssize_t* first,
                           Py_ssize_t* stop) noexcept nogil:
    """The taps i in [first, stop) of a window starting at ``start`` (negative in the
    padding) whose positions start + i * dilation fall inside [0, size).  stop <= first
    when the window holds padding only."""
    if start >= 0:
        first[0] = 0
    else:
        first[0] = (-start + dilation - 1) // dilation
    if start >= size:
        stop[0] = 0
    else:
        stop[0] = min(kernel, (size - start + dilation - 1) // dilation)
