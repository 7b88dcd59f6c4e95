/* Convolution passes behind plain C entry points, for the XLA FFI handlers of
 * fastnn_jax_ffi.cc: the channel-blocked direct kernels (kernels/cpu/conv_blocked.h),
 * Winograd F(m x m, 3 x 3) (kernels/cpu/winograd.h) and the depthwise kernels
 * (kernels/cpu/depthwise.h), forward, input gradient and weight gradient, and the bias
 * gradient (conv_bias.pyx's sum).  Everything fastnn decides in Python -- the algorithm,
 * the instruction-set level, the blocking -- arrives settled in `plan`, the int64 vector
 * of fastnn/_backends/cpu/conv_handoff.py; these functions make the same calls as
 * fastnn's wrappers (_conv_blocked.py, _conv_winograd.py, _conv_depthwise.py), so that
 * the results are the same bits.  Arrays are XLA's contiguous buffers: x (N, C, H, W),
 * w (K, C/G, R, S), y and gy (N, K, Ho, Wo) (a 1-D convolution has H = 1).
 *
 * The direct row kernel and im2col + BLAS split their work in Cython: their modules
 * (kernels/cpu/conv_direct.pyx, conv_im2col.pyx) export a GIL-free C entry point each,
 * whose addresses fastnn.jax hands over once, with SciPy's BLAS thread-count functions,
 * through fnn_jax_conv_set_entries; the plan carries the blocks of their wrappers.
 *
 * Every entry returns 0, -1 when a buffer could not be allocated, -2 for a plan it does
 * not know (or an algorithm whose entry point was not handed over).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_bias_sums.h"
#include "conv_blocked.h"
#include "depthwise.h"
#include "winograd.h"

enum { ALGO_BLOCKED = 1, ALGO_WINOGRAD = 2, ALGO_DEPTHWISE = 3, ALGO_DIRECT = 4, ALGO_IM2COL = 5 };
enum { PASS_FORWARD = 0, PASS_INPUT = 1, PASS_WEIGHT = 2 };
enum { PLANE = 1, THREADS = 19, REST = 20 }; /* offsets into the plan */
enum { PHASE = 18 };                         /* values per stride phase (conv_handoff.py) */

typedef struct {
    ptrdiff_t n, c, h, w, k, g, r, s, ho, wo, sh, sw, dh, dw, pt, pb, pl, pr;
} plane_t;

static plane_t unpack(const int64_t* plan) {
    const int64_t* p = plan + PLANE;
    plane_t q = {p[0],  p[1],  p[2],  p[3],  p[4],  p[5],  p[6],  p[7],  p[8],
                 p[9],  p[10], p[11], p[12], p[13], p[14], p[15], p[16], p[17]};
    return q;
}

/* ---- channel-blocked kernels ---------------------------------------------------------- */

static int cb_run(int f64, const fnn_cb_args* a, int isa) {
    return f64 ? fnn_cb_run_f64(a, isa) : fnn_cb_run_f32(a, isa);
}

/* Packed weights of the (K, Cg, R, S) view w (element strides wk..ws) into 64-byte
 * aligned memory (*out, freed by the caller), as _conv_blocked._packed makes them. */
static int cb_packed(int f64, const void* w, ptrdiff_t wk, ptrdiff_t wc, ptrdiff_t wr,
                     ptrdiff_t ws, ptrdiff_t K, ptrdiff_t Cg, ptrdiff_t R, ptrdiff_t S,
                     ptrdiff_t G, int isa, int threads, void** out) {
    ptrdiff_t size = fnn_cb_packed_elements(fnn_cb_isa(isa), f64, G, K / G, Cg, R, S);
    size_t item = f64 ? sizeof(double) : sizeof(float);
    *out = fnn_aligned_alloc_64((size_t)(size > 1 ? size : 1) * item);
    if (*out == NULL) return -1;
    if (K == 0 || Cg == 0) return 0;
    if (f64)
        fnn_cb_pack_f64((const double*)w, wk, wc, wr, ws, G, K / G, Cg, R, S, (double*)*out,
                        isa, threads);
    else
        fnn_cb_pack_f32((const float*)w, wk, wc, wr, ws, G, K / G, Cg, R, S, (float*)*out,
                        isa, threads);
    return 0;
}

