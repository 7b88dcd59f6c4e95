# The geometry of one convolution, as the Cython kernels see it: always 2-D (a 1-D
# convolution is a 2-D one with H = R = 1 and no vertical padding).  Built from the tuple
# that fastnn/_backends/cpu/_conv_plan.py makes out of a validated ConvGeometry.
from libc.stdint cimport int64_t

cdef struct ConvShape:
    Py_ssize_t N, C, H, W          # input
    Py_ssize_t K, G, Cg, Kg        # output channels, groups, channels per group in / out
    Py_ssize_t R, S                # kernel height, width
    Py_ssize_t Ho, Wo              # output height, width
    Py_ssize_t sh, sw, dh, dw      # stride, dilation
    Py_ssize_t pt, pb, pl, pr      # padding: top, bottom, left, right
    Py_ssize_t Q                   # Cg * R * S: weight columns per output channel


cdef inline ConvShape make_shape(tuple t):
    """Unpack (N, C, H, W, K, G, R, S, Ho, Wo, sh, sw, dh, dw, pt, pb, pl, pr)."""
    cdef ConvShape s
    (s.N, s.C, s.H, s.W, s.K, s.G, s.R, s.S, s.Ho, s.Wo,
     s.sh, s.sw, s.dh, s.dw, s.pt, s.pb, s.pl, s.pr) = t
    s.Cg = s.C // s.G
    s.Kg = s.K // s.G
    s.Q = s.Cg * s.R * s.S
    return s


cdef inline ConvShape shape_from(const int64_t* v) noexcept nogil:
    """make_shape from the same 18 values in a C array (the kernels' C entry points)."""
    cdef ConvShape s
    s.N, s.C, s.H, s.W, s.K, s.G, s.R, s.S = v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]
    s.Ho, s.Wo, s.sh, s.sw, s.dh, s.dw = v[8], v[9], v[10], v[11], v[12], v[13]
    s.pt, s.pb, s.pl, s.pr = v[14], v[15], v[16], v[17]
    s.Cg = s.C // s.G
    s.Kg = s.K // s.G
    s.Q = s.Cg * s.R * s.S
    return s


cdef inline Py_ssize_t ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a."""
    if a >= 0:
        return (a + b - 1) // b
    return -((-a) // b)


cdef inline Py_ssize_t floor_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """floor(a / b) for b > 0 and any sign of a."""
    if a >= 0:
        return a // b
    return -((-a + b - 1) // b)


cdef inline Py_ssize_t split_channel_item(const ConvShape* s, Py_ssize_t item,
                                          Py_ssize_t ncc, Py_ssize_t cpc, Py_ssize_t* g,
                                          Py_ssize_t* c0, Py_ssize_t* nch) noexcept nogil:
    """Work item ``item`` of the grid (outer, group, chunk of ``cpc`` input channels), the
    chunk fastest (``ncc`` chunks per group): sets its group, the chunk's first channel in
    the group and its channel count (the last chunk may be short); returns the outer index
    (an image, or a chunk of images)."""
    g[0] = (item // ncc) % s.G
    c0[0] = (item % ncc) * cpc
    nch[0] = min(cpc, s.Cg - c0[0])
    return item // (ncc * s.G)
