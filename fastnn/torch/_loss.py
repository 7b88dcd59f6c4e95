"""cross_entropy and mse_loss on torch tensors, run by fastnn.

fastnn's loss gradients are d loss / d input for an upstream gradient of 1; the backward
passes here multiply them by the upstream gradient (a scalar for "mean"/"sum", one value
per row or element for "none").  ``mse_loss`` is differentiable in its target too
(the negated input gradient).  Same three layers as ``_conv``.
"""

from __future__ import annotations

import torch

import fastnn
from fastnn.torch._activation import softmax
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor

__all__ = ["CrossEntropyFunction", "MSELossFunction", "cross_entropy", "mse_loss"]


def cross_entropy_forward(input, target, reduction: str) -> torch.Tensor:
    """fastnn's cross_entropy of logits (N, C) against int class indices (N,)."""
    op = "fastnn.torch.cross_entropy"
    with device_scope(input):
        loss = fastnn.cross_entropy(
            to_array(op, "input", input),
            to_array(op, "target", target, indices=True),
            reduction,
        )
        return to_tensor(loss)


def cross_entropy_backward(grad_output, input, target, reduction: str) -> torch.Tensor:
    """Gradient of cross_entropy with respect to the logits, times ``grad_output``."""
    op = "fastnn.torch.cross_entropy backward"
    with device_scope(input):
        grad = fastnn.cross_entropy_backward(
            to_array(op, "input", input),
            to_array(op, "target", target, indices=True),
            reduction,
        )
        grad = to_tensor(grad)
    return grad.mul_(grad_output.unsqueeze(-1) if reduction == "none" else grad_output)


def mse_loss_forward(input, target, reduction: str) -> torch.Tensor:
    """fastnn's mse_loss (input and target of the same shape)."""
    op = "fastnn.torch.mse_loss"
    with device_scope(input):
        loss = fastnn.mse_loss(
            to_array(op, "input", input), to_array(op, "target", target), reduction
        )
        return to_tensor(loss)


def mse_loss_backward(grad_output, input, target, reduction: str) -> torch.Tensor:
    """Gradient of mse_loss with respect to ``input``, times ``grad_output`` (the gradient
    with respect to ``target`` is its negation)."""
    op = "fastnn.torch.mse_loss backward"
    with device_scope(input):
        grad = fastnn.mse_loss_backward(
            to_array(op, "input", input), to_array(op, "target", target), reduction
        )
        grad = to_tensor(grad)
    return grad.mul_(grad_output)


