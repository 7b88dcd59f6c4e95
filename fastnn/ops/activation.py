"""Elementwise activations, softmax / log_softmax, and their backward."""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve

__all__ = [
    "activation_backward",
    "log_softmax",
    "log_softmax_backward",
    "relu",
    "sigmoid",
    "softmax",
    "softmax_backward",
    "tanh",
]


def relu(input: Any, *, backend: str | None = None) -> Any:
    """``max(input, 0)`` elementwise (NaN stays NaN, as in PyTorch)."""
    return resolve("relu", _args.float_array("relu", "input", input), backend)(input)


def sigmoid(input: Any, *, backend: str | None = None) -> Any:
    """``1 / (1 + exp(-input))`` elementwise, without overflow for large ``|input|``."""
    return resolve("sigmoid", _args.float_array("sigmoid", "input", input), backend)(input)


def tanh(input: Any, *, backend: str | None = None) -> Any:
    """Hyperbolic tangent, elementwise."""
    return resolve("tanh", _args.float_array("tanh", "input", input), backend)(input)


def activation_backward(
    name: str, grad_output: Any, output: Any, *, backend: str | None = None
) -> Any:
    """Gradient of activation ``name`` ("relu", "sigmoid" or "tanh") with respect to its
    input, from the gradient of its output and the forward output itself:
    relu ``0 if y <= 0 else g`` (a NaN output passes ``g``, as in PyTorch), sigmoid
    ``g * y * (1 - y)``, tanh ``g * (1 - y**2)``."""
    op = "activation_backward"
    if name is None:
        raise ValueError(f"{op}: name must be one of ('relu', 'sigmoid', 'tanh'), got None")
    act = _args.activation_name(op, name)
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "output": output})
    _args.check_same_shape(op, "grad_output", grad_output, "output", output)
    return resolve(op, kind, backend)(act, grad_output, output)


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
