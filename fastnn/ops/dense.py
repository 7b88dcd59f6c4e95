"""gemm, linear (fused bias + activation) and linear_backward: validate once, then dispatch."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import _args
from fastnn._dispatch import lean, resolve

__all__ = ["gemm", "linear", "linear_backward"]


def _broadcastable(shape: tuple[int, ...], target: tuple[int, int]) -> bool:
    if len(shape) > 2:
        return False
    for have, want in zip(reversed(shape), reversed(target)):
        if have not in (1, want):
            return False
    return True


def gemm(
    a: Any,
    b: Any,
    c: Any = None,
    *,
    alpha: float = 1.0,
    beta: float = 0.0,
    trans_a: bool = False,
    trans_b: bool = False,
    backend: str | None = None,
) -> Any:
    """General matrix multiply ``alpha * op(a) @ op(b) + beta * c`` where ``op(x)`` is ``x``
    or ``x.T`` by ``trans_a`` / ``trans_b``.

    ``a`` and ``b`` are 2-d; ``op(a)`` is (M, K) and ``op(b)`` is (K, N).  ``c`` may be any
    array broadcastable to (M, N) (as in ``torch.addmm``); when ``beta`` is 0 it is ignored,
    NaN and inf in it included.  Returns a new C-contiguous (M, N) array.
    """
    if (
        c is None
        and trans_a.__class__ is bool
        and trans_b.__class__ is bool
        and alpha.__class__ is float
        and alpha == 1.0
        and beta.__class__ is float
        and beta == 0.0
    ):  # op(a) @ op(b): the lean path runs it when it remembers the shape's engine
        run = lean("gemm", backend)
        if run is not None:
            out = run(a, b, trans_a, trans_b)
            if out is not None:
                return out
    if (
        c is None
        and (backend is None or backend == "cpu")
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and alpha.__class__ is float
        and beta.__class__ is float
        and trans_a is False
        and trans_b is False
        and a.ndim == 2
        and b.ndim == 2
        and a.dtype is b.dtype
        and a.dtype in _args.FLOAT_DTYPES
        and a.shape[1] == b.shape[0]
    ):  # the plain product: nothing left to check (NumPy arrays, defaults, shapes agree)
        return resolve("gemm", "numpy", backend)(a, b, None, alpha, beta, False, False)
    op = "gemm"
    kind, _ = _args.float_arrays(op, {"a": a, "b": b, "c": c}, optional=("c",))
    _args.check_ndim(op, "a", a, 2, "matrix")
    _args.check_ndim(op, "b", b, 2, "matrix")
    alpha = _args.check_scalar(op, "alpha", alpha)
    beta = _args.check_scalar(op, "beta", beta)
    trans_a = _args.check_bool(op, "trans_a", trans_a)
    trans_b = _args.check_bool(op, "trans_b", trans_b)
    m, k = (a.shape[1], a.shape[0]) if trans_a else tuple(a.shape)
    k2, n = (b.shape[1], b.shape[0]) if trans_b else tuple(b.shape)
    if k != k2:
        raise ValueError(
            f"gemm: inner dimensions differ: op(a) is {(m, k)} and op(b) is {(k2, n)} "
            f"(a.shape={tuple(a.shape)}, trans_a={trans_a}, b.shape={tuple(b.shape)}, "
            f"trans_b={trans_b})"
        )
    if c is not None and not _broadcastable(tuple(c.shape), (m, n)):
        raise ValueError(
            f"gemm: c must be broadcastable to the result shape {(m, n)}, got shape "
            f"{tuple(c.shape)}"
        )
    return resolve(op, kind, backend)(a, b, c, alpha, beta, trans_a, trans_b)


def _rows(x: Any) -> Any:
    """View an (..., F) array as (rows, F); rows = prod(...)."""
    if len(x.shape) == 2:
        return x
    return x.reshape(-1, tuple(x.shape)[-1]) if len(x.shape) != 1 else x.reshape(1, -1)


def _features(op: str, input: Any, weight: Any, layout: str, note: str) -> int:
    """Check that ``input`` is at least 1-d and ``weight`` (out_features, in_features)
    with ``input.shape[-1] == in_features`` (``layout`` and ``note`` go into the
    messages); return out_features."""
    if len(input.shape) < 1:
        raise ValueError(f"{op}: input must be at least 1-d{layout}, got shape ()")
    _args.check_ndim(op, "weight", weight, 2, "(out_features, in_features)")
    out_features, in_features = weight.shape
    if tuple(input.shape)[-1] != in_features:  # tuple: simulator shapes reject [-1]
        raise ValueError(
            f"{op}: input.shape[-1] must equal weight.shape[1] = {in_features}{note}, "
            f"got input shape {tuple(input.shape)}"
        )
    return out_features


def linear(
    input: Any,
    weight: Any,
    bias: Any = None,
    *,
    activation: str | None = None,
    backend: str | None = None,
) -> Any:
    """Fully connected layer ``activation(input @ weight.T + bias)`` in one fused pass.

    ``input`` is (..., in_features), ``weight`` (out_features, in_features), ``bias``
    (out_features,) or None; ``activation`` is None, "relu", "sigmoid" or "tanh".  Returns
    (..., out_features).
    """
    run = lean("linear", backend)  # it runs the layer when it remembers how
    if run is not None:
        out = run(input, weight, bias, activation)
        if out is not None:
            return out
    op = "linear"
    kind, _ = _args.float_arrays(
        op, {"input": input, "weight": weight, "bias": bias}, optional=("bias",)
    )
    out_features = _features(op, input, weight, " (..., in_features)", " (in_features)")
    if bias is not None:
        _args.check_shape(op, "bias", bias, (out_features,), "out_features")
    act = _args.activation_name(op, activation)
    out = resolve(op, kind, backend)(_rows(input), weight, bias, act)
    if len(input.shape) == 2:  # already (rows, out_features): a reshape costs ~0.3 us
        return out
    return out.reshape(*input.shape[:-1], out_features)


def linear_backward(
    grad_output: Any,
    input: Any,
    weight: Any,
    *,
    output_mask: tuple[bool, bool, bool] = (True, True, True),
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of ``input @ weight.T + bias`` given ``grad_output`` (..., out_features):
    ``(grad_input, grad_weight, grad_bias)``, None where ``output_mask`` is False.

    ``grad_output`` is the gradient with respect to the pre-activation; for a fused
    activation apply :func:`fastnn.activation_backward` first.
    """
    run = lean("linear_backward", backend)  # it runs the call when it remembers how
    if run is not None:
        out = run(grad_output, input, weight, output_mask)
        if out is not None:
            return out
    op = "linear_backward"
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input, "weight": weight})
    out_features = _features(op, input, weight, "", "")
    expected = (*input.shape[:-1], out_features)
    _args.check_shape(op, "grad_output", grad_output, expected, "input.shape[:-1] + (out,)")
    mask = _args.output_mask(op, output_mask)
    gi, gw, gb = resolve(op, kind, backend)(_rows(grad_output), _rows(input), weight, mask)
    if gi is not None and len(input.shape) != 2:
        gi = gi.reshape(input.shape)
    return gi, gw, gb
