"""Backends: one package each, found by name by ``fastnn._dispatch``.

A backend package exposes three functions and nothing else is required of it:

- ``probe() -> str | None``: None when the backend can run here, otherwise the reason it
  cannot (shown by ``fastnn.backends()`` and in the ``RuntimeError`` of an op asked to run
  there).  It must be cheap and must not raise.
- ``describe() -> str``: one line about an available backend (library versions, device).
- ``load() -> None``: import the backend's op modules, whose ``@register(op, backend)``
  decorators fill the registry.

Calling convention
------------------
Implementations receive arguments that ``fastnn.ops`` has already validated: arrays are
of a float dtype shared by the call (index arrays are integer), live on the backend's
device, may be non-contiguous (negative strides included), and have the shapes the op
requires; parameters are normalised (``ConvGeometry``/``PoolGeometry`` from
``fastnn._args``, bools, floats, positive ``dim``).  Implementations must return new
C-contiguous arrays of the input's kind and dtype and never modify their inputs.

================================  ============================================================
op                                implementation signature
================================  ============================================================
conv1d, conv2d                    (x, w, b | None, geom: ConvGeometry, algo) -> y
conv1d_backward, conv2d_backward  (gy, x, w, geom, algo, mask) -> (gx, gw, gb), None if masked
max_pool1d, max_pool2d            (x, geom: PoolGeometry, return_indices) -> y | (y, idx int64)
avg_pool1d, avg_pool2d            (x, geom, count_include_pad) -> y
max_pool{1,2}d_backward           (gy, x, geom, indices | None) -> gx
avg_pool{1,2}d_backward           (gy, geom, count_include_pad) -> gx
gemm                              (a, b, c | None, alpha, beta, trans_a, trans_b) -> (M, N)
linear                            (x (rows, in), w, b | None, activation | None) -> (rows, out)
linear_backward                   (gy (rows, out), x (rows, in), w, mask) -> (gx, gw, gb)
relu, sigmoid, tanh               (x) -> y
activation_backward               (name, gy, y) -> gx
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
_value_range                      (x) -> (min, max) as Python numbers, NaN if any NaN
sgd_update, adagrad_update,       (param, grad, states..., hyperparameters) -> None: update
  rmsprop_update, adam_update,    param and state IN PLACE (the one exception to "return
  adadelta_update                 new arrays"); signatures in fastnn/optim/functional.py
================================  ============================================================

``geom.pad`` holds (before, after) pairs: asymmetric for ``padding="same"`` with an even
dilated kernel.  Pooling padding is symmetric (``geom.pad`` holds one int per dimension).
"""