static int blocked_forward(int f64, const int64_t* plan, const void* x, const void* w,
                           const void* bias, void* y, int act) {
    plane_t q = unpack(plan);
    int threads = (int)plan[THREADS];
    const int64_t* p = plan + REST; /* isa, rows, kbs, kc, jit, in_place */
    int isa = (int)p[0], rc;
    ptrdiff_t cg = q.c / q.g;
    void* wp = NULL;
    fnn_cb_args a;
    memset(&a, 0, sizeof a);
    a.src = x;
    a.sn = q.c * q.h * q.w, a.sc = q.h * q.w, a.sh = q.w, a.sw = 1;
    a.geo = (fnn_cb_geom){q.n, q.h, q.w, q.g, cg, q.k / q.g, q.r, q.s, q.sh, q.sw,
                          q.dh, q.dw, q.pt, q.pl, q.ho, q.wo};
    a.w = w;
    a.wk = cg * q.r * q.s, a.wc = q.r * q.s, a.wr = q.s, a.ws = 1;
    if (!p[4]) {
        if (cb_packed(f64, w, a.wk, a.wc, a.wr, a.ws, q.k, cg, q.r, q.s, q.g, isa, threads,
                      &wp) != 0)
            return -1;
        a.wp = wp;
    }
    a.bias = bias;
    a.act = act;
    a.dst = y;
    a.dn = q.k * q.ho * q.wo, a.dk = q.ho * q.wo, a.dh = q.wo, a.dw = 1;
    a.in_place = (int)p[5];
    a.rows = p[1], a.kbs = p[2], a.kc = p[3];
    a.threads = threads;
    rc = cb_run(f64, &a, isa);
    fnn_aligned_free_64(wp);
    return rc != 0 ? -1 : 0;
}

static int blocked_weight(int f64, const int64_t* plan, const void* x, const void* gy,
                          void* gw) {
    plane_t q = unpack(plan);
    const int64_t* p = plan + REST; /* isa, rows, kbs, cc, imgs */
    fnn_cb_wargs a;
    int rc;
    memset(&a, 0, sizeof a);
    a.x = x;
    a.sn = q.c * q.h * q.w, a.sc = q.h * q.w, a.sh = q.w, a.sw = 1;
    a.gy = gy;
    a.gn = q.k * q.ho * q.wo, a.gk = q.ho * q.wo, a.gh = q.wo, a.gw_ = 1;
    a.geo = (fnn_cb_geom){q.n, q.h, q.w, q.g, q.c / q.g, q.k / q.g, q.r, q.s, q.sh, q.sw,
                          q.dh, q.dw, q.pt, q.pl, q.ho, q.wo};
    a.out = gw;
    a.rows = p[1], a.kbs = p[2], a.cc = p[3], a.imgs = p[4];
    a.threads = (int)plan[THREADS];
    rc = f64 ? fnn_cb_wgrad_run_f64(&a, (int)p[0]) : fnn_cb_wgrad_run_f32(&a, (int)p[0]);
    return rc != 0 ? -1 : 0;
}

/* The input gradient, one stride phase (a, b) at a time (_conv_blocked.grad_input): the
 * phase is grad_output convolved (stride 1) with the taps that reach it, flipped, of the
 * transposed weight wt (G*Cg, Kg, R, S), written into every sh-th row and sw-th column. */
