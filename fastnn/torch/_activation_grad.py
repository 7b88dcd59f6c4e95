"""Differentiable gradients of the activations, for higher-order autograd.

Every ``fastnn.torch`` Function has a first-order backward that runs fastnn's fused,
once-differentiable kernels when autograd records no graph (``torch.is_grad_enabled()``
False inside backward: the usual ``loss.backward()``).  Under ``create_graph=True`` the
backward instead composes the Functions below, whose own backward is differentiable
again, to any order:

- ``PointwiseGradFunction``: ``fastnn.activation_backward`` (relu, sigmoid, tanh,
  hardtanh, leaky_relu, from the forward output).  Linear in the incoming gradient, so
  its gradient in that argument is itself; its gradient in the output (sigmoid, tanh; zero
  for the piecewise-linear ones) is elementwise glue.
- ``SoftmaxGradFunction``: ``fastnn.softmax_backward`` / ``log_softmax_backward``.
- ``InputGradFunction``: ``fastnn.silu_backward`` / ``gelu_backward`` (from the input).

The glue (products with second derivatives such as ``-2 y g``, softmax's row sums) is
torch elementwise arithmetic and reductions; the gradient values themselves come from
fastnn's backward kernels.
"""

from __future__ import annotations

import math

import torch

import fastnn
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor

__all__ = [
    "InputGradFunction",
    "PointwiseGradFunction",
    "SoftmaxGradFunction",
    "activation_grad",
    "input_grad",
    "softmax_grad",
]

#: activation name -> (fastnn name, p0, p1) for the fused activations given by name only.
_ALIASES = {"relu6": ("hardtanh", 0.0, 6.0)}


def pointwise_kernel(name: str, grad_output, output, p0: float, p1: float) -> torch.Tensor:
    """fastnn's activation_backward of relu / hardtanh / leaky_relu (``p0``, ``p1``: their
    parameters) from the forward output."""
    op = f"fastnn.torch.{name} backward"
    kw = {"hardtanh": {"min_val": p0, "max_val": p1}, "leaky_relu": {"negative_slope": p0}}
    with device_scope(output):
        grad = fastnn.activation_backward(
            name,
            to_array(op, "grad_output", grad_output),
            to_array(op, "output", output),
            **kw.get(name, {}),
        )
        return to_tensor(grad)


class PointwiseGradFunction(torch.autograd.Function):
    """``apply(name, grad_output, output, p0, p1)``: the gradient of activation ``name``
    ("relu", "sigmoid", "tanh", "hardtanh" on [p0, p1], "leaky_relu" with slope p0 >= 0)
    from its forward ``output``, differentiable in both tensors."""

    @staticmethod
    def forward(ctx, name, grad_output, output, p0, p1):
        ctx.save_for_backward(grad_output, output)
        ctx.params = (name, p0, p1)
        return pointwise_kernel(name, grad_output, output, p0, p1)

    @staticmethod
    def backward(ctx, grad):
        grad_output, output = ctx.saved_tensors
        name, p0, p1 = ctx.params
        d_grad = d_output = None
        if ctx.needs_input_grad[1]:
            d_grad = apply_function(PointwiseGradFunction, name, grad, output, p0, p1)
        if ctx.needs_input_grad[2] and name in ("sigmoid", "tanh"):
            # d/dy of g * y (1 - y) is g (1 - 2y); of g (1 - y^2) is -2 g y.
            slope = 1 - 2 * output if name == "sigmoid" else -2 * output
            d_output = grad * grad_output * slope
        return None, d_grad, d_output, None, None


def activation_grad(
    name: str | None, grad_output: torch.Tensor, output: torch.Tensor, p0=0.0, p1=0.0
) -> torch.Tensor:
    """d loss / d input of activation ``name`` (None: the identity; "relu6" is hardtanh on
    [0, 6]) from its forward ``output``, differentiable when autograd records a graph."""
    if name is None:
        return grad_output
    name, p0, p1 = _ALIASES.get(name, (name, p0, p1))
    return apply_function(PointwiseGradFunction, name, grad_output, output, p0, p1)


