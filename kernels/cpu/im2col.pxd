# im2col: the input windows of a convolution as the columns of a matrix, so that the
# convolution becomes one GEMM (weight (Kg, Cg*R*S) @ columns (Cg*R*S, positions)).
#
# One call fills a tile of positions [p0, p0 + npos) of one image (p = oh * Wo + ow), for
# nch channels; rows are (c, r, t) flattened, ld apart (ld >= npos: several images' tiles
# can sit side by side in one matrix).  Padding positions read 0.  The
# input may have any strides (negative too): no contiguous copy is needed.
from libc.string cimport memset
from cython cimport floating

from conv_shape cimport ConvShape, ceil_div, floor_div


cdef inline void valid_columns(ConvShape* s, Py_ssize_t t, Py_ssize_t* lo,
                               Py_ssize_t* hi) noexcept nogil:
    """The output columns ow in [lo, hi) whose input column ow*sw + t*dw - pl is in [0, W)."""
    lo[0] = max(<Py_ssize_t>0, ceil_div(s.pl - t * s.dw, s.sw))
    hi[0] = max(lo[0], floor_div(s.W - 1 + s.pl - t * s.dw, s.sw) + 1)


cdef inline Py_ssize_t row_segment(ConvShape* s, Py_ssize_t p, Py_ssize_t left,
                                   Py_ssize_t* oh, Py_ssize_t* ow) noexcept nogil:
    """Output position p = (oh, ow), set; returns how many of the next `left` positions
    from p lie in output row oh."""
    oh[0] = p // s.Wo
    ow[0] = p - oh[0] * s.Wo
    return min(s.Wo - ow[0], left)


cdef inline void clip_span(Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t ow, Py_ssize_t seg,
                           Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    """[a, b): the output columns of the segment [ow, ow + seg) that are in [lo, hi)
    (valid_columns), an empty range at the segment's end when there are none."""
    a[0] = min(max(lo, ow), ow + seg)
    b[0] = min(max(hi, a[0]), ow + seg)


cdef inline void im2col_tile(const floating* x, Py_ssize_t xc, Py_ssize_t xh, Py_ssize_t xw,
                             ConvShape* s, Py_ssize_t nch, Py_ssize_t p0, Py_ssize_t npos,
                             floating* col, Py_ssize_t ld) noexcept nogil:
    """col[(c, r, t) * ld + j] = x_pad[c, oh*sh + r*dh, ow*sw + t*dw] for p0 + j = (oh, ow).

    x points at the image's first channel (element strides xc, xh, xw)."""
    cdef Py_ssize_t c, r, t, j, seg, oh, ow, ih, lo, hi, a, b, o
    cdef floating* dst
    cdef const floating* xr
    for c in range(nch):
        for r in range(s.R):
            for t in range(s.S):
                valid_columns(s, t, &lo, &hi)
                dst = col + ((c * s.R + r) * s.S + t) * ld
                j = 0
                while j < npos:
                    seg = row_segment(s, p0 + j, npos - j, &oh, &ow)
                    ih = oh * s.sh + r * s.dh - s.pt
                    if ih < 0 or ih >= s.H:
                        memset(dst + j, 0, seg * sizeof(floating))
                    else:
                        clip_span(lo, hi, ow, seg, &a, &b)
                        xr = x + c * xc + ih * xh + (t * s.dw - s.pl) * xw
                        for o in range(ow, a):
                            dst[j + o - ow] = 0
                        if s.sw == 1 and xw == 1:
                            for o in range(a, b):
                                dst[j + o - ow] = xr[o]
                        else:
                            for o in range(a, b):
                                dst[j + o - ow] = xr[o * s.sw * xw]
                        for o in range(b, ow + seg):
                            dst[j + o - ow] = 0
                    j += seg
