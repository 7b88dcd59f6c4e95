"""The backprop sensitivity recursion of the course notes (BP1-BP4), rows are samples.

With ``u^m = y^{m-1} @ W^m.T + b^m`` and ``y^m = f^m(u^m)``:

- BP1 ``delta^M = f'(u^M) * dJ/dy^M``                      -> :func:`output_sensitivity`
- BP2 ``delta^m = f'(u^m) * (delta^{m+1} @ W^{m+1})``       -> :func:`sensitivity`
- BP3 ``dJ/db^m = sum over rows of delta^m``                -> :func:`dense_grads`
- BP4 ``dJ/dW^m = (delta^m).T @ y^{m-1}``                   -> :func:`dense_grads`
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn.ops import _data_checks

__all__ = ["dense_grads", "mlp_backward", "output_sensitivity", "sensitivity"]

LOSSES = ("mse", "binary_cross_entropy", "cross_entropy")


def output_sensitivity(
    output: Any,
    target: Any,
    preact: Any,
    activation: str | None,
    loss: str = "mse",
    reduction: str = "mean",
    *,
    backend: str | None = None,
) -> Any:
    """BP1: the sensitivity of the output layer, ``delta^M = dJ/du^M = f'(u^M) * dJ/dy^M``.

    ``output`` is ``y^M = f(u^M)``, ``preact`` is ``u^M`` (f' is evaluated there) and
    ``activation`` names f (None: identity).  ``loss``:

    - "mse": ``dJ/dy = 2 (y - t)`` (/ element count for "mean"); with "sum" this is the
      notes' ``-2 f'(u) (t - y)``.
    - "binary_cross_entropy": ``dJ/dy = (y - t) / max(y (1 - y), 1e-12)``; with a sigmoid
      output the product is computed exactly as ``y - t``.
    - "cross_entropy": ``target`` holds int class indices (N,); ``activation`` is None
      (``output`` are logits) or "softmax" (``output`` are probabilities); either way
      ``delta = softmax(u) - onehot(t)`` (/ N for "mean").
    """
    op = "output_sensitivity"
    if not (isinstance(loss, str) and loss in LOSSES):
        raise ValueError(f"{op}: loss must be one of {LOSSES}, got {loss!r}")
    red = _args.reduction_name(op, reduction)
    if loss == "cross_entropy":
        act = _args.activation_name(op, activation, (None, "softmax"))
        kind, _ = _args.float_arrays(op, {"output": output, "preact": preact})
        _args.check_ndim(op, "output", output, 2, "(N, C)")
        _args.check_same_shape(op, "output", output, "preact", preact)
        _args.index_array(op, "target", target, kind)
        _args.check_shape(op, "target", target, (output.shape[0],), "one class per row")
        _data_checks.check_index_range(op, "target", target, kind, 0, output.shape[1], backend)
    else:
        act = _args.activation_name(op, activation)
        kind, _ = _args.float_arrays(op, {"output": output, "target": target, "preact": preact})
        _args.check_same_shape(op, "output", output, "target", target)
        _args.check_same_shape(op, "output", output, "preact", preact)
        if loss == "binary_cross_entropy":
            _data_checks.check_probabilities(op, "output", output, kind, backend)
    return resolve(op, kind, backend)(output, target, preact, act, loss, red)


def sensitivity(
    delta_next: Any,
    weight_next: Any,
    preact: Any,
    activation: str | None,
    *,
    backend: str | None = None,
) -> Any:
    """BP2: ``delta^m = f'(u^m) * (delta^{m+1} @ W^{m+1})`` as one fused kernel.

    ``delta_next`` is (N, n_{m+1}), ``weight_next`` (n_{m+1}, n_m), ``preact`` ``u^m``
    (N, n_m); ``activation`` names f^m (None: identity).  Returns (N, n_m).
    """
    op = "sensitivity"
    act = _args.activation_name(op, activation)
    kind, _ = _args.float_arrays(
        op, {"delta_next": delta_next, "weight_next": weight_next, "preact": preact}
    )
    _check_layer(op, delta_next, weight_next, preact)
    return resolve(op, kind, backend)(delta_next, weight_next, preact, act)


def _check_layer(op: str, delta_next: Any, weight_next: Any, preact: Any, where: str = ""):
    _args.check_ndim(op, f"delta_next{where}", delta_next, 2, "(N, n_next)")
    _args.check_ndim(op, f"weight_next{where}", weight_next, 2, "(n_next, n)")
    _args.check_ndim(op, f"preact{where}", preact, 2, "(N, n)")
    n, n_next = delta_next.shape
    expected = (n_next, preact.shape[1])
    if tuple(weight_next.shape) != expected or preact.shape[0] != n:
        raise ValueError(
            f"{op}: shapes do not chain: delta_next{where} {tuple(delta_next.shape)} @ "
            f"weight_next{where} {tuple(weight_next.shape)} must give preact{where}'s shape "
            f"{tuple(preact.shape)} (weight_next must be {expected})"
        )


def dense_grads(delta: Any, input: Any, *, backend: str | None = None) -> tuple[Any, Any]:
    """BP3/BP4: ``(grad_weight, grad_bias) = (delta.T @ input, delta.sum(0))`` for a dense
    layer whose sensitivity is ``delta`` (N, n_out) and whose input is (N, n_in)."""
    op = "dense_grads"
    kind, _ = _args.float_arrays(op, {"delta": delta, "input": input})
    _args.check_ndim(op, "delta", delta, 2, "(N, n_out)")
    _args.check_ndim(op, "input", input, 2, "(N, n_in)")
    if delta.shape[0] != input.shape[0]:
        raise ValueError(
            f"{op}: delta and input must have the same number of rows, got shapes "
            f"{tuple(delta.shape)} and {tuple(input.shape)}"
        )
    return resolve(op, kind, backend)(delta, input)


def mlp_backward(
    inputs: Sequence[Any],
    preacts: Sequence[Any],
    weights: Sequence[Any],
    delta_out: Any,
    activations: Sequence[str | None],
    *,
    backend: str | None = None,
) -> list[tuple[Any, Any]]:
    """The whole recursion over a stack of L dense layers in one call.

    Layer ``i`` (0-based) maps ``inputs[i]`` (N, n_i) to ``preacts[i]`` (N, n_{i+1}) with
    ``weights[i]`` (n_{i+1}, n_i) and activation ``activations[i]``.  ``delta_out`` is the
    output layer's sensitivity (BP1, e.g. from :func:`output_sensitivity`).  Returns
    ``[(grad_weight_i, grad_bias_i) for each layer]`` in forward order.
    """
    op = "mlp_backward"
    seqs = {"inputs": inputs, "preacts": preacts, "weights": weights, "activations": activations}
    for name, seq in seqs.items():
        if isinstance(seq, (str, bytes)) or not isinstance(seq, Sequence):
            raise TypeError(f"{op}: {name} must be a list or tuple, got {type(seq).__name__}")
    layers = len(weights)
    if layers == 0:
        raise ValueError(f"{op}: weights must hold at least one layer, got an empty sequence")
    for name, seq in seqs.items():
        if len(seq) != layers:
            raise ValueError(
                f"{op}: inputs, preacts, weights and activations must have one entry per "
                f"layer; weights has {layers}, {name} has {len(seq)}"
            )
    arrays = {"delta_out": delta_out}
    for i in range(layers):
        arrays[f"inputs[{i}]"] = inputs[i]
        arrays[f"preacts[{i}]"] = preacts[i]
        arrays[f"weights[{i}]"] = weights[i]
    kind, _ = _args.float_arrays(op, arrays)
    acts = tuple(_args.activation_name(op, a) for a in activations)
    for i in range(layers):
        _args.check_ndim(op, f"inputs[{i}]", inputs[i], 2, "(N, n_in)")
        _args.check_ndim(op, f"weights[{i}]", weights[i], 2, "(n_out, n_in)")
        _args.check_ndim(op, f"preacts[{i}]", preacts[i], 2, "(N, n_out)")
        rows, n_in = inputs[i].shape
        expected = (rows, weights[i].shape[0])
        if weights[i].shape[1] != n_in or tuple(preacts[i].shape) != expected:
            raise ValueError(
                f"{op}: layer {i} does not chain: inputs[{i}] {tuple(inputs[i].shape)}, "
                f"weights[{i}] {tuple(weights[i].shape)}, preacts[{i}] "
                f"{tuple(preacts[i].shape)} (expected weights[{i}].shape[1] == {n_in} and "
                f"preacts[{i}] of shape {expected})"
            )
        if i + 1 < layers and tuple(inputs[i + 1].shape) != expected:
            raise ValueError(
                f"{op}: inputs[{i + 1}] must have the shape of preacts[{i}] {expected}, got "
                f"{tuple(inputs[i + 1].shape)}"
            )
    _args.check_shape(op, "delta_out", delta_out, tuple(preacts[-1].shape), "preacts[-1]")
    return resolve(op, kind, backend)(list(inputs), list(preacts), list(weights), delta_out, acts)
