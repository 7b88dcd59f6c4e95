"""conv1d / conv2d on torch tensors, forward and backward run by fastnn.

Three layers, the same in every family module of this package:

1. ``conv_forward`` / ``conv_backward`` take and return tensors and call fastnn's public ops on
   zero-copy views of them (``fastnn.torch._bridge``).
2. ``ConvFunction`` (a ``torch.autograd.Function``) runs them in eager mode; its backward
   asks only for the gradients autograd needs (``output_mask``).  With a fused
   ``activation`` ("relu", "relu6") the forward output is saved too, and the gradient
   passes through the activation (from that output) before the convolution's backward.
3. The custom ops ``torch.ops.fastnn.conv1d`` / ``conv2d`` (and ``*_backward``) run them
   under ``torch.compile``: opaque to the compiler, with fake implementations for shapes
   and an autograd formula made of the backward op.

The public functions pick 2 in eager mode (less overhead) and 3 while compiling.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

import fastnn
from fastnn.ops import activation as _activation_ops
from fastnn.torch._activation_grad import activation_grad as pointwise_activation_grad
from fastnn.torch._bridge import (
    apply_function,
    run_op,
)
from fastnn.torch._custom_op import op_pair
from fastnn.torch._params import conv_padding, eager, int_list

__all__ = [
    "ConvFunction",
    "ConvGradFunction",
    "conv1d",
    "conv2d",
]

_FORWARD = {1: fastnn.conv1d, 2: fastnn.conv2d}
_BACKWARD = {1: fastnn.conv1d_backward, 2: fastnn.conv2d_backward}
_TORCH = {1: F.conv1d, 2: F.conv2d}
#: The activations a convolution fuses.
ACTIVATIONS = (None, "relu", "relu6")
#: The activations fastnn.activation_backward takes (relu6 joined relu later).
_FASTNN_BACKWARD = frozenset(getattr(_activation_ops, "BACKWARD_NAMES", ("relu",)))


def conv_forward(
    nd, input, weight, bias, stride, padding, dilation, groups, algo, activation=None
) -> torch.Tensor:
    """fastnn's conv{nd}d on tensors; ``padding`` is a list of ints, "same" or "valid";
    ``activation`` (None, "relu", "relu6") is fused into the convolution's output."""
    op = f"fastnn.torch.conv{nd}d"
    tensors = {"input": input, "weight": weight, "bias": bias}
    params = (stride, padding, dilation, groups)
    return run_op(
        op, _FORWARD[nd], input, tensors, *params, optional=("bias",), algo=algo,
        activation=activation,
    )  # fmt: skip


def activation_grad(activation: str | None, grad_output: torch.Tensor, output: torch.Tensor):
    """d loss / d (conv + bias) from d loss / d output, written with the forward OUTPUT y,
    as PyTorch's backward: relu passes the gradient where y > 0, relu6 where 0 < y < 6
    (fastnn's activation_backward; relu6 as torch ops where this fastnn lacks it); both
    pass it where y is NaN, as torch's threshold_backward and hardtanh_backward do."""
    if activation is None:
        return grad_output
    if activation == "relu" or activation in _FASTNN_BACKWARD:
        op = "fastnn.torch.conv activation backward"
        tensors = {"grad_output": grad_output, "output": output}
        fn = functools.partial(fastnn.activation_backward, activation)
        return run_op(op, fn, output, tensors)
    return torch.where((output <= 0) | (output >= 6), 0, grad_output)


def conv_backward(nd, grad_output, input, weight, stride, padding, dilation, groups, algo, mask):
    """fastnn's conv{nd}d_backward on tensors: (grad_input, grad_weight, grad_bias), None
    where ``mask`` is False (not computed)."""
    op = f"fastnn.torch.conv{nd}d backward"
    tensors = {"grad_output": grad_output, "input": input, "weight": weight}
    params = (stride, padding, dilation, groups)
    return run_op(op, _BACKWARD[nd], input, tensors, *params, algo=algo, output_mask=tuple(mask))


