// XLA FFI handlers that run fastnn's C kernels (fastnn_jax_kernels.c) on XLA's buffers,
// with no Python on the call path.  fastnn.jax validates every shape, dtype and attribute
// at trace time and registers these with jax.ffi.register_ffi_target; the handlers only
// read the sizes off the buffers.  Arrays are row-major (XLA's default layout on the CPU).
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
                     threads) != 0)
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
                              gb->untyped_data(), m, k, n, threads) != 0)
    return ffi::Error::Internal("fastnn.jax.linear backward: out of memory");
  return ffi::Error::Success();
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
