// XLA FFI handlers that run fastnn's C kernels (fastnn_jax_kernels.c) on XLA's buffers,
// with no Python on the call path.  fastnn.jax validates every shape, dtype and attribute
// at trace time and registers these with jax.ffi.register_ffi_target; the handlers only
// read the sizes off the buffers.  Arrays are row-major (XLA's default layout on the CPU).
// A `threads` attribute is fastnn's thread count at trace time: a cap that each call
// lowers while other processes keep the CPUs busy (> 0), or the exact team (< 0: adaptive
// teams off); fnn_jax_team (fastnn_jax_team.c) decides.
#include <cstddef>
#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

extern "C" {
void fnn_jax_activate(int f64, int act, const void* x, void* y, ptrdiff_t n);
void fnn_jax_activate_backward(int f64, int act, const void* g, const void* y, void* out,
                               ptrdiff_t n);
void fnn_jax_softmax(int f64, int log_mode, const void* x, void* y, ptrdiff_t rows,
                     ptrdiff_t d);
void fnn_jax_softmax_backward(int f64, int log_mode, const void* g, const void* y, void* gx,
                              ptrdiff_t rows, ptrdiff_t d);
int fnn_jax_linear(int f64, int act, const void* x, const void* w, const void* bias, void* y,
                   ptrdiff_t m, ptrdiff_t k, ptrdiff_t n, int threads);
int fnn_jax_linear_backward(int f64, int act, const void* grad, const void* x, const void* w,
                            const void* y, void* gi, void* gw, void* gb, ptrdiff_t m,
                            ptrdiff_t k, ptrdiff_t n, int threads);
int fnn_jax_max_pool(int f64, const int64_t* geom, const void* x, void* y, ptrdiff_t planes,
                     int threads);
int fnn_jax_max_pool_backward(int f64, const int64_t* geom, const void* gy, const void* x,
                              void* gx, ptrdiff_t planes, int threads);
int fnn_jax_avg_pool(int f64, const int64_t* geom, int count_include_pad, const void* x,
                     void* y, ptrdiff_t planes, int threads);
int fnn_jax_avg_pool_backward(int f64, const int64_t* geom, int count_include_pad,
                              const void* gy, void* gx, ptrdiff_t planes, int threads);
int fnn_jax_conv_forward(int f64, const int64_t* plan, const void* x, const void* w,
                         const void* bias, void* y, int act);
int fnn_jax_conv_input_grad(int f64, const int64_t* plan, const void* gy, const void* w,
                            void* gx);
int fnn_jax_conv_weight_grad(int f64, const int64_t* plan, const void* x, const void* gy,
                             void* gw);
void fnn_jax_conv_bias_grad(int f64, const void* gy, void* gb, ptrdiff_t n, ptrdiff_t k,
                            ptrdiff_t plane, int threads);
int fnn_jax_conv_weight_bias_grad(int f64, const int64_t* plan, const void* x, const void* gy,
                                  void* gw, void* gb, ptrdiff_t n, ptrdiff_t k,
                                  ptrdiff_t plane, int threads);
int fnn_jax_team(int threads);
}

namespace {

// 1 for float64, 0 for float32, -1 for anything else (refused before a kernel runs).
int is_f64(const ffi::AnyBuffer& b) {
  switch (b.element_type()) {
    case ffi::DataType::F64:
      return 1;
    case ffi::DataType::F32:
      return 0;
    default:
      return -1;
  }
}

ffi::Error bad_dtype() {
  return ffi::Error::InvalidArgument("fastnn.jax: float32 or float64 buffers only");
}

// The length of the last axis (1 for a scalar).
ptrdiff_t last_dim(const ffi::AnyBuffer& b) {
  auto dims = b.dimensions();
  return dims.size() == 0 ? 1 : static_cast<ptrdiff_t>(dims.back());
}

ffi::Error Activation(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, int32_t act) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  fnn_jax_activate(f64, act, x.untyped_data(), y->untyped_data(),
                   static_cast<ptrdiff_t>(x.element_count()));
  return ffi::Error::Success();
}

ffi::Error ActivationBackward(ffi::AnyBuffer g, ffi::AnyBuffer y,
                              ffi::Result<ffi::AnyBuffer> out, int32_t act) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  fnn_jax_activate_backward(f64, act, g.untyped_data(), y.untyped_data(), out->untyped_data(),
                            static_cast<ptrdiff_t>(g.element_count()));
  return ffi::Error::Success();
}

ffi::Error Softmax(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, int32_t log_mode) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  ptrdiff_t d = last_dim(x), n = static_cast<ptrdiff_t>(x.element_count());
  if (n > 0) fnn_jax_softmax(f64, log_mode, x.untyped_data(), y->untyped_data(), n / d, d);
  return ffi::Error::Success();
}

