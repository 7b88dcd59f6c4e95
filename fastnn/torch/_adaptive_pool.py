"""Adaptive average pooling (1-D and 2-D) and adaptive max pooling (2-D) on torch tensors,
run by fastnn.

The same three layers as ``_pool``: tensor-level ``*_forward``/``*_backward`` calling
fastnn's public ops, ``torch.autograd.Function`` classes for eager mode, and the custom
ops ``torch.ops.fastnn.adaptive_{avg_pool1d,avg_pool2d,max_pool2d}`` (+ ``_backward``)
for ``torch.compile``.  ``output_size`` entries that are None (keep the input size) are
resolved here, so the custom ops take plain ``int[]`` sizes.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import torch

import fastnn
from fastnn.torch._bridge import apply_function, run_op
from fastnn.torch._custom_op import op_pair
from fastnn.torch._pool import pool_outputs, scatter_grad

__all__ = [
    "AdaptiveAvgGradFunction",
    "AdaptiveAvgPoolFunction",
    "AdaptiveMaxPoolFunction",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
]

_AVG = {1: fastnn.adaptive_avg_pool1d, 2: fastnn.adaptive_avg_pool2d}
_AVG_BACKWARD = {1: fastnn.adaptive_avg_pool1d_backward, 2: fastnn.adaptive_avg_pool2d_backward}


def avg_forward(nd: int, input: torch.Tensor, output_size: list[int]) -> torch.Tensor:
    """fastnn's adaptive_avg_pool{nd}d on a (batched) tensor."""
    op = f"fastnn.torch.adaptive_avg_pool{nd}d"
    return run_op(op, _AVG[nd], input, {"input": input}, tuple(output_size))


def avg_backward(nd: int, grad_output: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """Gradient of adaptive_avg_pool{nd}d with respect to its input."""
    op = f"fastnn.torch.adaptive_avg_pool{nd}d backward"
    return run_op(op, _AVG_BACKWARD[nd], input, {"grad_output": grad_output, "input": input})


def max_forward(input: torch.Tensor, output_size: list[int]) -> tuple[torch.Tensor, ...]:
    """fastnn's adaptive_max_pool2d on a (batched) tensor: (output, int64 indices)."""
    op = "fastnn.torch.adaptive_max_pool2d"
    fn = fastnn.adaptive_max_pool2d
    return run_op(op, fn, input, {"input": input}, tuple(output_size), return_indices=True)


def max_backward(grad_output, input, indices) -> torch.Tensor:
    """Gradient of adaptive_max_pool2d through the forward pass's ``indices``."""
    op = "fastnn.torch.adaptive_max_pool2d backward"
    fn = fastnn.adaptive_max_pool2d_backward
    tensors = {"grad_output": grad_output, "input": input}
    return run_op(op, fn, input, tensors, keywords={"indices": indices}, indices=("indices",))


class AdaptiveAvgPoolFunction(torch.autograd.Function):
    """``apply(nd, input, output_size)`` (output_size: a list of ints)."""

    @staticmethod
    def forward(ctx, nd, input, output_size):
        ctx.save_for_backward(input)
        ctx.nd = nd
        return avg_forward(nd, input, output_size)

    @staticmethod
    def backward(ctx, grad_output):
        grad = None
        if ctx.needs_input_grad[1]:
            (input,) = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
                grad = apply_function(AdaptiveAvgGradFunction, ctx.nd, grad_output, input)
            else:
                grad = avg_backward(ctx.nd, grad_output, input)
        return None, grad, None


class AdaptiveAvgGradFunction(torch.autograd.Function):
    """``apply(nd, grad_output, input_like)``: adaptive average pooling's input gradient
    (linear in ``grad_output``; ``input_like`` gives the shape).  Its gradient is its
    adjoint, the adaptive average pooling to ``grad_output``'s size."""

    @staticmethod
    def forward(ctx, nd, grad_output, input_like):
        ctx.params = (nd, list(grad_output.shape[2:]))
        return avg_backward(nd, grad_output, input_like)

    @staticmethod
    def backward(ctx, grad):
        nd, output_size = ctx.params
        return None, apply_function(AdaptiveAvgPoolFunction, nd, grad, output_size), None


class AdaptiveMaxPoolFunction(torch.autograd.Function):
    """``apply(input, output_size, return_indices)``: the output, or (output, indices)."""

    @staticmethod
    def forward(ctx, input, output_size, return_indices):
        y, indices = max_forward(input, output_size)
        ctx.save_for_backward(input, indices)
        return pool_outputs(ctx, y, indices, return_indices)

    @staticmethod
    def backward(ctx, grad_output, *_grad_indices):
        grad = None
        if ctx.needs_input_grad[0]:
            input, indices = ctx.saved_tensors
            scatter = functools.partial(_scatter_max, input, indices)
            grad = scatter_grad(scatter, grad_output, indices)
        return grad, None, None


def _scatter_max(input, indices, grad_output) -> torch.Tensor:
    return max_backward(grad_output, input, indices)


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------


def _out_shape(input: torch.Tensor, output_size: list[int]) -> tuple:
    return (*input.shape[:2], *output_size)


def _register_avg(nd: int) -> Any:
    """``fastnn::adaptive_avg_pool{nd}d`` and its backward."""
    name = f"adaptive_avg_pool{nd}d"
    forward_op, backward_op = op_pair(
        name,
        lambda input, output_size: avg_forward(nd, input, output_size),
        "(Tensor input, int[] output_size) -> Tensor",
        lambda grad_output, input: avg_backward(nd, grad_output, input),
        "(Tensor grad_output, Tensor input) -> Tensor",
    )
    forward_op.register_fake(
        lambda input, output_size: input.new_empty(_out_shape(input, output_size))
    )
    backward_op.register_fake(lambda grad_output, input: input.new_empty(input.shape))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    def autograd_backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad = backward_op(grad_output, input) if ctx.needs_input_grad[0] else None
        return grad, None

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)
    return forward_op


