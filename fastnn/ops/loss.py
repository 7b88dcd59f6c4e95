"""Losses (MSE, binary cross-entropy, cross-entropy over logits) and their gradients."""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn.ops import _data_checks

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "mse_loss",
    "mse_loss_backward",
]


def _pointwise(
    op: str, input: Any, target: Any, reduction: object, backend, probabilities: bool = False
) -> Any:
    """Validate a loss of same-shape ``input`` and ``target`` (``input`` in [0, 1] when
    ``probabilities``), then run ``op``."""
    kind, _ = _args.float_arrays(op, {"input": input, "target": target})
    _args.check_same_shape(op, "input", input, "target", target)
    red = _args.reduction_name(op, reduction)
    if probabilities:
        _data_checks.check_probabilities(op, "input", input, kind, backend)
    return resolve(op, kind, backend)(input, target, red)


def mse_loss(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """Mean squared error ``(input - target)**2`` reduced by "mean" (over all elements),
    "sum" or "none".  A reduced loss is a 0-d array."""
    return _pointwise("mse_loss", input, target, reduction, backend)


def mse_loss_backward(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """d loss / d input of :func:`mse_loss`: ``2 * (input - target)``, divided by the
    number of elements for "mean"."""
    return _pointwise("mse_loss_backward", input, target, reduction, backend)


def binary_cross_entropy(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """``-(t * log(p) + (1 - t) * log(1 - p))`` for probabilities ``p`` in [0, 1]; each log
    is clamped at -100 as in PyTorch, so p = 0 or 1 gives a finite loss."""
    return _pointwise("binary_cross_entropy", input, target, reduction, backend, probabilities=True)


def binary_cross_entropy_backward(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """d loss / d input of :func:`binary_cross_entropy`:
    ``(p - t) / max(p * (1 - p), 1e-12)``, divided by the element count for "mean"."""
    return _pointwise(
        "binary_cross_entropy_backward", input, target, reduction, backend, probabilities=True
    )


def _class_targets(op: str, input: Any, target: Any, reduction: object, backend) -> Any:
    """Validate logits ``input`` (N, C) and class indices ``target`` (N,), then run ``op``."""
    kind = _args.float_array(op, "input", input)
    _args.check_ndim(op, "input", input, 2, "logits (N, C)")
    _args.index_array(op, "target", target, kind)
    _args.check_shape(op, "target", target, (input.shape[0],), "one class index per row")
    red = _args.reduction_name(op, reduction)
    _data_checks.check_index_range(op, "target", target, kind, 0, input.shape[1], backend)
    return resolve(op, kind, backend)(input, target, red)


def cross_entropy(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """Cross-entropy of logits ``input`` (N, C) against integer class indices ``target``
    (N,): ``-log_softmax(input)[n, target[n]]``, reduced by "mean" (over N), "sum" or
    "none".  Targets outside [0, C) raise ValueError before any kernel reads them."""
    return _class_targets("cross_entropy", input, target, reduction, backend)


def cross_entropy_backward(
    input: Any, target: Any, reduction: str = "mean", *, backend: str | None = None
) -> Any:
    """d loss / d logits of :func:`cross_entropy`: ``softmax(input) - onehot(target)``,
    divided by N for "mean"."""
    return _class_targets("cross_entropy_backward", input, target, reduction, backend)
