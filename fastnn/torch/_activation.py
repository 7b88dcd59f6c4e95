"""relu, sigmoid, tanh, softmax and log_softmax on torch tensors, run by fastnn (and,
from ``_activation_extra``, hardtanh, relu6, leaky_relu, silu, gelu and the in-place
variants: ``relu(input, inplace=True)`` runs fastnn's kernel into the tensor's memory).

Each backward works from the forward *output* (fastnn's ``activation_backward``,
``softmax_backward``, ``log_softmax_backward``), so only the output is saved.  Same three
layers as ``_conv``: tensor-level functions, ``torch.autograd.Function`` classes for eager
mode, custom ops ``torch.ops.fastnn.*`` for ``torch.compile``.
"""

from __future__ import annotations

from typing import Any

import torch

import fastnn
from fastnn.torch._activation_extra import (
    gelu,
    hardtanh,
    inplace_relu,
    leaky_relu,
    relu6,
    silu,
)
from fastnn.torch._activation_grad import activation_grad, softmax_grad
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor
from fastnn.torch._custom_op import op_pair

__all__ = [
    "ActivationFunction",
    "SoftmaxFunction",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]

_ACTIVATIONS = {"relu": fastnn.relu, "sigmoid": fastnn.sigmoid, "tanh": fastnn.tanh}
_SOFTMAX = {"softmax": fastnn.softmax, "log_softmax": fastnn.log_softmax}
_SOFTMAX_BACKWARD = {
    "softmax": fastnn.softmax_backward,
    "log_softmax": fastnn.log_softmax_backward,
}


def activation_forward(name: str, input: torch.Tensor) -> torch.Tensor:
    """fastnn's relu / sigmoid / tanh (by ``name``) on a tensor."""
    with device_scope(input):
        return to_tensor(_ACTIVATIONS[name](to_array(f"fastnn.torch.{name}", "input", input)))


def activation_backward(name: str, grad_output, output) -> torch.Tensor:
    """Gradient of activation ``name`` from its forward output."""
    op = f"fastnn.torch.{name} backward"
    with device_scope(output):
        grad = fastnn.activation_backward(
            name, to_array(op, "grad_output", grad_output), to_array(op, "output", output)
        )
        return to_tensor(grad)


def softmax_forward(name: str, input: torch.Tensor, dim: int) -> torch.Tensor:
    """fastnn's softmax or log_softmax (by ``name``) along ``dim``."""
    with device_scope(input):
        y = _SOFTMAX[name](to_array(f"fastnn.torch.{name}", "input", input), dim)
        return to_tensor(y)


def softmax_backward(name: str, grad_output, output, dim: int) -> torch.Tensor:
    """Gradient of softmax / log_softmax from its forward output."""
    op = f"fastnn.torch.{name} backward"
    with device_scope(output):
        grad = _SOFTMAX_BACKWARD[name](
            to_array(op, "grad_output", grad_output), to_array(op, "output", output), dim
        )
        return to_tensor(grad)


class ActivationFunction(torch.autograd.Function):
    """``apply(name, input)`` for name "relu", "sigmoid" or "tanh"."""

    @staticmethod
    def forward(ctx, name, input):
        y = activation_forward(name, input)
        ctx.save_for_backward(y)
        ctx.name = name
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            return None, activation_grad(ctx.name, grad_output, output)
        return None, activation_backward(ctx.name, grad_output, output)


class SoftmaxFunction(torch.autograd.Function):
    """``apply(name, input, dim)`` for name "softmax" or "log_softmax"."""

    @staticmethod
    def forward(ctx, name, input, dim):
        y = softmax_forward(name, input, dim)
        ctx.save_for_backward(y)
        ctx.params = (name, dim)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        name, dim = ctx.params
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            return None, softmax_grad(name, grad_output, output, dim), None
        return None, softmax_backward(name, grad_output, output, dim), None


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------


def _save_output(ctx, inputs, output):
    ctx.save_for_backward(output)
    ctx.params = inputs[1:]


