"""cross_entropy and mse_loss on torch tensors, run by fastnn.

fastnn's loss gradients are d loss / d input for an upstream gradient of 1; the backward
passes here multiply them by the upstream gradient (a scalar for "mean"/"sum", one value
per row or element for "none").  ``mse_loss`` is differentiable in its target too
(the negated input gradient).  Same three layers as ``_conv``.
"""

from __future__ import annotations

import functools

import torch

import fastnn
from fastnn.torch._activation import softmax
from fastnn.torch._bridge import apply_function, run_op
from fastnn.torch._custom_op import op_pair

__all__ = ["CrossEntropyFunction", "MSELossFunction", "cross_entropy", "mse_loss"]


def cross_entropy_forward(input, target, reduction: str) -> torch.Tensor:
    """fastnn's cross_entropy of logits (N, C) against int class indices (N,)."""
    return _run_cross_entropy(
        "fastnn.torch.cross_entropy", fastnn.cross_entropy, input, target, reduction
    )


def cross_entropy_backward(grad_output, input, target, reduction: str) -> torch.Tensor:
    """Gradient of cross_entropy with respect to the logits, times ``grad_output``."""
    op = "fastnn.torch.cross_entropy backward"
    grad = _run_cross_entropy(op, fastnn.cross_entropy_backward, input, target, reduction)
    return grad.mul_(grad_output.unsqueeze(-1) if reduction == "none" else grad_output)


def _run_cross_entropy(op: str, fn, input, target, reduction: str) -> torch.Tensor:
    """``fn`` (fastnn's cross_entropy or its backward) on the logits and the class indices."""
    tensors = {"input": input, "target": target}
    return run_op(op, fn, input, tensors, reduction, indices=("target",))


def mse_loss_forward(input, target, reduction: str) -> torch.Tensor:
    """fastnn's mse_loss (input and target of the same shape)."""
    tensors = {"input": input, "target": target}
    return run_op("fastnn.torch.mse_loss", fastnn.mse_loss, input, tensors, reduction)


def mse_loss_backward(grad_output, input, target, reduction: str) -> torch.Tensor:
    """Gradient of mse_loss with respect to ``input``, times ``grad_output`` (the gradient
    with respect to ``target`` is its negation)."""
    return _mse_grad(input, target, reduction).mul_(grad_output)


def _mse_grad(input, target, reduction: str) -> torch.Tensor:
    """fastnn's mse_loss_backward, for an upstream gradient of 1."""
    op = "fastnn.torch.mse_loss backward"
    tensors = {"input": input, "target": target}
    return run_op(op, fastnn.mse_loss_backward, input, tensors, reduction)


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
        return _mse_grad(input, target, reduction)

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


_LOSS_SCHEMA = "(Tensor input, Tensor target, str reduction) -> Tensor"
_GRAD_SCHEMA = "(Tensor grad_output, Tensor input, Tensor target, str reduction) -> Tensor"


def _register(name: str, forward, backward, unreduced_shape, autograd_backward):
    """``fastnn::{name}`` and ``fastnn::{name}_backward`` from the tensor-level ``forward``
    and ``backward``; ``unreduced_shape(input)`` is the loss shape for "none", and
    ``autograd_backward(backward_op, ctx, grad_output)`` the forward op's gradients."""
    forward_op, backward_op = op_pair(name, forward, _LOSS_SCHEMA, backward, _GRAD_SCHEMA)

    @forward_op.register_fake
    def _(input, target, reduction):
        return input.new_empty(unreduced_shape(input) if reduction == "none" else ())

    @backward_op.register_fake
    def _(grad_output, input, target, reduction):
        return input.new_empty(input.shape)

    forward_op.register_autograd(
        functools.partial(autograd_backward, backward_op), setup_context=_save_inputs
    )
    return forward_op


def _save_inputs(ctx, inputs, output):
    input, target, reduction = inputs
    ctx.save_for_backward(input, target)
    ctx.reduction = reduction


def _cross_entropy_autograd(backward_op, ctx, grad_output):
    input, target = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = backward_op(grad_output, input, target, ctx.reduction)
    return grad, None, None


def _mse_loss_autograd(backward_op, ctx, grad_output):
    input, target = ctx.saved_tensors
    need_input, need_target = ctx.needs_input_grad[:2]
    if not (need_input or need_target):
        return None, None, None
    grad = backward_op(grad_output, input, target, ctx.reduction)
    return (grad if need_input else None), (-grad if need_target else None), None


_cross_entropy_op = _register(
    "cross_entropy",
    cross_entropy_forward,
    cross_entropy_backward,
    lambda input: input.shape[:1],
    _cross_entropy_autograd,
)
_mse_loss_op = _register(
    "mse_loss",
    mse_loss_forward,
    mse_loss_backward,
    lambda input: input.shape,
    _mse_loss_autograd,
)


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
