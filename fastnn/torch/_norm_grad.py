"""Batch normalisation's gradient as differentiable fastnn Functions, for higher order.

Under ``create_graph`` batch norm's backward composes three ``torch.autograd.Function``
s whose forwards run fastnn's kernels over the (N, C, *) tensors and whose backwards are
again compositions of the same three, so every order of derivative runs on fastnn:

- ``StatsFunction(x, eps) -> (mean, invstd)``: ``fastnn.batch_norm_stats``.
- ``ElemtFunction(x, mean, invstd, weight, bias) -> (x - mean) * invstd * weight + bias``
  per channel: ``fastnn.batch_norm_elemt``.
- ``ChannelSumsFunction(g, x, mean) -> (sum g, sum g (x - mean))`` per channel:
  ``fastnn.batch_norm_backward(training=False)`` with unit invstd and no weight, whose
  weight and bias gradients are exactly these two sums.

Only (C,) vectors are combined with torch arithmetic (O(C) work).  With M values per
channel, the gradients these compose:

- ``invstd = (var + eps)^-1/2`` moves with x as ``-invstd^3 (x - mean) / M`` and ``mean``
  as ``1 / M``, so the gradient of Stats is ``Elemt(x, mean, 1, -gi invstd^3 / M, gm / M)``.
- Elemt's gradient from ``r``: in x ``Elemt(r, 0, invstd, w, 0)``; with
  ``(S0, T) = ChannelSums(r, x, mean)``: in bias S0, in weight ``invstd T``, in mean
  ``-invstd w S0``, in invstd ``w T``.
- ChannelSums' gradient from ``(a, c)``: in g ``Elemt(x, mean, 1, c, a)``, in x
  ``Elemt(g, 0, 1, c, 0)``, in mean ``-c sum(g)``.

:func:`batch_norm_grads` puts them together: training-mode
``grad_input = w invstd (g - S0 / M - xhat S1 / M)`` is ``Elemt(g, 0, invstd, w, 0) +
Elemt(x, mean, invstd, -w invstd S1 / M, -w invstd S0 / M)`` (fastnn's add), with the
statistics from ``StatsFunction(x)`` so they are functions of the input; eval mode takes
the running statistics as constants, ``grad_input = Elemt(g, 0, invstd, w, 0)``.
"""

from __future__ import annotations

import torch

import fastnn
from fastnn.torch._add import AddFunction
from fastnn.torch._bridge import apply_function, run_op

__all__ = ["ChannelSumsFunction", "ElemtFunction", "StatsFunction", "batch_norm_grads"]

_OP = "fastnn.torch.batch_norm double backward"

Grads = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def _count(x: torch.Tensor) -> int:
    """M: the values per channel of the (N, C, *) tensor ``x``."""
    return x.numel() // x.shape[1]


def elemt(x, mean, invstd, weight=None, bias=None) -> torch.Tensor:
    """``(x - mean) * invstd * weight + bias`` per channel (weight None means 1, bias None
    means 0), differentiable in every tensor."""
    return apply_function(ElemtFunction, x, mean, invstd, weight, bias)


def channel_sums(g, x, mean) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum g, sum g * (x - mean))`` per channel, differentiable in every tensor."""
    return apply_function(ChannelSumsFunction, g, x, mean)


def stats(x, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel batch ``(mean, 1 / sqrt(biased variance + eps))``, differentiable in x."""
    return apply_function(StatsFunction, x, eps)


class ElemtFunction(torch.autograd.Function):
    """``apply(x, mean, invstd, weight, bias)`` -> ``(x - mean) * invstd * weight + bias``
    per channel of (N, C, *) ``x`` (weight / bias None for 1 / 0)."""

    @staticmethod
    def forward(ctx, x, mean, invstd, weight, bias):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, mean, invstd, weight)
        tensors = {"input": x, "mean": mean, "invstd": invstd, "weight": weight, "bias": bias}
        return run_op(_OP, fastnn.batch_norm_elemt, x, tensors, optional=("weight", "bias"))

    @staticmethod
    def backward(ctx, r):
        x, mean, invstd, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx = d_mean = d_invstd = d_weight = d_bias = None
        if r is None:
            return dx, d_mean, d_invstd, d_weight, d_bias
        if need[0]:
            dx = elemt(r, torch.zeros_like(mean), invstd, weight)
        if any(need[1:]):
            s0, t = channel_sums(r, x, mean)
            w = 1.0 if weight is None else weight
            d_mean = -(invstd * w) * s0 if need[1] else None
            d_invstd = w * t if need[2] else None
            d_weight = invstd * t if need[3] else None
            d_bias = s0 if need[4] else None
        return dx, d_mean, d_invstd, d_weight, d_bias


