# The "phase-packed" layout of the direct convolution (see conv_direct_body.h).
#
# One image's channels are stored zero-padded, every padded row split into `sw` phases:
#     packed[c][i][p][j] = x_pad[c][row0 + i][j * sw + p]
# with Wq = ceil(W_padded / sw) entries per phase, so a row takes sw * Wq elements.  With
# this layout the input that output column ow reads at kernel tap (r, s) is the
# contiguous run packed[c][oh * sh + r * dh - row0][(s * dw) % sw][ow + (s * dw) // sw],
# whatever the stride: the micro-kernels only ever see unit-stride rows.
from libc.string cimport memcpy, memset
from cython cimport floating

from conv_shape cimport ConvShape, ceil_div, floor_div


cdef inline void phase_range(ConvShape* s, Py_ssize_t p, Py_ssize_t Wq,
                             Py_ssize_t* jlo, Py_ssize_t* jhi) noexcept nogil:
    """The j in [jlo, jhi) of phase p whose input column j * sw + p - pl is inside [0, W)."""
    cdef Py_ssize_t lo = ceil_div(s.pl - p, s.sw)
    cdef Py_ssize_t hi = floor_div(s.W - 1 + s.pl - p, s.sw) + 1
    lo = min(max(lo, 0), Wq)
    hi = min(max(hi, lo), Wq)
    jlo[0] = lo
    jhi[0] = hi


cdef inline void pack_rows(const floating* x, Py_ssize_t xc, Py_ssize_t xh, Py_ssize_t xw,
                           ConvShape* s, Py_ssize_t nch, Py_ssize_t row0, Py_ssize_t nrows,
                           Py_ssize_t Wq, Py_ssize_t cstride, floating* buf) noexcept nogil:
    """Pack padded rows [row0, row0 + nrows) of nch channels of one image.

    x points at the first channel; xc, xh, xw are its element strides (any sign).
    Channel c lands at buf + c * cstride.
    """
    cdef Py_ssize_t c, i, p, j, ih, jlo, jhi
    cdef Py_ssize_t rowstride = s.sw * Wq
    cdef floating* dst
    cdef floating* d
    cdef const floating* xr
    for c in range(nch):
        for i in range(nrows):
            dst = buf + c * cstride + i * rowstride
            ih = row0 + i - s.pt
            if ih < 0 or ih >= s.H:
                memset(dst, 0, rowstride * sizeof(floating))
                continue
            xr = x + c * xc + ih * xh
            for p in range(s.sw):
                d = dst + p * Wq
                phase_range(s, p, Wq, &jlo, &jhi)
                for j in range(jlo):
                    d[j] = 0
                if s.sw == 1 and xw == 1:
                    memcpy(d + jlo, xr + (jlo - s.pl), (jhi - jlo) * sizeof(floating))
                else:
                    for j in range(jlo, jhi):
                        d[j] = xr[(j * s.sw + p - s.pl) * xw]
                for j in range(jhi, Wq):
                    d[j] = 0


cdef inline void unpack_image(const floating* buf, ConvShape* s, Py_ssize_t nch,
                              Py_ssize_t Wq, Py_ssize_t cstride, floating* gx) noexcept nogil:
    """Copy the unpadded part of nch packed channels (all padded rows) to the contiguous
    (nch, H, W) array gx: the inverse of pack_rows for row0 = 0."""
    cdef Py_ssize_t c, ih, p, j, jlo, jhi
    cdef Py_ssize_t rowstride = s.sw * Wq
    cdef const floating* src
    cdef floating* dst
    for c in range(nch):
        for ih in range(s.H):
            src = buf + c * cstride + (ih + s.pt) * rowstride
            dst = gx + (c * s.H + ih) * s.W
            for p in range(s.sw):
                phase_range(s, p, Wq, &jlo, &jhi)
                if s.sw == 1:
                    memcpy(dst + (jlo - s.pl), src + jlo, (jhi - jlo) * sizeof(floating))
                else:
                    for j in range(jlo, jhi):
                        dst[j * s.sw + p - s.pl] = src[p * Wq + j]
