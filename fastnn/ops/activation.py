"""Elementwise activations, softmax / log_softmax, and their backward."""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve
from fastnn._op_checks import check_bounds, check_finite, gelu_approximation
from fastnn.ops._out import check_out

__all__ = [
    "activation_backward",
    "gelu",
    "gelu_backward",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "log_softmax_backward",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "silu_backward",
    "softmax",
    "softmax_backward",
    "tanh",
]

#: The names activation_backward takes (fastnn._args.ACTIVATIONS also drives linear and
#: the sensitivity ops, whose kernels know only the first three).
BACKWARD_NAMES = ("relu", "sigmoid", "tanh", "hardtanh", "relu6", "leaky_relu")


def _forward_out(op: str, input: Any, out: Any, backend: str | None, *params: float) -> Any:
    """Run the (x, out, *params) implementation of ``op``; ``out`` itself is returned."""
    kind = _args.float_array(op, "input", input)
    if out is None:
        return resolve(op, kind, backend)(input, None, *params)
    check_out(op, out, input, kind)
    resolve(op, kind, backend)(input, out, *params)
    return out


def relu(input: Any, *, out: Any = None, backend: str | None = None) -> Any:
    """``max(input, 0)`` elementwise (NaN stays NaN, as in PyTorch).  ``out``: an array
    of the input's shape, dtype and kind (C-contiguous, writeable; the input itself for
    in place) that receives the result and is returned."""
    if out is None:  # the fast path: one check, one call
        return resolve("relu", _args.float_array("relu", "input", input), backend)(input, None)
    return _forward_out("relu", input, out, backend)


def hardtanh(
    input: Any,
    min_val: float = -1.0,
    max_val: float = 1.0,
    *,
    out: Any = None,
    backend: str | None = None,
) -> Any:
    """``input`` clamped to ``[min_val, max_val]`` elementwise (NaN stays NaN).  ``out``
    as for :func:`relu`."""
    lo, hi = check_bounds("hardtanh", min_val, max_val)
    return _forward_out("hardtanh", input, out, backend, lo, hi)


def relu6(input: Any, *, out: Any = None, backend: str | None = None) -> Any:
    """``min(max(input, 0), 6)`` elementwise: :func:`hardtanh` on ``[0, 6]``.  ``out`` as
    for :func:`relu`."""
    return _forward_out("relu6", input, out, backend)


def leaky_relu(
    input: Any, negative_slope: float = 0.01, *, out: Any = None, backend: str | None = None
) -> Any:
    """``input if input > 0 else negative_slope * input`` elementwise.  ``out`` as for
    :func:`relu`."""
    slope = check_finite("leaky_relu", "negative_slope", negative_slope)
    return _forward_out("leaky_relu", input, out, backend, slope)


def silu(input: Any, *, backend: str | None = None) -> Any:
    """``input * sigmoid(input)`` elementwise (also called swish)."""
    return resolve("silu", _args.float_array("silu", "input", input), backend)(input)


