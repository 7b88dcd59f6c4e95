/* Max and average pooling (1-D and 2-D, forward and backward) behind plain C entry points,
 * for the XLA FFI handlers of fastnn_jax_ffi.cc.  The row kernels are those of
 * kernels/cpu/pool_rows.h; the work split over OpenMP threads is the one of
 * kernels/cpu/pool_max.pyx and pool_avg.pyx (work_split.pxd), so that the results are the
 * same bits as fastnn's own calls.  Every argument was validated at trace time by
 * fastnn.jax; these functions only compute.
 *
 * `geom` is the 12-value plane geometry (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw) of
 * fastnn's PoolGeometry.plane; `planes` is N * C.  Each entry returns 0, or -1 when its
 * scratch rows could not be allocated.
 */
#include <stdint.h>
#include <stdlib.h>

#include "parallel_scale.h"
#include "pool_rows.h"

#define FNN_PARALLEL_MIN ((ptrdiff_t)1 << 15) /* work_split.pxd's PARALLEL_MIN */

/* This library's copy of the measured threshold scale (parallel_scale.h), set from
 * fastnn/_backends/cpu/_parallel.py's by fastnn/jax/_ffi.py, and read back by tests. */
void fnn_jax_pool_set_parallel_scale(double scale) { fnn_set_parallel_scale(scale); }
double fnn_jax_pool_parallel_scale(void) { return fnn_parallel_scale; }

static int threads_for(ptrdiff_t work, ptrdiff_t items, int threads) {
    if (work < fnn_scaled_min(FNN_PARALLEL_MIN) || items < 2) return 1;
    return (ptrdiff_t)threads < items ? threads : (int)items;
}

static ptrdiff_t split(ptrdiff_t n, int c, int chunks) { return n * c / chunks; }

static pool_shape unpack(const int64_t* g) {
    pool_shape s;
    s.H = g[0], s.W = g[1], s.Ho = g[2], s.Wo = g[3];
    s.kh = g[4], s.kw = g[5], s.sh = g[6], s.sw = g[7];
    s.ph = g[8], s.pw = g[9], s.dh = g[10], s.dw = g[11];
    pool_shape_init(&s);
    return s;
}

/* The run of output rows that starts at lo and ends at hi or at its plane's last row. */
static ptrdiff_t plane_rows(const pool_shape* s, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t* p,
                            ptrdiff_t* oh) {
    ptrdiff_t stop;
    *p = lo / s->Ho;
    *oh = lo - *p * s->Ho;
    stop = *oh + hi - lo;
    return stop < s->Ho ? stop : s->Ho;
}

static void max_run(int f64, const pool_shape* s, const void* x, void* y, ptrdiff_t lo,
                    ptrdiff_t hi, void* buf) {
    ptrdiff_t p, oh, stop, plane = s->H * s->W, out = s->Ho * s->Wo;
    while (lo < hi) {
        stop = plane_rows(s, lo, hi, &p, &oh);
        if (f64)
            pool_max_rows_f64(s, (const double*)x + p * plane, (double*)y + p * out, oh, stop,
                              buf);
        else
            pool_max_rows_f32(s, (const float*)x + p * plane, (float*)y + p * out, oh, stop,
                              buf);
        lo += stop - oh;
    }
}

int fnn_jax_max_pool(int f64, const int64_t* geom, const void* x, void* y, ptrdiff_t planes,
                     int threads) {
    pool_shape s = unpack(geom);
    size_t item = f64 ? sizeof(double) : sizeof(float);
    ptrdiff_t items = planes * s.Ho, w = s.W > 1 ? s.W : 1;
    int chunks = threads_for(planes * s.H * s.W, items, threads);
    char* buf;
    if (items == 0 || s.Wo == 0) return 0;
    buf = malloc((size_t)(chunks * w) * item);
    if (buf == NULL) return -1;
    if (chunks == 1) {
        max_run(f64, &s, x, y, 0, items, buf);
    } else {
#pragma omp parallel for num_threads(chunks) schedule(static)
        for (int c = 0; c < chunks; ++c)
            max_run(f64, &s, x, y, split(items, c, chunks), split(items, c + 1, chunks),
                    buf + (size_t)(c * s.W) * item);
    }
    free(buf);
    return 0;
}