class ConvFunction(torch.autograd.Function):
    """Autograd for ``conv_forward``/``conv_backward``: ``apply(nd, input, weight, bias, stride,
    padding, dilation, groups, algo, activation)``."""

    @staticmethod
    def forward(ctx, nd, input, weight, bias, stride, padding, dilation, groups, algo, activation):
        y = conv_forward(
            nd, input, weight, bias, stride, padding, dilation, groups, algo, activation
        )
        ctx.save_for_backward(input, weight, y if activation is not None else None)
        ctx.params = (nd, stride, padding, dilation, groups, algo, activation)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, output = ctx.saved_tensors
        nd, stride, padding, dilation, groups, algo, activation = ctx.params
        mask = ctx.needs_input_grad[1:4]
        grads = (None, None, None)
        if torch.is_grad_enabled():  # create_graph: gradients differentiable again
            gy = pointwise_activation_grad(activation, grad_output, output)
            grads = differentiable_backward(gy, input, weight, ctx.params[:6], mask)
        elif any(mask):
            gy = activation_grad(activation, grad_output, output)
            grads = conv_backward(
                nd, gy, input, weight, stride, padding, dilation, groups, algo, mask
            )
        return (None, *grads, None, None, None, None, None, None)


# ---------------------------------------------------------------------------------------
# Higher-order gradients: the convolution's two backward products as one Function,
# differentiable through the other product and the convolution itself (params: nd,
# stride, padding, dilation, groups, algo)
# ---------------------------------------------------------------------------------------


class ConvGradFunction(torch.autograd.Function):
    """``apply(which, grad_output, operand, like, params)``: the gradient of a convolution
    with respect to its input (``which`` 0, a transposed convolution: ``operand`` is the
    weight, ``like`` the input) or its weight (``which`` 1: ``operand`` is the input,
    ``like`` the weight); ``like`` gives a shape only.  Both are bilinear: the gradient in
    ``grad_output`` is the convolution of the input by the weight, and the gradient in
    ``operand`` is the other one of the two (each pairs ``grad_output`` with the incoming
    gradient in place of the operand)."""

    @staticmethod
    def forward(ctx, which, grad_output, operand, like, params):
        ctx.save_for_backward(grad_output, operand)
        ctx.params = (which, params)
        input, weight = (like, operand) if which == 0 else (operand, like)
        nd, stride, padding, dilation, groups, algo = params
        mask = (which == 0, which == 1, False)
        grads = conv_backward(
            nd, grad_output, input, weight, stride, padding, dilation, groups, algo, mask
        )
        return grads[which]

    @staticmethod
    def backward(ctx, grad):
        grad_output, operand = ctx.saved_tensors
        which, params = ctx.params
        d_grad_output = d_operand = None
        if ctx.needs_input_grad[1]:
            input, weight = (grad, operand) if which == 0 else (operand, grad)
            nd, stride, padding, dilation, groups, algo = params
            d_grad_output = apply_function(
                ConvFunction, nd, input, weight, None, stride, padding, dilation, groups,
                algo, None,
            )  # fmt: skip
        if ctx.needs_input_grad[2]:
            d_operand = apply_function(
                ConvGradFunction, 1 - which, grad_output, grad, operand, params
            )
        return None, d_grad_output, d_operand, None, None


def differentiable_backward(grad, input, weight, params, mask):
    """(grad_input, grad_weight, grad_bias) from the pre-activation gradient ``grad``,
    differentiable to any order (None where ``mask`` is False)."""
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        grad_input = apply_function(ConvGradFunction, 0, grad, weight, input, params)
    if mask[1]:
        grad_weight = apply_function(ConvGradFunction, 1, grad, input, weight, params)
    if mask[2]:
        grad_bias = grad.sum([0, *range(2, grad.dim())])
    return grad_input, grad_weight, grad_bias


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------

_SIGNATURE = "int[] stride, int[] padding, str padding_name, int[] dilation, int groups, str algo"