static int blocked_input(int f64, const int64_t* plan, const void* gy, const void* w,
                         void* gx) {
    plane_t q = unpack(plan);
    int threads = (int)plan[THREADS];
    ptrdiff_t cg = q.c / q.g, kg = q.k / q.g, rs = q.r * q.s;
    ptrdiff_t phases = plan[REST];
    size_t item = f64 ? sizeof(double) : sizeof(float);
    char* wt = malloc((size_t)(q.k * cg * rs > 0 ? q.k * cg * rs : 1) * item);
    int rc = 0;
    if (wt == NULL) return -1;
    /* wt[(gi * cg + ci)][kk] = w[(gi * kg + kk)][ci]: output and input channels swapped */
    for (ptrdiff_t gi = 0; gi < q.g; ++gi)
        for (ptrdiff_t ci = 0; ci < cg; ++ci)
            for (ptrdiff_t kk = 0; kk < kg; ++kk)
                memcpy(wt + (size_t)(((gi * cg + ci) * kg + kk) * rs) * item,
                       (const char*)w + (size_t)(((gi * kg + kk) * cg + ci) * rs) * item,
                       (size_t)rs * item);
    for (ptrdiff_t i = 0; i < phases && rc == 0; ++i) {
        const int64_t* f = plan + REST + 1 + i * PHASE;
        ptrdiff_t a = f[0], b = f[1];
        ptrdiff_t hq = (q.h - a + q.sh - 1) / q.sh, wq = (q.w - b + q.sw - 1) / q.sw;
        char* base = (char*)gx + (size_t)(a * q.w + b) * item;
        if (!f[2]) { /* no tap reaches this phase: zeros */
            for (ptrdiff_t img = 0; img < q.n * q.c; ++img)
                for (ptrdiff_t y = 0; y < hq; ++y)
                    for (ptrdiff_t x = 0; x < wq; ++x)
                        memset(base + (size_t)(img * q.h * q.w + y * q.sh * q.w + x * q.sw) *
                                          item,
                               0, item);
            continue;
        }
        /* f: a, b, 1, r0, rstep, rcount, c0, cstep, ccount, rdil, cdil, roff, coff,
         *    isa, rows, kbs, kc, jit */
        ptrdiff_t R = f[5], S = f[8];
        const char* wv = wt + (size_t)(f[3] * q.s + f[6]) * item;
        fnn_cb_args args;
        void* wp = NULL;
        int isa = (int)f[13];
        memset(&args, 0, sizeof args);
        args.src = gy;
        args.sn = q.k * q.ho * q.wo, args.sc = q.ho * q.wo, args.sh = q.wo, args.sw = 1;
        args.geo = (fnn_cb_geom){q.n, q.ho, q.wo, q.g, kg, cg, R, S, 1, 1,
                                 f[9], f[10], f[11], f[12], hq, wq};
        args.w = wv;
        args.wk = kg * rs, args.wc = rs, args.wr = -f[4] * q.s, args.ws = -f[7];
        if (!f[17]) {
            if (cb_packed(f64, wv, args.wk, args.wc, args.wr, args.ws, q.g * cg, kg, R, S,
                          q.g, isa, threads, &wp) != 0) {
                rc = -1;
                break;
            }
            args.wp = wp;
        }
        args.dst = base;
        args.dn = q.c * q.h * q.w, args.dk = q.h * q.w, args.dh = q.sh * q.w, args.dw = q.sw;
        args.in_place = 0;
        args.rows = f[14], args.kbs = f[15], args.kc = f[16];
        args.threads = threads;
        rc = cb_run(f64, &args, isa) != 0 ? -1 : 0;
        fnn_aligned_free_64(wp);
    }
    free(wt);
    return rc;
}

/* ---- Winograd ------------------------------------------------------------------------- */

static int winograd_run(int f64, const int64_t* plan, const void* src, ptrdiff_t src_c,
                        ptrdiff_t src_h, ptrdiff_t src_w, const void* w, int transposed,
                        const void* bias, int act, void* dst, ptrdiff_t out_c, ptrdiff_t ho,
                        ptrdiff_t wo, ptrdiff_t pt, ptrdiff_t pl) {
    plane_t q = unpack(plan);
    const int64_t* p = plan + REST; /* m, isa, pb, kc, tk, tp */
    fnn_wino_args a;
    int isa = fnn_wino_isa((int)p[1]), rc;
    memset(&a, 0, sizeof a);
    a.src = src;
    a.N = q.n, a.C = src_c, a.H = src_h, a.W = src_w;
    a.sn = src_c * src_h * src_w, a.sc = src_h * src_w, a.sh = src_w, a.sw = 1;
    a.K = out_c, a.G = q.g;
    a.Ho = ho, a.Wo = wo, a.pt = pt, a.pl = pl;
    a.u = NULL;
    a.bias = bias;
    a.act = act;
    a.dst = dst;
    a.pb = p[2], a.kc = p[3], a.tk = p[4], a.tp = p[5];
    rc = f64 ? fnn_wino_run_f64(&a, (const double*)w, transposed, (int)p[0], isa)
             : fnn_wino_run_f32(&a, (const float*)w, transposed, (int)p[0], isa);
    return rc != 0 ? -1 : 0;
}