def _register_max() -> Any:
    """``fastnn::adaptive_max_pool2d`` -> (output, indices) and its backward."""
    forward_op, backward_op = op_pair(
        "adaptive_max_pool2d",
        max_forward,
        "(Tensor input, int[] output_size) -> (Tensor, Tensor)",
        max_backward,
        "(Tensor grad_output, Tensor input, Tensor indices) -> Tensor",
    )

    @forward_op.register_fake
    def _(input, output_size):
        shape = _out_shape(input, output_size)
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int64)

    backward_op.register_fake(lambda grad_output, input, indices: input.new_empty(input.shape))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[1])

    def autograd_backward(ctx, grad_output, _grad_indices):
        input, indices = ctx.saved_tensors
        grad = backward_op(grad_output, input, indices) if ctx.needs_input_grad[0] else None
        return grad, None

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)
    return forward_op


_AVG_OPS = {nd: _register_avg(nd) for nd in (1, 2)}
_MAX_OP = _register_max()


# ---------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------


def _sizes(op: str, input: torch.Tensor, output_size: object, nd: int) -> list[int]:
    """``output_size`` as ``nd`` ints, None entries replaced by the input's sizes; values
    are checked by fastnn (an error names output_size)."""
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        items = list(output_size)
    else:
        items = [output_size] * nd
    if len(items) != nd:
        raise ValueError(
            f"{op}: output_size must be an int or a tuple of {nd}, got {output_size!r}"
        )
    spatial = input.shape[-nd:]
    sizes = []
    for item, keep in zip(items, spatial):
        if item is None:
            sizes.append(int(keep))
        elif isinstance(item, bool):
            raise TypeError(f"{op}: output_size must hold ints or None, got {output_size!r}")
        else:
            try:
                sizes.append(operator.index(item))
            except TypeError:
                raise TypeError(
                    f"{op}: output_size must hold ints or None, got {output_size!r}"
                ) from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"{op}: output_size must be >= 1, got {output_size!r}")
    return sizes


def _unbatched(input: Any, nd: int) -> bool:
    return isinstance(input, torch.Tensor) and input.dim() == nd + 1


def _adaptive_avg(nd: int, input: torch.Tensor, output_size: object) -> torch.Tensor:
    if _unbatched(input, nd):  # torch accepts (C, L) / (C, H, W): add the batch dimension
        return _adaptive_avg(nd, input.unsqueeze(0), output_size).squeeze(0)
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"fastnn.torch.adaptive_avg_pool{nd}d: input must be a torch.Tensor")
    sizes = _sizes(f"fastnn.torch.adaptive_avg_pool{nd}d", input, output_size, nd)
    if torch.compiler.is_compiling():
        return _AVG_OPS[nd](input, sizes)
    return apply_function(AdaptiveAvgPoolFunction, nd, input, sizes)


def adaptive_avg_pool1d(input: torch.Tensor, output_size: int | tuple[int]) -> torch.Tensor:
    """``torch.nn.functional.adaptive_avg_pool1d`` run by fastnn, on (N, C, L) or (C, L)
    input."""
    return _adaptive_avg(1, input, output_size)


def adaptive_avg_pool2d(input: torch.Tensor, output_size: Any) -> torch.Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d`` run by fastnn, on (N, C, H, W) or
    (C, H, W) input; ``output_size`` entries may be None (keep that input size).
    ``output_size=1`` is global average pooling."""
    return _adaptive_avg(2, input, output_size)


def adaptive_max_pool2d(
    input: torch.Tensor, output_size: Any, return_indices: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.functional.adaptive_max_pool2d`` run by fastnn, on (N, C, H, W) or
    (C, H, W) input.  With ``return_indices`` also returns the int64 flat position
    ``h * W + w`` of each maximum."""
    if _unbatched(input, 2):
        result = adaptive_max_pool2d(input.unsqueeze(0), output_size, return_indices)
        return tuple(t.squeeze(0) for t in result) if return_indices else result.squeeze(0)
    if not isinstance(input, torch.Tensor):
        raise TypeError("fastnn.torch.adaptive_max_pool2d: input must be a torch.Tensor")
    sizes = _sizes("fastnn.torch.adaptive_max_pool2d", input, output_size, 2)
    if torch.compiler.is_compiling():
        y, indices = _MAX_OP(input, sizes)
        return (y, indices) if return_indices else y
    return apply_function(AdaptiveMaxPoolFunction, input, sizes, bool(return_indices))