class CrossEntropyFunction(torch.autograd.Function):
    """``apply(input, target, reduction)``; the target gets no gradient."""

    @staticmethod
    def forward(ctx, input, target, reduction):
        ctx.save_for_backward(input, target)
        ctx.reduction = reduction
        return cross_entropy_forward(input, target, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        grad = None
        if ctx.needs_input_grad[0]:
            input, target = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
                grad = _cross_entropy_grad(grad_output, input, target, ctx.reduction)
            else:
                grad = cross_entropy_backward(grad_output, input, target, ctx.reduction)
        return grad, None, None


class MSELossFunction(torch.autograd.Function):
    """``apply(input, target, reduction)``; both input and target are differentiable."""

    @staticmethod
    def forward(ctx, input, target, reduction):
        ctx.save_for_backward(input, target)
        ctx.reduction = reduction
        return mse_loss_forward(input, target, reduction)

    @staticmethod
    def backward(ctx, grad_output):
        need_input, need_target = ctx.needs_input_grad[:2]
        if not (need_input or need_target):
            return None, None, None
        input, target = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            grad = apply_function(MSEGradFunction, input, target, ctx.reduction) * grad_output
        else:
            grad = mse_loss_backward(grad_output, input, target, ctx.reduction)
        return (grad if need_input else None), (-grad if need_target else None), None


# ---------------------------------------------------------------------------------------
# Higher-order gradients
# ---------------------------------------------------------------------------------------


def _cross_entropy_grad(grad_output, input, target, reduction: str) -> torch.Tensor:
    """``(softmax(input) - onehot(target)) * grad_output`` (divided by N for "mean"), its
    softmax fastnn's differentiable ``SoftmaxFunction``."""
    probabilities = softmax(input, 1)
    onehot = torch.nn.functional.one_hot(target.long(), input.shape[1]).to(input.dtype)
    grad = probabilities - onehot
    if reduction == "none":
        return grad * grad_output.unsqueeze(-1)
    return grad * (grad_output / input.shape[0] if reduction == "mean" else grad_output)


class MSEGradFunction(torch.autograd.Function):
    """``apply(input, target, reduction)``: fastnn's ``mse_loss_backward``, ``c * (input -
    target)`` (c = 2, or 2 / numel for "mean"); its gradient in ``input`` is the same map
    applied to the incoming gradient (against a zero target), negated for ``target``."""

    @staticmethod
    def forward(ctx, input, target, reduction):
        ctx.reduction = reduction
        with device_scope(input):
            grad = fastnn.mse_loss_backward(
                to_array("fastnn.torch.mse_loss backward", "input", input),
                to_array("fastnn.torch.mse_loss backward", "target", target),
                reduction,
            )
            return to_tensor(grad)

    @staticmethod
    def backward(ctx, grad):
        d = apply_function(MSEGradFunction, grad, torch.zeros_like(grad), ctx.reduction)
        return (
            (d if ctx.needs_input_grad[0] else None),
            (-d if ctx.needs_input_grad[1] else None),
            None,
        )


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------


@torch.library.custom_op(
    "fastnn::cross_entropy",
    mutates_args=(),
    schema="(Tensor input, Tensor target, str reduction) -> Tensor",
)
def _cross_entropy_op(input, target, reduction):
    return cross_entropy_forward(input, target, reduction)


@torch.library.custom_op(
    "fastnn::cross_entropy_backward",
    mutates_args=(),
    schema="(Tensor grad_output, Tensor input, Tensor target, str reduction) -> Tensor",
)
def _cross_entropy_backward_op(grad_output, input, target, reduction):
    return cross_entropy_backward(grad_output, input, target, reduction)


@torch.library.custom_op(
    "fastnn::mse_loss",
    mutates_args=(),
    schema="(Tensor input, Tensor target, str reduction) -> Tensor",
)
def _mse_loss_op(input, target, reduction):
    return mse_loss_forward(input, target, reduction)


@torch.library.custom_op(
    "fastnn::mse_loss_backward",
    mutates_args=(),
    schema="(Tensor grad_output, Tensor input, Tensor target, str reduction) -> Tensor",
)
def _mse_loss_backward_op(grad_output, input, target, reduction):
    return mse_loss_backward(grad_output, input, target, reduction)


@_cross_entropy_op.register_fake
def _(input, target, reduction):
    return input.new_empty(input.shape[:1] if reduction == "none" else ())


@_mse_loss_op.register_fake
def _(input, target, reduction):
    return input.new_empty(input.shape if reduction == "none" else ())


def _gradient_like_input(grad_output, input, target, reduction):
    return input.new_empty(input.shape)


_cross_entropy_backward_op.register_fake(_gradient_like_input)
_mse_loss_backward_op.register_fake(_gradient_like_input)


def _save_inputs(ctx, inputs, output):
    input, target, reduction = inputs
    ctx.save_for_backward(input, target)
    ctx.reduction = reduction


def _cross_entropy_autograd(ctx, grad_output):
    input, target = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = _cross_entropy_backward_op(grad_output, input, target, ctx.reduction)
    return grad, None, None


def _mse_loss_autograd(ctx, grad_output):
    input, target = ctx.saved_tensors
    need_input, need_target = ctx.needs_input_grad[:2]
    if not (need_input or need_target):
        return None, None, None
    grad = _mse_loss_backward_op(grad_output, input, target, ctx.reduction)
    return (grad if need_input else None), (-grad if need_target else None), None


_cross_entropy_op.register_autograd(_cross_entropy_autograd, setup_context=_save_inputs)
_mse_loss_op.register_autograd(_mse_loss_autograd, setup_context=_save_inputs)


# ---------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` of logits (N, C) against int64 class indices
    (N,), run by fastnn; ``reduction`` is "mean", "sum" or "none".

    fastnn computes the plain loss: ``weight`` must be None and ``label_smoothing`` 0
    (ValueError otherwise), and every target must be a class index in [0, C) (a target
    equal to ``ignore_index`` raises ValueError rather than being skipped).
    """
    if weight is not None or label_smoothing != 0.0:
        raise ValueError(
            "fastnn.torch.cross_entropy: class weights and label smoothing are not "
            f"supported by fastnn, got weight={'a tensor' if weight is not None else None}, "
            f"label_smoothing={label_smoothing!r}; use torch.nn.functional.cross_entropy"
        )
    if torch.compiler.is_compiling():
        return _cross_entropy_op(input, target, reduction)
    return apply_function(CrossEntropyFunction, input, target, reduction)


def mse_loss(input: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean"):
    """``torch.nn.functional.mse_loss`` run by fastnn (input and target of the same shape;
    no broadcasting); ``reduction`` is "mean", "sum" or "none".  Differentiable in both
    ``input`` and ``target``."""
    if torch.compiler.is_compiling():
        return _mse_loss_op(input, target, reduction)
    return apply_function(MSELossFunction, input, target, reduction)