static int winograd_weight(int f64, const int64_t* plan, const void* x, const void* gy,
                           void* gw) {
    plane_t q = unpack(plan);
    const int64_t* p = plan + REST; /* m, isa, pb, kc, cc */
    fnn_wino_wargs a;
    int isa = fnn_wino_isa((int)p[1]), threads = (int)plan[THREADS], rc;
    memset(&a, 0, sizeof a);
    a.x = x;
    a.N = q.n, a.C = q.c, a.H = q.h, a.W = q.w;
    a.sn = q.c * q.h * q.w, a.sc = q.h * q.w, a.sh = q.w, a.sw = 1;
    a.gy = gy;
    a.K = q.k, a.G = q.g, a.Ho = q.ho, a.Wo = q.wo, a.pt = q.pt, a.pl = q.pl;
    a.gw = gw;
    a.pb = p[2], a.kc = p[3], a.cc = p[4];
    a.threads = threads > 1 ? threads : 1;
    rc = f64 ? fnn_wino_wgrad_run_f64(&a, (int)p[0], isa)
             : fnn_wino_wgrad_run_f32(&a, (int)p[0], isa);
    return rc != 0 ? -1 : 0;
}

/* ---- depthwise ------------------------------------------------------------------------ */

/* Pass 0 (forward), 1 (input gradient) or 2 (weight gradient, into double `acc`, zeroed
 * here) of conv_depthwise.pyx, with x and gy contiguous. */
static int depthwise_run(int f64, const int64_t* plan, int pass, const void* x,
                         const void* w, const void* bias, int act, const void* gy,
                         void* out, int gw_bias) {
    plane_t q = unpack(plan);
    const int64_t* p = plan + REST; /* isa, lanes */
    int threads = (int)plan[THREADS], rc;
    fnn_dw_args a;
    memset(&a, 0, sizeof a);
    a.N = q.n, a.C = q.c, a.H = q.h, a.W = q.w;
    a.KM = q.k / q.c;
    a.R = q.r, a.S = q.s, a.Ho = q.ho, a.Wo = q.wo;
    a.sh = q.sh, a.sw = q.sw, a.dh = q.dh, a.dw = q.dw, a.pt = q.pt, a.pl = q.pl;
    if (x != NULL) a.sn = q.c * q.h * q.w, a.sc = q.h * q.w, a.sh_ = q.w, a.sw_ = 1;
    a.x = x, a.w = w, a.bias = bias, a.act = act, a.gy = gy, a.out = out;
    a.threads = threads > 1 ? threads : 1;
    a.gw_bias = gw_bias;
    rc = f64 ? fnn_dw_run_f64(&a, pass, (int)p[0], (int)p[1])
             : fnn_dw_run_f32(&a, pass, (int)p[0], (int)p[1]);
    return rc != 0 ? -1 : 0;
}

/* The weight gradient gw (K, 1, R, S), and with gb (plane by plane only) the bias's (K,)
 * from the same pass, as conv_depthwise.pyx's backward_weight. */