class ChannelSumsFunction(torch.autograd.Function):
    """``apply(g, x, mean)`` -> ``(sum g, sum g * (x - mean))``, two (C,) tensors, the sums
    over every dim but the channels of (N, C, *) ``g`` and ``x``."""

    @staticmethod
    def forward(ctx, g, x, mean):
        ctx.set_materialize_grads(False)
        tensors = {"grad_output": g, "input": x, "weight": None, "mean": mean,
                   "invstd": torch.ones_like(mean)}  # fmt: skip
        _, centred_sum, total = run_op(
            _OP,
            fastnn.batch_norm_backward,
            x,
            tensors,
            optional=("weight",),
            training=False,
            output_mask=(False, True, True),
        )
        ctx.save_for_backward(g, x, mean, total)
        return total, centred_sum

    @staticmethod
    def backward(ctx, ga, gc):
        g, x, mean, total = ctx.saved_tensors
        need = ctx.needs_input_grad
        d_g = d_x = d_mean = None
        if ga is None and gc is None:
            return d_g, d_x, d_mean
        ones = torch.ones_like(mean)
        if need[0]:  # ga + gc * (x - mean)
            slope = torch.zeros_like(mean) if gc is None else gc
            d_g = elemt(x, mean, ones, slope, ga)
        if gc is not None:
            if need[1]:
                d_x = elemt(g, torch.zeros_like(mean), ones, gc)
            if need[2]:
                d_mean = -gc * total
        return d_g, d_x, d_mean


class StatsFunction(torch.autograd.Function):
    """``apply(x, eps)`` -> ``(mean, invstd)``: per-channel batch mean and ``1 / sqrt(biased
    variance + eps)`` of (N, C, *) ``x``."""

    @staticmethod
    def forward(ctx, x, eps):
        ctx.set_materialize_grads(False)
        mean, invstd = run_op(_OP, fastnn.batch_norm_stats, x, {"input": x}, eps)
        ctx.save_for_backward(x, mean, invstd)
        return mean, invstd

    @staticmethod
    def backward(ctx, g_mean, g_invstd):
        x, mean, invstd = ctx.saved_tensors
        if not ctx.needs_input_grad[0] or (g_mean is None and g_invstd is None):
            return None, None
        count = _count(x)
        slope = (
            torch.zeros_like(mean)
            if g_invstd is None
            else -g_invstd * invstd * invstd * invstd / count
        )
        shift = None if g_mean is None else g_mean / count
        return elemt(x, mean, torch.ones_like(mean), slope, shift), None


def batch_norm_grads(
    grad: torch.Tensor,
    input: torch.Tensor,
    weight: torch.Tensor | None,
    saved_stats: tuple[torch.Tensor, torch.Tensor],
    training: bool,
    eps: float,
    mask: tuple[bool, bool, bool],
) -> Grads:
    """``(grad_input, grad_weight, grad_bias)`` of batch norm (None where ``mask`` is
    False) from ``grad``, the gradient at the normalised output (before the activation),
    composed of the Functions above so that they are differentiable to any order.

    In training the statistics are recomputed by :class:`StatsFunction` (functions of
    ``input``); in eval ``saved_stats``, the running mean and invstd, are constants."""
    grad_input = grad_weight = grad_bias = None
    if not any(mask):
        return grad_input, grad_weight, grad_bias
    if training and _count(input) == 0:  # an empty batch: no values, zero gradients
        zeros = input.new_zeros(input.shape[1])
        return (
            torch.zeros_like(grad) if mask[0] else None,
            zeros if mask[1] else None,
            zeros.clone() if mask[2] else None,
        )
    mean, invstd = stats(input, eps) if training else saved_stats
    need_sums = mask[1] or mask[2] or (mask[0] and training)
    if need_sums:
        sum_grad, centred_sum = channel_sums(grad, input, mean)
        sum_grad_xhat = invstd * centred_sum
        grad_weight = sum_grad_xhat if mask[1] else None
        grad_bias = sum_grad if mask[2] else None
    if mask[0]:
        grad_input = elemt(grad, torch.zeros_like(mean), invstd, weight)
        if training:
            count = _count(input)
            scale = -invstd / count if weight is None else -(weight * invstd) / count
            correction = elemt(input, mean, invstd, scale * sum_grad_xhat, scale * sum_grad)
            grad_input = apply_function(AddFunction, grad_input, correction, "")
    return grad_input, grad_weight, grad_bias