ffi::Error SoftmaxBackward(ffi::AnyBuffer g, ffi::AnyBuffer y, ffi::Result<ffi::AnyBuffer> gx,
                           int32_t log_mode) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  ptrdiff_t d = last_dim(g), n = static_cast<ptrdiff_t>(g.element_count());
  if (n > 0)
    fnn_jax_softmax_backward(f64, log_mode, g.untyped_data(), y.untyped_data(),
                             gx->untyped_data(), n / d, d);
  return ffi::Error::Success();
}

ffi::Error Linear(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer b,
                  ffi::Result<ffi::AnyBuffer> y, int32_t act, int32_t has_bias,
                  int32_t threads) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  auto wd = w.dimensions();
  ptrdiff_t n = wd[0], k = wd[1];
  ptrdiff_t m = k > 0 ? static_cast<ptrdiff_t>(x.element_count()) / k : 0;
  if (k == 0) m = static_cast<ptrdiff_t>(y->element_count()) / (n > 0 ? n : 1);
  if (fnn_jax_linear(f64, act, x.untyped_data(), w.untyped_data(),
                     has_bias ? b.untyped_data() : nullptr, y->untyped_data(), m, k, n,
                     fnn_jax_team(threads)) != 0)
    return ffi::Error::Internal("fastnn.jax.linear: out of memory");
  return ffi::Error::Success();
}

ffi::Error LinearBackward(ffi::AnyBuffer g, ffi::AnyBuffer x, ffi::AnyBuffer w,
                          ffi::AnyBuffer y, ffi::Result<ffi::AnyBuffer> gi,
                          ffi::Result<ffi::AnyBuffer> gw, ffi::Result<ffi::AnyBuffer> gb,
                          int32_t act, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  auto wd = w.dimensions();
  ptrdiff_t n = wd[0], k = wd[1];
  ptrdiff_t m = n > 0 ? static_cast<ptrdiff_t>(g.element_count()) / n : 0;
  if (fnn_jax_linear_backward(f64, act, g.untyped_data(), x.untyped_data(), w.untyped_data(),
                              y.untyped_data(), gi->untyped_data(), gw->untyped_data(),
                              gb->untyped_data(), m, k, n, fnn_jax_team(threads)) != 0)
    return ffi::Error::Internal("fastnn.jax.linear backward: out of memory");
  return ffi::Error::Success();
}

// Pooling: `geom` is fastnn's 12-value plane geometry (H, W, Ho, Wo, kh, kw, sh, sw, ph,
// pw, dh, dw); the number of planes (N * C) follows from the input's size.
using Geometry = ffi::Span<const int64_t>;

ffi::Error pool_failed(int status) {
  if (status == 0) return ffi::Error::Success();
  return ffi::Error::Internal("fastnn.jax pooling: out of memory for the scratch rows");
}

ptrdiff_t planes_of(const ffi::AnyBuffer& x, Geometry g) {
  ptrdiff_t plane = static_cast<ptrdiff_t>(g[0] * g[1]);
  return plane > 0 ? static_cast<ptrdiff_t>(x.element_count()) / plane : 0;
}

ffi::Error MaxPool(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, Geometry geom,
                   int32_t threads) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  if (geom.size() != 12) return ffi::Error::InvalidArgument("fastnn.jax: 12 geometry values");
  return pool_failed(fnn_jax_max_pool(f64, geom.begin(), x.untyped_data(), y->untyped_data(),
                                      planes_of(x, geom), fnn_jax_team(threads)));
}

ffi::Error MaxPoolBackward(ffi::AnyBuffer g, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> gx,
                           Geometry geom, int32_t threads) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  if (geom.size() != 12) return ffi::Error::InvalidArgument("fastnn.jax: 12 geometry values");
  return pool_failed(fnn_jax_max_pool_backward(f64, geom.begin(), g.untyped_data(),
                                               x.untyped_data(), gx->untyped_data(),
                                               planes_of(x, geom), fnn_jax_team(threads)));
}

ffi::Error AvgPool(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, Geometry geom,
                   int32_t count_include_pad, int32_t threads) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  if (geom.size() != 12) return ffi::Error::InvalidArgument("fastnn.jax: 12 geometry values");
  return pool_failed(fnn_jax_avg_pool(f64, geom.begin(), count_include_pad, x.untyped_data(),
                                      y->untyped_data(), planes_of(x, geom),
                                      fnn_jax_team(threads)));
}

ffi::Error AvgPoolBackward(ffi::AnyBuffer g, ffi::Result<ffi::AnyBuffer> gx, Geometry geom,
                           int32_t count_include_pad, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  if (geom.size() != 12) return ffi::Error::InvalidArgument("fastnn.jax: 12 geometry values");
  return pool_failed(fnn_jax_avg_pool_backward(f64, geom.begin(), count_include_pad,
                                               g.untyped_data(), gx->untyped_data(),
                                               planes_of(*gx, geom), fnn_jax_team(threads)));
}