static int depthwise_weight(int f64, const int64_t* plan, const void* x, const void* gy,
                            void* gw, void* gb) {
    plane_t q = unpack(plan);
    const ptrdiff_t weights = q.k * q.r * q.s; /* (K, 1, R, S) */
    const ptrdiff_t size = weights + (gb != NULL ? q.k : 0);
    /* a row of partial sums per thread (the plane-by-plane kernel splits a channel's
     * images between threads), added in order as conv_depthwise.pyx adds them */
    const ptrdiff_t rows = plan[THREADS] > 1 ? (ptrdiff_t)plan[THREADS] : 1;
    double* acc = calloc((size_t)(size > 0 ? size * rows : 1), sizeof(double));
    int rc;
    if (acc == NULL) return -1;
    rc = depthwise_run(f64, plan, 2, x, NULL, NULL, 0, gy, acc, gb != NULL);
    for (ptrdiff_t i = 0; i < size && rc == 0; ++i) { /* NumPy's astype: round to nearest */
        double total = acc[i];
        for (ptrdiff_t t = 1; t < rows; ++t) total += acc[t * size + i];
        void* dst = i < weights ? gw : gb;
        const ptrdiff_t at = i < weights ? i : i - weights;
        if (f64) ((double*)dst)[at] = total;
        else ((float*)dst)[at] = (float)total;
    }
    free(acc);
    return rc;
}

/* ---- the Cython modules' entry points: the direct row kernel and im2col -------------- */

/* conv_entry of conv_direct.pyx / conv_im2col.pyx (see there). */
typedef int (*cython_entry)(int f64, int which, const int64_t* shape, const int64_t* blocks,
                            int threads, const void* a, const void* b, const void* bias,
                            void* out, int act);
typedef int (*blas_get_fn)(void);
typedef void (*blas_set_fn)(int);

static cython_entry direct_entry = NULL, im2col_entry = NULL;
static blas_get_fn blas_get = NULL;
static blas_set_fn blas_set = NULL;
static pthread_mutex_t blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int blas_pins = 0;  /* calls inside an im2col pass now */
static int blas_saved = 1; /* the BLAS's thread count before the first of them */

/* Set once by fastnn.jax (fastnn/jax/_ffi.py) before any handler call: the two Cython
 * entries, and openblas_get/set_num_threads of the BLAS they call (NULL: nothing to pin). */
void fnn_jax_conv_set_entries(void* direct, void* im2col, void* get, void* set) {
    direct_entry = (cython_entry)direct;
    im2col_entry = (cython_entry)im2col;
    blas_get = (blas_get_fn)get;
    blas_set = (blas_set_fn)set;
}

/* The BLAS at one thread while any im2col pass runs (fastnn._threads.limit_blas_threads:
 * its calls come from inside OpenMP regions), its count restored after the last. */
static void blas_pin(int on) {
    if (blas_get == NULL || blas_set == NULL) return;
    pthread_mutex_lock(&blas_lock);
    if (on && blas_pins++ == 0) {
        blas_saved = blas_get();
        if (blas_saved != 1) blas_set(1);
    } else if (!on && --blas_pins == 0 && blas_saved != 1) {
        blas_set(blas_saved);
    }
    pthread_mutex_unlock(&blas_lock);
}

/* Pass `which` on the algorithm of `plan`, one of the Cython entries. */
static int cython_pass(int f64, const int64_t* plan, int which, const void* a, const void* b,
                       const void* bias, void* out, int act) {
    cython_entry entry = plan[0] == ALGO_DIRECT ? direct_entry : im2col_entry;
    int status;
    if (entry == NULL) return -2;
    if (plan[0] == ALGO_IM2COL) blas_pin(1);
    status = entry(f64, which, plan + PLANE, plan + REST, (int)plan[THREADS], a, b, bias, out,
                   act);
    if (plan[0] == ALGO_IM2COL) blas_pin(0);
    return status;
}

static int is_cython(const int64_t* plan) {
    return plan[0] == ALGO_DIRECT || plan[0] == ALGO_IM2COL;
}

/* ---- entry points --------------------------------------------------------------------- */

int fnn_jax_conv_forward(int f64, const int64_t* plan, const void* x, const void* w,
                         const void* bias, void* y, int act) {
    plane_t q = unpack(plan);
    if (is_cython(plan)) return cython_pass(f64, plan, PASS_FORWARD, x, w, bias, y, act);
    if (plan[0] == ALGO_BLOCKED) return blocked_forward(f64, plan, x, w, bias, y, act);
    if (plan[0] == ALGO_WINOGRAD)
        return winograd_run(f64, plan, x, q.c, q.h, q.w, w, 0, bias, act, y, q.k, q.ho, q.wo,
                            q.pt, q.pl);
    if (plan[0] == ALGO_DEPTHWISE) return depthwise_run(f64, plan, 0, x, w, bias, act, NULL, y, 0);
    return -2;
}