def _register_activation(name: str, backward_op: Any) -> Any:
    """``fastnn::{name}`` with its autograd through ``fastnn::activation_backward``."""
    op = torch.library.custom_op(
        f"fastnn::{name}",
        lambda input: activation_forward(name, input),
        mutates_args=(),
        schema="(Tensor input) -> Tensor",
    )
    op.register_fake(lambda input: torch.empty_like(input, memory_format=torch.contiguous_format))

    def autograd_backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        return backward_op(name, grad_output, output)

    op.register_autograd(autograd_backward, setup_context=_save_output)
    return op


def _register_softmax(name: str) -> Any:
    """``fastnn::{name}`` and ``fastnn::{name}_backward``."""
    op, backward_op = op_pair(
        name,
        lambda input, dim: softmax_forward(name, input, dim),
        "(Tensor input, int dim) -> Tensor",
        lambda grad_output, output, dim: softmax_backward(name, grad_output, output, dim),
        "(Tensor grad_output, Tensor output, int dim) -> Tensor",
    )
    op.register_fake(
        lambda input, dim: torch.empty_like(input, memory_format=torch.contiguous_format)
    )
    backward_op.register_fake(
        lambda grad_output, output, dim: torch.empty_like(
            output, memory_format=torch.contiguous_format
        )
    )

    def autograd_backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        (dim,) = ctx.params
        return backward_op(grad_output, output, dim), None

    op.register_autograd(autograd_backward, setup_context=_save_output)
    return op


_activation_backward_op = torch.library.custom_op(
    "fastnn::activation_backward",
    activation_backward,
    mutates_args=(),
    schema="(str name, Tensor grad_output, Tensor output) -> Tensor",
)
_activation_backward_op.register_fake(
    lambda name, grad_output, output: torch.empty_like(
        output, memory_format=torch.contiguous_format
    )
)

_ACTIVATION_OPS = {
    name: _register_activation(name, _activation_backward_op) for name in _ACTIVATIONS
}
_SOFTMAX_OPS = {name: _register_softmax(name) for name in _SOFTMAX}


# ---------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------


def _activation(name: str, input: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return _ACTIVATION_OPS[name](input)
    return apply_function(ActivationFunction, name, input)


def relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``torch.nn.functional.relu`` run by fastnn (NaN stays NaN).  ``inplace=True``
    writes the result into ``input`` and returns it, with torch's autograd checks: a
    leaf that requires grad raises, and so does the backward of an op that saved
    ``input`` before it was overwritten."""
    if inplace is True:
        return inplace_relu(input)
    if inplace is not False:
        raise TypeError(f"fastnn.torch.relu: inplace must be a bool, got {inplace!r}")
    return _activation("relu", input)


def sigmoid(input: torch.Tensor) -> torch.Tensor:
    """``torch.sigmoid`` run by fastnn."""
    return _activation("sigmoid", input)


def tanh(input: torch.Tensor) -> torch.Tensor:
    """``torch.tanh`` run by fastnn."""
    return _activation("tanh", input)


def _softmax(name: str, input: torch.Tensor, dim: int, dtype: torch.dtype | None):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(
            f"fastnn.torch.{name}: dim must be an int, got {dim!r} (PyTorch's implicit dim "
            f"for dim=None is deprecated and not supported)"
        )
    if dtype is not None:  # as in torch: the input is cast before the operation
        input = input.to(dtype)
    if torch.compiler.is_compiling():
        return _SOFTMAX_OPS[name](input, dim)
    return apply_function(SoftmaxFunction, name, input, dim)


def softmax(input: torch.Tensor, dim: int = -1, *, dtype: torch.dtype | None = None):
    """``torch.nn.functional.softmax`` along ``dim`` run by fastnn; ``dtype`` casts the
    input first, as in torch."""
    return _softmax("softmax", input, dim, dtype)


def log_softmax(input: torch.Tensor, dim: int = -1, *, dtype: torch.dtype | None = None):
    """``torch.nn.functional.log_softmax`` along ``dim`` run by fastnn; ``dtype`` casts
    the input first, as in torch."""
    return _softmax("log_softmax", input, dim, dtype)