class SoftmaxGradFunction(torch.autograd.Function):
    """``apply(name, grad_output, output, dim)``: fastnn's softmax / log_softmax backward
    from the forward ``output``, differentiable in both tensors."""

    @staticmethod
    def forward(ctx, name, grad_output, output, dim):
        ctx.save_for_backward(grad_output, output)
        ctx.params = (name, dim)
        kernel = fastnn.softmax_backward if name == "softmax" else fastnn.log_softmax_backward
        op = f"fastnn.torch.{name} backward"
        with device_scope(output):
            grad = kernel(
                to_array(op, "grad_output", grad_output), to_array(op, "output", output), dim
            )
            return to_tensor(grad)

    @staticmethod
    def backward(ctx, grad):
        grad_output, output = ctx.saved_tensors
        name, dim = ctx.params
        d_grad = d_output = None
        if name == "softmax":
            # gx = y * (g - <g, y>): symmetric in g, so its g-gradient is itself.
            if ctx.needs_input_grad[1]:
                d_grad = apply_function(SoftmaxGradFunction, name, grad, output, dim)
            if ctx.needs_input_grad[2]:
                g_dot_y = (grad_output * output).sum(dim, keepdim=True)
                r_dot_y = (grad * output).sum(dim, keepdim=True)
                d_output = grad * (grad_output - g_dot_y) - r_dot_y * grad_output
        else:
            # gx = g - p * sum(g), p = exp(y).
            p = output.exp()
            if ctx.needs_input_grad[1]:
                d_grad = grad - (grad * p).sum(dim, keepdim=True)
            if ctx.needs_input_grad[2]:
                d_output = -grad * p * grad_output.sum(dim, keepdim=True)
        return None, d_grad, d_output, None


def softmax_grad(name: str, grad_output, output, dim: int) -> torch.Tensor:
    """The gradient of softmax / log_softmax (``name``), differentiable."""
    return apply_function(SoftmaxGradFunction, name, grad_output, output, dim)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _second_derivative(name: str, x: torch.Tensor) -> torch.Tensor:
    """silu'' or gelu'' ("gelu" erf form, "gelu_tanh" the tanh form) at ``x``, in torch
    ops (differentiable again)."""
    if name == "silu":
        s = torch.sigmoid(x)
        return s * (1 - s) * (2 + x * (1 - 2 * s))
    if name == "gelu":
        density = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return density * (2 - x * x)
    u1 = _SQRT_2_OVER_PI * (1 + 3 * _GELU_CUBIC * x * x)  # u' for u = c (x + a x^3)
    u2 = _SQRT_2_OVER_PI * 6 * _GELU_CUBIC * x
    t = torch.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x))
    return (1 - t * t) * (u1 + 0.5 * x * (u2 - 2 * t * u1 * u1))


def _input_kernel(name: str, grad_output, input) -> torch.Tensor:
    op = f"fastnn.torch.{name} backward"
    with device_scope(input):
        g, x = to_array(op, "grad_output", grad_output), to_array(op, "input", input)
        if name == "silu":
            return to_tensor(fastnn.silu_backward(g, x))
        return to_tensor(fastnn.gelu_backward(g, x, "none" if name == "gelu" else "tanh"))


class InputGradFunction(torch.autograd.Function):
    """``apply(name, grad_output, input)``: the gradient of silu / gelu ("gelu": erf,
    "gelu_tanh": the tanh form) from the forward input, differentiable in both."""

    @staticmethod
    def forward(ctx, name, grad_output, input):
        ctx.save_for_backward(grad_output, input)
        ctx.name = name
        return _input_kernel(name, grad_output, input)

    @staticmethod
    def backward(ctx, grad):
        grad_output, input = ctx.saved_tensors
        d_grad = d_input = None
        if ctx.needs_input_grad[1]:
            d_grad = apply_function(InputGradFunction, ctx.name, grad, input)
        if ctx.needs_input_grad[2]:
            d_input = grad * grad_output * _second_derivative(ctx.name, input)
        return None, d_grad, d_input


def input_grad(name: str, grad_output, input) -> torch.Tensor:
    """The gradient of silu / gelu / gelu_tanh from the input, differentiable."""
    return apply_function(InputGradFunction, name, grad_output, input)