def _register(nd: int) -> Any:
    """Define ``fastnn::conv{nd}d`` and ``fastnn::conv{nd}d_backward`` and return the
    forward op.  The backward op returns the gradients selected by ``output_mask``, in
    order, as a list."""
    name = f"conv{nd}d"

    def run_forward(
        input, weight, bias, stride, padding, padding_name, dilation, groups, algo,
        activation=None,
    ):  # fmt: skip
        pad = padding_name or padding
        return conv_forward(
            nd, input, weight, bias, stride, pad, dilation, groups, algo, activation
        )

    def run_backward(
        grad_output, input, weight, stride, padding, padding_name, dilation, groups, algo, mask,
        output=None, activation=None,
    ):  # fmt: skip
        pad = padding_name or padding
        gy = activation_grad(activation, grad_output, output)
        grads = conv_backward(nd, gy, input, weight, stride, pad, dilation, groups, algo, mask)
        return [g for g in grads if g is not None]

    forward_op, backward_op = op_pair(
        name,
        run_forward,
        (
            f"(Tensor input, Tensor weight, Tensor? bias, {_SIGNATURE}, "
            "str? activation=None) -> Tensor"
        ),
        run_backward,
        (
            f"(Tensor grad_output, Tensor input, Tensor weight, {_SIGNATURE}, "
            "bool[] output_mask, Tensor? output=None, str? activation=None) -> Tensor[]"
        ),
    )

    @forward_op.register_fake
    def _(
        input, weight, bias, stride, padding, padding_name, dilation, groups, algo,
        activation=None,
    ):  # fmt: skip
        pad = padding_name or padding
        shape = _TORCH[nd](input, weight, bias, stride, pad, dilation, groups).shape
        return input.new_empty(shape)

    @backward_op.register_fake
    def _(
        grad_output, input, weight, stride, padding, padding_name, dilation, groups, algo, mask,
        output=None, activation=None,
    ):  # fmt: skip
        like = (input, weight, weight.new_empty(weight.shape[0]))
        return [t.new_empty(t.shape) for t, wanted in zip(like, mask) if wanted]

    def setup_context(ctx, inputs, output):
        input, weight, _bias, *params = inputs
        activation = params[6] if len(params) > 6 else None
        ctx.save_for_backward(input, weight, output if activation is not None else None)
        ctx.params = params[:6]
        ctx.activation = activation

    def autograd_backward(ctx, grad_output):
        input, weight, output = ctx.saved_tensors
        mask = list(ctx.needs_input_grad[:3])
        grads = iter(
            backward_op(grad_output, input, weight, *ctx.params, mask, output, ctx.activation)
            if any(mask)
            else ()
        )
        return (*(next(grads) if wanted else None for wanted in mask), *[None] * 7)

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)
    return forward_op


_OPS = {nd: _register(nd) for nd in (1, 2)}


def _conv(nd, input, weight, bias, stride, padding, dilation, groups, algo, activation):
    if isinstance(input, torch.Tensor) and input.dim() == nd + 1:  # unbatched, as in torch
        y = _conv(
            nd, input.unsqueeze(0), weight, bias, stride, padding, dilation, groups, algo,
            activation,
        )  # fmt: skip
        return y.squeeze(0)
    if activation not in ACTIVATIONS:  # before the custom op's schema sees it
        raise ValueError(
            f"fastnn.torch.conv{nd}d: activation must be one of {ACTIVATIONS}, got {activation!r}"
        )
    stride, dilation = int_list(stride, nd), int_list(dilation, nd)
    pad_ints, pad_name = conv_padding(padding, nd)
    if torch.compiler.is_compiling():
        return _OPS[nd](
            input, weight, bias, stride, pad_ints, pad_name, dilation, groups, algo, activation
        )
    stride, padding, dilation = eager(stride, pad_name or pad_ints, dilation)
    return apply_function(
        ConvFunction, nd, input, weight, bias, stride, padding, dilation, groups, algo, activation
    )


def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    activation: str | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.conv1d`` run by fastnn: input (N, C_in, L) or unbatched
    (C_in, L), weight (C_out, C_in // groups, kL).  ``padding`` may be "same" or "valid";
    ``algo`` is fastnn's "auto", "im2col" or "direct".  ``activation`` None, "relu" or
    "relu6" is fused into the output (``F.relu(F.conv1d(...))`` in one pass).
    Differentiable (fastnn's conv1d_backward computes only the gradients autograd asks
    for; with an activation, the gradient first passes through it, from the output)."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, algo, activation)


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    activation: str | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.conv2d`` run by fastnn: input (N, C_in, H, W) or unbatched
    (C_in, H, W), weight (C_out, C_in // groups, kH, kW); ``activation`` None, "relu" or
    "relu6" fused into the output.  See :func:`conv1d`."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, algo, activation)