static void recompute_planes(int f64, const pool_shape* s, const void* gy, const void* x,
                             void* gx, void* buf, int32_t* fbuf, void* vrow, int32_t* frow,
                             ptrdiff_t lo, ptrdiff_t hi) {
    ptrdiff_t plane = s->H * s->W, out = s->Ho * s->Wo;
    for (ptrdiff_t p = lo; p < hi; ++p) {
        if (f64)
            pool_max_backward_recompute_f64(s, (const double*)gy + p * out,
                                            (const double*)x + p * plane,
                                            (double*)gx + p * plane, buf, fbuf, vrow, frow);
        else
            pool_max_backward_recompute_f32(s, (const float*)gy + p * out,
                                            (const float*)x + p * plane,
                                            (float*)gx + p * plane, buf, fbuf, vrow, frow);
    }
}

/* The gradient of max pooling, each window's maximum found again in x (needs H*W < 2^31). */
int fnn_jax_max_pool_backward(int f64, const int64_t* geom, const void* gy, const void* x,
                              void* gx, ptrdiff_t planes, int threads) {
    pool_shape s = unpack(geom);
    size_t item = f64 ? sizeof(double) : sizeof(float);
    int chunks = threads_for(planes * s.H * s.W, planes, threads);
    /* per thread: buf (W values), vrow (Wo values), fbuf (W ints), frow (Wo ints); the
     * Python wrapper's rows are unpadded too, so zero-width rows get no room */
    size_t values = (size_t)(s.W + s.Wo), ints = (size_t)(s.W + s.Wo);
    char* scratch;
    int32_t* iscratch;
    if (planes == 0 || s.H * s.W == 0) return 0;
    scratch = malloc((size_t)chunks * (values ? values : 1) * item);
    iscratch = malloc((size_t)chunks * (ints ? ints : 1) * sizeof(int32_t));
    if (scratch == NULL || iscratch == NULL) {
        free(scratch);
        free(iscratch);
        return -1;
    }
    if (chunks == 1) {
        recompute_planes(f64, &s, gy, x, gx, scratch, iscratch, scratch + (size_t)s.W * item,
                         iscratch + s.W, 0, planes);
    } else {
#pragma omp parallel for num_threads(chunks) schedule(static)
        for (int c = 0; c < chunks; ++c) {
            char* mine = scratch + (size_t)c * values * item;
            int32_t* imine = iscratch + (size_t)c * ints;
            recompute_planes(f64, &s, gy, x, gx, mine, imine, mine + (size_t)s.W * item,
                             imine + s.W, split(planes, c, chunks),
                             split(planes, c + 1, chunks));
        }
    }
    free(scratch);
    free(iscratch);
    return 0;
}

/* div[o] = the divisor of window o along one axis (pool_avg.pyx's _fill_divisors). */
static void fill_divisors(int f64, void* div, ptrdiff_t out, ptrdiff_t size, ptrdiff_t kernel,
                          ptrdiff_t stride, ptrdiff_t pad, int count_include_pad) {
    for (ptrdiff_t o = 0; o < out; ++o) {
        ptrdiff_t start = o * stride - pad, end = start + kernel, v;
        if (end > size + pad) end = size + pad;
        if (count_include_pad) {
            v = end - start;
        } else {
            ptrdiff_t lo = start > 0 ? start : 0, hi = end < size ? end : size;
            v = hi - lo;
        }
        if (f64) ((double*)div)[o] = (double)v;
        else ((float*)div)[o] = (float)v;
    }
}

static void divisors(int f64, const pool_shape* s, int count_include_pad, char* div) {
    size_t item = f64 ? sizeof(double) : sizeof(float);
    fill_divisors(f64, div, s->Ho, s->H, s->kh, s->sh, s->ph, count_include_pad);
    fill_divisors(f64, div + (size_t)s->Ho * item, s->Wo, s->W, s->kw, s->sw, s->pw,
                  count_include_pad);
}