int fnn_jax_conv_input_grad(int f64, const int64_t* plan, const void* gy, const void* w,
                            void* gx) {
    plane_t q = unpack(plan);
    if (is_cython(plan)) return cython_pass(f64, plan, PASS_INPUT, gy, w, NULL, gx, 0);
    if (plan[0] == ALGO_BLOCKED) return blocked_input(f64, plan, gy, w, gx);
    if (plan[0] == ALGO_WINOGRAD) /* the flipped, transposed weight, padding 2 - pad */
        return winograd_run(f64, plan, gy, q.k, q.ho, q.wo, w, 1, NULL, 0, gx, q.c, q.h, q.w,
                            2 - q.pt, 2 - q.pl);
    if (plan[0] == ALGO_DEPTHWISE) return depthwise_run(f64, plan, 1, NULL, w, NULL, 0, gy, gx, 0);
    return -2;
}

int fnn_jax_conv_weight_grad(int f64, const int64_t* plan, const void* x, const void* gy,
                             void* gw) {
    if (is_cython(plan)) return cython_pass(f64, plan, PASS_WEIGHT, x, gy, NULL, gw, 0);
    if (plan[0] == ALGO_BLOCKED) return blocked_weight(f64, plan, x, gy, gw);
    if (plan[0] == ALGO_WINOGRAD) return winograd_weight(f64, plan, x, gy, gw);
    if (plan[0] == ALGO_DEPTHWISE) return depthwise_weight(f64, plan, x, gy, gw, NULL);
    return -2;
}

/* This file's copy of the elementwise level (conv_bias_sums.h's loops; every C file has
 * its own: elementwise_level.h), set with the rest (fnn_jax_set_elementwise_level). */
void fnn_jax_conv_set_elementwise_level(int level) { fnn_set_elementwise_level(level); }

/* gb[k] = the sum of gy (N, K, plane) over images and positions, as conv_bias.pyx sums
 * it (conv_bias_sums.h, whole channels per thread: the same bits on any team). */
void fnn_jax_conv_bias_grad(int f64, const void* gy, void* gb, ptrdiff_t n, ptrdiff_t k,
                            ptrdiff_t plane, int threads) {
    size_t item = f64 ? sizeof(double) : sizeof(float);
    int nt = n * k * plane >= ((ptrdiff_t)1 << 16) ? threads : 1;
    if (n == 0 || plane == 0) {
        memset(gb, 0, (size_t)k * item);
        return;
    }
    if (nt > k) nt = (int)k;
    if (nt < 1) nt = 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const ptrdiff_t t = omp_get_thread_num(), m = omp_get_num_threads();
        const ptrdiff_t k0 = k * t / m, k1 = k * (t + 1) / m;
        if (f64) fnn_bias_sums_f64((const double*)gy, (double*)gb, n, k, plane, k0, k1);
        else fnn_bias_sums_f32((const float*)gy, (float*)gb, n, k, plane, k0, k1);
    }
}

/* The weight and bias gradients of one backward call, as conv.py's conv_backward runs
 * them: in one pass where the plan is the plane-by-plane depthwise kernel (its weight
 * pass sums the bias's gradient as a tap of ones), else the weight pass, then the bias's
 * sums over gy (N, K, plane). */
int fnn_jax_conv_weight_bias_grad(int f64, const int64_t* plan, const void* x, const void* gy,
                                  void* gw, void* gb, ptrdiff_t n, ptrdiff_t k,
                                  ptrdiff_t plane, int threads) {
    int rc;
    if (!is_cython(plan) && plan[0] == ALGO_DEPTHWISE && plan[REST + 1] == 0)
        return depthwise_weight(f64, plan, x, gy, gw, gb);
    rc = fnn_jax_conv_weight_grad(f64, plan, x, gy, gw);
    if (rc == 0) fnn_jax_conv_bias_grad(f64, gy, gb, n, k, plane, threads);
    return rc;
}