// Convolution: `plan` holds the int64 vectors of fastnn/_backends/cpu/conv_handoff.py (the
// algorithm, the geometry, the team size and the blocking, settled at trace time), one
// per team size 1 .. threads (adaptive) or one for the exact team; the call runs the one
// of the team fnn_jax_team picks.
using Plan = ffi::Span<const int64_t>;

const int64_t* plan_for(Plan plans, int32_t threads) {
  size_t count = threads > 0 ? static_cast<size_t>(threads) : 1;
  size_t size = plans.size() / count;
  int team = fnn_jax_team(threads);
  return plans.begin() + (count == 1 ? 0 : static_cast<size_t>(team - 1) * size);
}

ffi::Error conv_failed(int status, const char* pass) {
  if (status == 0) return ffi::Error::Success();
  if (status == -2) return ffi::Error::InvalidArgument(pass);
  return ffi::Error::Internal("fastnn.jax convolution: out of memory for its buffers");
}

ffi::Error ConvForward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer b,
                       ffi::Result<ffi::AnyBuffer> y, Plan plan, int32_t threads,
                       int32_t has_bias, int32_t act) {
  int f64 = is_f64(x);
  if (f64 < 0) return bad_dtype();
  return conv_failed(fnn_jax_conv_forward(f64, plan_for(plan, threads), x.untyped_data(),
                                          w.untyped_data(),
                                          has_bias ? b.untyped_data() : nullptr,
                                          y->untyped_data(), act),
                     "fastnn.jax conv forward: unknown plan");
}

ffi::Error ConvInputGrad(ffi::AnyBuffer g, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> gx,
                         Plan plan, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  return conv_failed(fnn_jax_conv_input_grad(f64, plan_for(plan, threads), g.untyped_data(),
                                             w.untyped_data(), gx->untyped_data()),
                     "fastnn.jax conv input gradient: unknown plan");
}

ffi::Error ConvWeightGrad(ffi::AnyBuffer g, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> gw,
                          Plan plan, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  return conv_failed(fnn_jax_conv_weight_grad(f64, plan_for(plan, threads), x.untyped_data(),
                                              g.untyped_data(), gw->untyped_data()),
                     "fastnn.jax conv weight gradient: unknown plan");
}

ffi::Error ConvBiasGrad(ffi::AnyBuffer g, ffi::Result<ffi::AnyBuffer> gb, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  auto dims = g.dimensions();
  ptrdiff_t n = dims[0], k = dims[1], plane = 1;
  for (size_t i = 2; i < dims.size(); ++i) plane *= static_cast<ptrdiff_t>(dims[i]);
  fnn_jax_conv_bias_grad(f64, g.untyped_data(), gb->untyped_data(), n, k, plane,
                         fnn_jax_team(threads));
  return ffi::Error::Success();
}

ffi::Error ConvWeightBiasGrad(ffi::AnyBuffer g, ffi::AnyBuffer x,
                              ffi::Result<ffi::AnyBuffer> gw, ffi::Result<ffi::AnyBuffer> gb,
                              Plan plan, int32_t threads) {
  int f64 = is_f64(g);
  if (f64 < 0) return bad_dtype();
  auto dims = g.dimensions();
  ptrdiff_t n = dims[0], k = dims[1], plane = 1;
  for (size_t i = 2; i < dims.size(); ++i) plane *= static_cast<ptrdiff_t>(dims[i]);
  return conv_failed(
      fnn_jax_conv_weight_bias_grad(f64, plan_for(plan, threads), x.untyped_data(),
                                    g.untyped_data(), gw->untyped_data(), gb->untyped_data(),
                                    n, k, plane, fnn_jax_team(threads)),
      "fastnn.jax conv weight gradient: unknown plan");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_activation, Activation,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("act"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_activation_backward, ActivationBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("act"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_softmax, Softmax,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("log_mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_softmax_backward, SoftmaxBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("log_mode"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_linear, Linear,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("act")
                                  .Attr<int32_t>("has_bias")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_linear_backward, LinearBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("act")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_max_pool, MaxPool,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Geometry>("geometry")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_max_pool_backward, MaxPoolBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Geometry>("geometry")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_avg_pool, AvgPool,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Geometry>("geometry")
                                  .Attr<int32_t>("count_include_pad")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_avg_pool_backward, AvgPoolBackward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Geometry>("geometry")
                                  .Attr<int32_t>("count_include_pad")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_conv_forward, ConvForward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Plan>("plan")
                                  .Attr<int32_t>("threads")
                                  .Attr<int32_t>("has_bias")
                                  .Attr<int32_t>("act"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_conv_input_grad, ConvInputGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Plan>("plan")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_conv_weight_grad, ConvWeightGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Plan>("plan")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_conv_weight_grad_and_bias, ConvWeightBiasGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<Plan>("plan")
                                  .Attr<int32_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(fastnn_conv_bias_grad, ConvBiasGrad,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int32_t>("threads"));
