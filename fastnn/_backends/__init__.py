"""Backends: one package each, found by name by ``fastnn._dispatch``.

A backend package exposes three functions and nothing else is required of it:

- ``probe() -> str | None``: None when the backend can run here, otherwise the reason it
  cannot (shown by ``fastnn.backends()`` and in the ``RuntimeError`` of an op asked to run
  there).  It must be cheap and must not raise.
- ``describe() -> str``: one line about an available backend (library versions, device).
- ``load() -> None``: import the backend's op modules, whose ``@register(op, backend)``
  decorators fill the registry.

Every backend lays out its files the same way: one op module per file of ``fastnn/ops/``
(``activation``, ``backprop``, ``conv``, ``dense``, ``loss``, ``normalization``, ``pool``,
``regularization``), plus ``softmax`` (softmax and log_softmax), ``checks`` (the internal
``_value_range``) and ``optim``.  Each registers its implementations with
``fastnn._dispatch.register`` (GPU backends first wrap them to convert the caller's arrays:
``numba_cuda._device.device_arrays``, ``cupy._runtime.cupy_arrays``).  Modules whose names
start with ``_`` are helpers that register nothing (``cpu``'s ``conv_*`` modules are the
convolution algorithms behind its ``conv``).

Calling convention
------------------
Implementations receive arguments that ``fastnn.ops`` has already validated: arrays are
of a float dtype shared by the call (index arrays are integer), live on the backend's
device, may be non-contiguous (negative strides included), and have the shapes the op
requires; parameters are normalised (``ConvGeometry``/``PoolGeometry``/``AdaptiveGeometry``
from ``fastnn._geometry``, the only module of the argument layer a backend imports; bools,
floats, positive ``dim``).  Implementations must return new
C-contiguous arrays of the input's kind and dtype and never modify their inputs.

================================  ============================================================
op                                implementation signature
================================  ============================================================
conv1d, conv2d                    (x, w, b | None, geom: ConvGeometry, algo, activation)
                                  -> y = activation(conv + b); activation None, "relu" or
                                  "relu6", fused into the kernels' write-out
conv1d_backward, conv2d_backward  (gy, x, w, geom, algo, mask) -> (gx, gw, gb), None if masked
max_pool1d, max_pool2d            (x, geom: PoolGeometry, return_indices) -> y | (y, idx int64)
avg_pool1d, avg_pool2d            (x, geom, count_include_pad) -> y
max_pool{1,2}d_backward           (gy, x, geom, indices | None) -> gx
avg_pool{1,2}d_backward           (gy, geom, count_include_pad) -> gx
adaptive_avg_pool{1,2}d           (x, geom: AdaptiveGeometry) -> y
adaptive_max_pool2d               (x, geom, return_indices) -> y | (y, idx int64)
adaptive_avg_pool{1,2}d_backward  (gy, geom) -> gx
adaptive_max_pool2d_backward      (gy, x, geom, indices | None) -> gx
dropout                           (x, p, threshold, seed | None) -> (y, uint8 mask) | (copy, None)
dropout_backward                  (gy, mask uint8/bool | None, p) -> gx
add                               (a, b, activation: None | "relu" | "relu6") -> act(a + b)
gemm                              (a, b, c | None, alpha, beta, trans_a, trans_b) -> (M, N)
linear                            (x (rows, in), w, b | None, activation | None) -> (rows, out)
linear_backward                   (gy (rows, out), x (rows, in), w, mask) -> (gx, gw, gb)
sigmoid, tanh                     (x) -> y
relu, relu6                       (x, out | None) -> y, written into out when given (below)
hardtanh                          (x, out | None, min_val, max_val) -> y
leaky_relu                        (x, out | None, negative_slope) -> y
silu; gelu                        (x) -> y; (x, approximate "none" | "tanh") -> y
activation_backward               (name, gy, y, p0=0.0, p1=0.0) -> gx; "hardtanh": p0, p1 =
                                  min_val, max_val; "leaky_relu": p0 = negative_slope >= 0
                                  (the op passes "relu6" as "hardtanh" on 0, 6)
silu_backward; gelu_backward      (gy, x) -> gx; (gy, x, approximate) -> gx (from the input)
softmax, log_softmax              (x, dim) -> y
softmax_backward, log_softmax_bw  (gy, y, dim) -> gx
mse_loss, binary_cross_entropy,   (input, target, reduction) -> loss (0-d unless "none")
  cross_entropy
*_loss_backward, *_backward       (input, target, reduction) -> d loss / d input
output_sensitivity                (y, target, u, activation, loss, reduction) -> delta
sensitivity                       (delta_next, w_next, u, activation) -> delta
dense_grads                       (delta, x) -> (gw, gb)
mlp_backward                      (inputs, preacts, weights, delta_out, activations)
                                  -> [(gw, gb), ...]
batch_norm_stats                  (x (N, C, *), eps) -> (mean, invstd), (C,) each
batch_norm_elemt                  (x, mean, invstd, w | None, b | None, activation) -> y
batch_norm                        (x, running_mean | None, running_var | None, w | None,
                                  b | None, training, factor, eps, activation) -> (y, mean,
                                  invstd); in training the running statistics (contiguous on
                                  the GPU) are moved IN PLACE by ``factor`` (momentum or 1 /
                                  count, resolved by the op), unless the batch is empty
batch_norm_backward               (gy, x, w | None, mean, invstd, training, y | None,
                                  activation, mask) -> (gx, gw, gb), None if masked
_value_range                      (x) -> (min, max) as Python numbers, NaN if any NaN
sgd_update, adagrad_update,       (param, grad, states..., hyper, scalars) -> None: update
  rmsprop_update, adam_update,    param and state IN PLACE (the one exception to "return
  adadelta_update                 new arrays"); signatures in fastnn/ops/optim.py
================================  ============================================================

``out`` (relu, relu6, hardtanh, leaky_relu): None, or an array of x's kind, shape and
dtype, C-contiguous and writeable, checked by ``fastnn.ops`` (fastnn/ops/_out.py); it may
be x itself (in place) and overlaps x in no other way.  The implementation writes the
result into it (the other exception to "return new arrays"); the op returns the caller's
``out`` object.

``AdaptiveGeometry`` (``fastnn._geometry``) holds batch, channels, in/out sizes and
``plane = (H, W, Ho, Wo)`` (1-D as H = Ho = 1).  dropout's ``seed`` is a 64-bit int (None
for the identity path: training off or p == 0) and ``threshold = floor(p * 2**32)``:
element i keeps when ``splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) >> 32 >= threshold``.

``geom.pad`` holds (before, after) pairs: asymmetric for ``padding="same"`` with an even
dilated kernel.  Pooling padding is symmetric (``geom.pad`` holds one int per dimension).
"""

#: The op modules every backend has (the layout above); importing one registers its ops.
OP_MODULES = (
    "activation",
    "backprop",
    "checks",
    "conv",
    "dense",
    "loss",
    "normalization",
    "optim",
    "pool",
    "regularization",
    "softmax",
)


def load_op_modules(package: str) -> None:
    """Import the op modules of the backend package ``package`` (its ``__name__``): their
    ``@register`` decorators fill the registry.  Every backend's ``load()`` calls this."""
    import importlib

    for name in OP_MODULES:
        importlib.import_module(f"{package}.{name}")


def register_adaptive_pools(backend: str, avg, avg_backward, max_pool, max_backward) -> None:
    """Register ``backend``'s adaptive pooling: ``avg`` / ``avg_backward`` serve 1-D and 2-D
    average pooling alike (a 1-D input is a plane of height 1), ``max_pool`` /
    ``max_backward`` the 2-D max pooling."""
    from fastnn._dispatch import register

    for nd in (1, 2):
        register(f"adaptive_avg_pool{nd}d", backend)(avg)
        register(f"adaptive_avg_pool{nd}d_backward", backend)(avg_backward)
    register("adaptive_max_pool2d", backend)(max_pool)
    register("adaptive_max_pool2d_backward", backend)(max_backward)
