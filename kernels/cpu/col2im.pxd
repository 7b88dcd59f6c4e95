# col2im: the adjoint of im2col (im2col.pxd).  Adds a tile of column-matrix rows back into
# the image positions they were read from; positions in the padding are dropped.  Used for
# the input gradient of an im2col convolution: columns = weight^T @ grad_output.
from cython cimport floating

from conv_shape cimport ConvShape
from im2col cimport clip_span, row_segment, valid_columns


cdef inline void col2im_tile(const floating* col, Py_ssize_t ld, ConvShape* s,
                             Py_ssize_t nch, Py_ssize_t p0, Py_ssize_t npos,
                             floating* gx) noexcept nogil:
    """gx[c, oh*sh + r*dh - pt, ow*sw + t*dw - pl] += col[(c, r, t) * ld + j] for
    p0 + j = (oh, ow), inside the image only.  gx: contiguous (nch, H, W)."""
    cdef Py_ssize_t c, r, t, j, seg, oh, ow, ih, lo, hi, a, b, o
    cdef const floating* src
    cdef floating* gr
    for c in range(nch):
        for r in range(s.R):
            for t in range(s.S):
                valid_columns(s, t, &lo, &hi)
                src = col + ((c * s.R + r) * s.S + t) * ld
                j = 0
                while j < npos:
                    seg = row_segment(s, p0 + j, npos - j, &oh, &ow)
                    ih = oh * s.sh + r * s.dh - s.pt
                    if 0 <= ih < s.H:
                        clip_span(lo, hi, ow, seg, &a, &b)
                        gr = gx + (c * s.H + ih) * s.W + (t * s.dw - s.pl)
                        for o in range(a, b):
                            gr[o * s.sw] += src[j + o - ow]
                    j += seg