static void avg_run(int f64, const pool_shape* s, const void* x, void* y, ptrdiff_t lo,
                    ptrdiff_t hi, const void* div_h, const void* div_w, void* buf) {
    ptrdiff_t p, oh, stop, plane = s->H * s->W, out = s->Ho * s->Wo;
    while (lo < hi) {
        stop = plane_rows(s, lo, hi, &p, &oh);
        if (f64)
            pool_avg_rows_f64(s, (const double*)x + p * plane, (double*)y + p * out, oh, stop,
                              div_h, div_w, buf);
        else
            pool_avg_rows_f32(s, (const float*)x + p * plane, (float*)y + p * out, oh, stop,
                              div_h, div_w, buf);
        lo += stop - oh;
    }
}

int fnn_jax_avg_pool(int f64, const int64_t* geom, int count_include_pad, const void* x,
                     void* y, ptrdiff_t planes, int threads) {
    pool_shape s = unpack(geom);
    size_t item = f64 ? sizeof(double) : sizeof(float);
    ptrdiff_t items = planes * s.Ho, w = s.W > 1 ? s.W : 1;
    int chunks = threads_for(planes * s.H * s.W, items, threads);
    char *div, *buf, *div_w;
    if (items == 0 || s.Wo == 0) return 0;
    div = malloc((size_t)(s.Ho + s.Wo + chunks * w) * item);
    if (div == NULL) return -1;
    div_w = div + (size_t)s.Ho * item;
    buf = div_w + (size_t)s.Wo * item;
    divisors(f64, &s, count_include_pad, div);
    if (chunks == 1) {
        avg_run(f64, &s, x, y, 0, items, div, div_w, buf);
    } else {
#pragma omp parallel for num_threads(chunks) schedule(static)
        for (int c = 0; c < chunks; ++c)
            avg_run(f64, &s, x, y, split(items, c, chunks), split(items, c + 1, chunks), div,
                    div_w, buf + (size_t)(c * w) * item);
    }
    free(div);
    return 0;
}

static void avg_backward_planes(int f64, const pool_shape* s, const void* gy, void* gx,
                                const char* div, void* buf, void* share, ptrdiff_t lo,
                                ptrdiff_t hi) {
    size_t item = f64 ? sizeof(double) : sizeof(float);
    ptrdiff_t plane = s->H * s->W, out = s->Ho * s->Wo;
    const void* div_w = div + (size_t)s->Ho * item;
    for (ptrdiff_t p = lo; p < hi; ++p) {
        if (f64)
            pool_avg_backward_f64(s, (const double*)gy + p * out, (double*)gx + p * plane,
                                  (const double*)div, div_w, buf, share);
        else
            pool_avg_backward_f32(s, (const float*)gy + p * out, (float*)gx + p * plane,
                                  (const float*)div, div_w, buf, share);
    }
}

int fnn_jax_avg_pool_backward(int f64, const int64_t* geom, int count_include_pad,
                              const void* gy, void* gx, ptrdiff_t planes, int threads) {
    pool_shape s = unpack(geom);
    size_t item = f64 ? sizeof(double) : sizeof(float);
    int chunks = threads_for(planes * s.H * s.W, planes, threads);
    size_t row = (size_t)(s.W + s.Wo); /* per thread: buf (W) and share (Wo) */
    char* div;
    if (planes == 0 || s.H * s.W == 0) return 0;
    div = malloc(((size_t)(s.Ho + s.Wo) + (size_t)chunks * row + 1) * item);
    if (div == NULL) return -1;
    divisors(f64, &s, count_include_pad, div);
    char* rows = div + (size_t)(s.Ho + s.Wo) * item;
    if (chunks == 1) {
        avg_backward_planes(f64, &s, gy, gx, div, rows, rows + (size_t)s.W * item, 0, planes);
    } else {
#pragma omp parallel for num_threads(chunks) schedule(static)
        for (int c = 0; c < chunks; ++c) {
            char* mine = rows + (size_t)c * row * item;
            avg_backward_planes(f64, &s, gy, gx, div, mine, mine + (size_t)s.W * item,
                                split(planes, c, chunks), split(planes, c + 1, chunks));
        }
    }
    free(div);
    return 0;
}