def gelu(input: Any, approximate: str = "none", *, backend: str | None = None) -> Any:
    """``input * Phi(input)``, Phi the standard normal CDF (``approximate="none"``, with
    erf), or PyTorch's ``approximate="tanh"``:
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""
    approx = gelu_approximation("gelu", approximate)
    return resolve("gelu", _args.float_array("gelu", "input", input), backend)(input, approx)


def silu_backward(grad_output: Any, input: Any, *, backend: str | None = None) -> Any:
    """Gradient of :func:`silu` from the forward INPUT ``x`` (the output does not
    determine it): ``g * s * (1 + x (1 - s))``, ``s = sigmoid(x)``."""
    op = "silu_backward"
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    _args.check_same_shape(op, "grad_output", grad_output, "input", input)
    return resolve(op, kind, backend)(grad_output, input)


def gelu_backward(
    grad_output: Any, input: Any, approximate: str = "none", *, backend: str | None = None
) -> Any:
    """Gradient of :func:`gelu` from the forward INPUT ``x``: ``g * (Phi(x) + x phi(x))``
    for ``approximate="none"``, the derivative of the tanh form for ``"tanh"``."""
    op = "gelu_backward"
    approx = gelu_approximation(op, approximate)
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    _args.check_same_shape(op, "grad_output", grad_output, "input", input)
    return resolve(op, kind, backend)(grad_output, input, approx)


def sigmoid(input: Any, *, backend: str | None = None) -> Any:
    """``1 / (1 + exp(-input))`` elementwise, without overflow for large ``|input|``."""
    return resolve("sigmoid", _args.float_array("sigmoid", "input", input), backend)(input)


def tanh(input: Any, *, backend: str | None = None) -> Any:
    """Hyperbolic tangent, elementwise."""
    return resolve("tanh", _args.float_array("tanh", "input", input), backend)(input)


def activation_backward(
    name: str,
    grad_output: Any,
    output: Any,
    *,
    min_val: float = -1.0,
    max_val: float = 1.0,
    negative_slope: float = 0.01,
    backend: str | None = None,
) -> Any:
    """Gradient of activation ``name`` with respect to its input, from the gradient of
    its output and the forward output ``y`` itself:

    - relu ``0 if y <= 0 else g`` (a NaN output passes ``g``, as in PyTorch);
    - sigmoid ``g * y * (1 - y)``, tanh ``g * (1 - y**2)``;
    - hardtanh ``g if min_val < y < max_val else 0`` (NaN passes ``g``; the same as
      PyTorch's ``hardtanh_backward`` from the input), relu6 that on ``[0, 6]``;
    - leaky_relu ``g if y > 0 else negative_slope * g``: only for ``negative_slope >= 0``
      (with a negative slope the output's sign no longer tells the input's, as PyTorch's
      in-place leaky_relu also refuses).

    ``min_val`` / ``max_val`` are read for "hardtanh" only, ``negative_slope`` for
    "leaky_relu" only."""
    op = "activation_backward"
    if name is None:  # (None, the identity elsewhere, has no gradient op of its own)
        raise ValueError(f"{op}: name must be one of {BACKWARD_NAMES}, got None")
    if not isinstance(name, str) or name not in BACKWARD_NAMES:
        raise ValueError(f"{op}: activation must be one of {BACKWARD_NAMES}, got {name!r}")
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "output": output})
    _args.check_same_shape(op, "grad_output", grad_output, "output", output)
    impl = resolve(op, kind, backend)
    if name == "hardtanh":
        lo, hi = check_bounds(op, min_val, max_val)
        return impl(name, grad_output, output, lo, hi)
    if name == "leaky_relu":
        slope = check_finite(op, "negative_slope", negative_slope)
        if slope < 0:
            raise ValueError(
                f"{op}: leaky_relu's gradient from its output needs negative_slope >= 0, "
                f"got {slope!r}: with a negative slope the output's sign does not tell the "
                f"input's (PyTorch refuses in-place leaky_relu backward for the same reason)"
            )
        return impl(name, grad_output, output, slope, 0.0)
    if name == "relu6":
        return impl("hardtanh", grad_output, output, 0.0, 6.0)
    return impl(name, grad_output, output, 0.0, 0.0)


def _softmax_like(op: str, input: Any, dim: object, backend: str | None) -> Any:
    kind = _args.float_array(op, "input", input)
    ndim = len(input.shape)
    d = _args.check_dim(op, dim, ndim)
    if ndim == 0:
        return resolve(op, kind, backend)(input.reshape(1), 0).reshape(())
    return resolve(op, kind, backend)(input, d)


def softmax(input: Any, dim: int = -1, *, backend: str | None = None) -> Any:
    """``exp(x - max) / sum(exp(x - max))`` along ``dim``: numerically stable for any
    magnitude of the input."""
    return _softmax_like("softmax", input, dim, backend)


def log_softmax(input: Any, dim: int = -1, *, backend: str | None = None) -> Any:
    """``x - max - log(sum(exp(x - max)))`` along ``dim``: stable, never ``log(0)``."""
    return _softmax_like("log_softmax", input, dim, backend)


def _softmax_backward(op: str, grad_output: Any, output: Any, dim: object, backend) -> Any:
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "output": output})
    _args.check_same_shape(op, "grad_output", grad_output, "output", output)
    ndim = len(output.shape)
    d = _args.check_dim(op, dim, ndim)
    if ndim == 0:
        impl = resolve(op, kind, backend)
        return impl(grad_output.reshape(1), output.reshape(1), 0).reshape(())
    return resolve(op, kind, backend)(grad_output, output, d)


def softmax_backward(
    grad_output: Any, output: Any, dim: int = -1, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`softmax` from its output ``y``: ``y * (g - sum(g * y, dim))``."""
    return _softmax_backward("softmax_backward", grad_output, output, dim, backend)


def log_softmax_backward(
    grad_output: Any, output: Any, dim: int = -1, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`log_softmax` from its output ``y``:
    ``g - exp(y) * sum(g, dim)``."""
    return _softmax_backward("log_softmax_backward", grad_output, output, dim, backend)
