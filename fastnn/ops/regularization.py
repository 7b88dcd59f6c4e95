"""Dropout (forward and backward) and the fused residual add ``act(a + b)``.

Dropout's random numbers come from a counter-based hash, the same on every backend, so a
seed gives the same mask on the CPU and on a GPU: element ``i`` (in C order) keeps its
value when ``(splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) >> 32) >= floor(p * 2**32)``,
where ``splitmix64`` is the output mix of Vigna's SplitMix64 generator.  Each element's
word depends only on (seed, i), so the kernels fill the mask in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn._kinds import KIND_NAMES, array_kind
from fastnn.ops._dropout_args import check_generator, dropout_seed, dropout_threshold

__all__ = ["RESIDUAL_ACTIVATIONS", "add", "dropout", "dropout_backward"]

#: The activations :func:`add` can apply.
RESIDUAL_ACTIVATIONS = (None, "relu", "relu6")


def dropout(
    input: Any,
    p: float = 0.5,
    training: bool = True,
    *,
    generator: Any = None,
    backend: str | None = None,
) -> tuple[Any, Any]:
    """Randomly zero elements of ``input`` with probability ``p`` and scale the others by
    ``1 / (1 - p)``: returns ``(output, mask)`` with ``output = input * mask / (1 - p)``
    and ``mask`` a uint8 array of ``input``'s shape (1 = kept).  With ``training=False``
    or ``p == 0`` the output is a copy of ``input`` and the mask is None.

    ``p`` must be in [0, 1).  ``generator`` picks the random stream: None (fresh OS
    entropy), an int seed (the same seed gives the same mask on every backend), or a
    ``numpy.random.Generator`` (one 64-bit seed is drawn from it)."""
    op = "dropout"
    kind = _args.float_array(op, "input", input)
    p_value, threshold = dropout_threshold(op, p)
    active = _args.check_bool(op, "training", training) and p_value > 0.0
    check_generator(op, generator)  # also when inactive: a bad one is an error either way
    seed = dropout_seed(op, generator) if active else None
    return resolve(op, kind, backend)(input, p_value, threshold, seed)


def dropout_backward(
    grad_output: Any, mask: Any, p: float = 0.5, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`dropout`: ``grad_output * mask / (1 - p)`` (any non-zero mask
    entry counts as kept; a bool mask works too).  ``mask`` None (the eval / ``p == 0``
    path) returns a copy of ``grad_output``."""
    op = "dropout_backward"
    kind = _args.float_array(op, "grad_output", grad_output)
    p_value, _ = dropout_threshold(op, p)
    if mask is not None:
        _check_mask(op, mask, kind)
        _args.check_same_shape(op, "grad_output", grad_output, "mask", mask)
    return resolve(op, kind, backend)(grad_output, mask, p_value)


def _check_mask(op: str, mask: Any, kind: str) -> None:
    """``mask`` is a uint8 or bool array on the device of the other arrays."""
    mask_kind = array_kind(mask)
    if mask_kind is None:
        raise TypeError(f"{op}: mask must be an array or None, got {type(mask).__name__}")
    if (mask_kind == "numpy") != (kind == "numpy"):
        raise ValueError(
            f"{op}: mask is a {KIND_NAMES[mask_kind]} but grad_output is a "
            f"{KIND_NAMES[kind]}; all arrays of one call must be on the same device"
        )
    if np.dtype(mask.dtype) not in (np.dtype(np.uint8), np.dtype(np.bool_)):
        raise TypeError(f"{op}: mask must be a uint8 or bool array, got dtype {mask.dtype}")


def add(a: Any, b: Any, *, activation: str | None = None, backend: str | None = None) -> Any:
    """The residual add ``activation(a + b)`` in one pass; ``activation`` is None, "relu"
    or "relu6" (``min(max(x, 0), 6)``; NaN propagates).  ``a`` and ``b`` must have the
    same shape and dtype (no broadcasting).  Its gradient with respect to ``a`` and to
    ``b`` is the activation's, from the output: ``activation_backward("relu", gy, y)``."""
    op = "add"
    kind, _ = _args.float_arrays(op, {"a": a, "b": b})
    _args.check_same_shape(op, "a", a, "b", b)
    act = _args.activation_name(op, activation, RESIDUAL_ACTIVATIONS)
    return resolve(op, kind, backend)(a, b, act)
