"""linear (with fastnn's fused activation) on torch tensors, run by fastnn.

Forward is one fused pass ``activation(input @ weight.T + bias)``.  Backward is
``activation_backward`` (from the saved output) followed by ``linear_backward``, which
computes only the gradients autograd asks for.  Same three layers as ``_conv``.
"""

from __future__ import annotations

import torch

import fastnn
from fastnn.torch._activation_grad import activation_grad
from fastnn.torch._bridge import apply_function, device_scope, optional_array, to_array, to_tensor

__all__ = ["LinearFunction", "differentiable_backward", "linear"]

_OP = "fastnn.torch.linear"


def linear_forward(input, weight, bias, activation) -> torch.Tensor:
    """fastnn's linear on tensors; ``activation`` is None, "relu", "sigmoid" or "tanh"."""
    with device_scope(input):
        y = fastnn.linear(
            to_array(_OP, "input", input),
            to_array(_OP, "weight", weight),
            optional_array(_OP, "bias", bias),
            activation=activation,
        )
        return to_tensor(y)


def linear_backward(grad_output, input, weight, output, activation, mask):
    """(grad_input, grad_weight, grad_bias), None where ``mask`` is False.  With an
    ``activation``, ``output`` is the forward result it is differentiated from."""
    op = f"{_OP} backward"
    with device_scope(input):
        grad = to_array(op, "grad_output", grad_output)
        if activation is not None:
            grad = fastnn.activation_backward(activation, grad, to_array(op, "output", output))
        grads = fastnn.linear_backward(
            grad,
            to_array(op, "input", input),
            to_array(op, "weight", weight),
            output_mask=tuple(mask),
        )
        return tuple(None if g is None else to_tensor(g) for g in grads)


class LinearFunction(torch.autograd.Function):
    """``apply(input, weight, bias, activation)``."""

    @staticmethod
    def forward(ctx, input, weight, bias, activation):
        y = linear_forward(input, weight, bias, activation)
        ctx.save_for_backward(input, weight, y if activation is not None else None)
        ctx.activation = activation
        return y

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, output = ctx.saved_tensors
        mask = ctx.needs_input_grad[:3]
        grads = (None, None, None)
        if torch.is_grad_enabled():  # create_graph: gradients differentiable again
            grads = differentiable_backward(
                grad_output, input, weight, output, ctx.activation, mask
            )
        elif any(mask):
            grads = linear_backward(grad_output, input, weight, output, ctx.activation, mask)
        return (*grads, None)


def differentiable_backward(grad_output, input, weight, output, activation, mask):
    """``linear_backward`` made of differentiable Functions, for higher-order gradients:
    the activation's ``PointwiseGradFunction``, then products that are linears again
    (``grad_input = g @ W`` is ``linear(g, W.T)``, ``grad_weight = g.T @ x`` is
    ``linear(g.T, x.T)``), each differentiable to any order."""
    grad = activation_grad(activation, grad_output, output)
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        grad_input = apply_function(LinearFunction, grad, weight.t(), None, None)
    rows = grad.reshape(-1, weight.shape[0])
    if mask[1]:
        inputs = input.reshape(-1, weight.shape[1])
        grad_weight = apply_function(LinearFunction, rows.t(), inputs.t(), None, None)
    if mask[2]:
        grad_bias = rows.sum(0)
    return grad_input, grad_weight, grad_bias


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile (activation "" means none)
# ---------------------------------------------------------------------------------------


@torch.library.custom_op(
    "fastnn::linear",
    mutates_args=(),
    schema="(Tensor input, Tensor weight, Tensor? bias, str activation) -> Tensor",
)
def _linear_op(input, weight, bias, activation):
    return linear_forward(input, weight, bias, activation or None)


@torch.library.custom_op(
    "fastnn::linear_backward",
    mutates_args=(),
    schema=(
        "(Tensor grad_output, Tensor input, Tensor weight, Tensor? output, str activation, "
        "bool[] output_mask) -> Tensor[]"
    ),
)
def _linear_backward_op(grad_output, input, weight, output, activation, output_mask):
    grads = linear_backward(grad_output, input, weight, output, activation or None, output_mask)
    return [g for g in grads if g is not None]


@_linear_op.register_fake
def _(input, weight, bias, activation):
    return input.new_empty((*input.shape[:-1], weight.shape[0]))


@_linear_backward_op.register_fake
def _(grad_output, input, weight, output, activation, output_mask):
    like = (input, weight, weight.new_empty(weight.shape[0]))
    return [t.new_empty(t.shape) for t, wanted in zip(like, output_mask) if wanted]


def _setup_context(ctx, inputs, output):
    input, weight, _bias, activation = inputs
    ctx.save_for_backward(input, weight, output if activation else None)
    ctx.activation = activation


def _autograd_backward(ctx, grad_output):
    input, weight, output = ctx.saved_tensors
    mask = list(ctx.needs_input_grad[:3])
    grads = iter(
        _linear_backward_op(grad_output, input, weight, output, ctx.activation, mask)
        if any(mask)
        else ()
    )
    return (*(next(grads) if wanted else None for wanted in mask), None)


_linear_op.register_autograd(_autograd_backward, setup_context=_setup_context)


def linear(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: str | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.linear`` run by fastnn: ``input`` (..., in_features), ``weight``
    (out_features, in_features).  ``activation`` ("relu", "sigmoid", "tanh" or None) is
    applied in the same pass, as fastnn's fused linear does."""
    if torch.compiler.is_compiling():
        return _linear_op(input, weight, bias, activation or "")
    return apply_function(LinearFunction, input, weight, bias, activation)
