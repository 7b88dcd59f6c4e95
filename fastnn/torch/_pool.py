"""Max and average pooling (1-D and 2-D) on torch tensors, run by fastnn.

The same three layers as ``_conv``: tensor-level ``*_forward``/``*_backward`` calling
fastnn's public ops, ``torch.autograd.Function`` classes for eager mode, and the custom
ops ``torch.ops.fastnn.{max,avg}_pool{1,2}d`` (+ ``_backward``) for ``torch.compile``.

Max pooling keeps the positions of the maxima from the forward pass (when a gradient may
be needed) so that the backward pass scatters without searching the windows again.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

import fastnn
from fastnn.torch._bridge import apply_function, run_op
from fastnn.torch._custom_op import op_pair
from fastnn.torch._params import eager, int_list

__all__ = [
    "AvgPoolFunction",
    "AvgPoolGradFunction",
    "IndexGatherFunction",
    "IndexScatterFunction",
    "MaxPoolFunction",
    "avg_pool1d",
    "avg_pool2d",
    "max_pool1d",
    "max_pool2d",
    "pool_outputs",
    "scatter_grad",
]

_MAX = {1: fastnn.max_pool1d, 2: fastnn.max_pool2d}
_MAX_BACKWARD = {1: fastnn.max_pool1d_backward, 2: fastnn.max_pool2d_backward}
_AVG = {1: fastnn.avg_pool1d, 2: fastnn.avg_pool2d}
_AVG_BACKWARD = {1: fastnn.avg_pool1d_backward, 2: fastnn.avg_pool2d_backward}
_TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d}
_TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d}


def max_pool_forward(nd, input, kernel_size, stride, padding, dilation, ceil_mode, indices):
    """fastnn's max_pool{nd}d on a tensor: the output, or (output, int64 indices)."""
    params = (kernel_size, stride, padding, dilation, ceil_mode)
    op = f"fastnn.torch.max_pool{nd}d"
    return run_op(op, _MAX[nd], input, {"input": input}, *params, return_indices=indices)


def max_pool_backward(
    nd, grad_output, input, indices, kernel_size, stride, padding, dilation, ceil_mode
):
    """Gradient of max_pool{nd}d with respect to its input; ``indices`` (or None: the
    maxima are found again) from the forward pass."""
    params = (kernel_size, stride, padding, dilation, ceil_mode)
    tensors = {"grad_output": grad_output, "input": input}
    op = f"fastnn.torch.max_pool{nd}d backward"
    return run_op(
        op,
        _MAX_BACKWARD[nd],
        input,
        tensors,
        *params,
        keywords={"indices": indices},
        indices=("indices",),
    )


def avg_pool_forward(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """fastnn's avg_pool{nd}d on a tensor."""
    params = (kernel_size, stride, padding, ceil_mode, count_include_pad)
    return run_op(f"fastnn.torch.avg_pool{nd}d", _AVG[nd], input, {"input": input}, *params)


def avg_pool_backward(
    nd, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad
):
    """Gradient of avg_pool{nd}d with respect to its input."""
    params = (kernel_size, stride, padding, ceil_mode, count_include_pad)
    tensors = {"grad_output": grad_output, "input": input}
    op = f"fastnn.torch.avg_pool{nd}d backward"
    return run_op(op, _AVG_BACKWARD[nd], input, tensors, *params)


class MaxPoolFunction(torch.autograd.Function):
    """``apply(nd, input, kernel_size, stride, padding, dilation, ceil_mode, keep_indices,
    return_indices)``: the output, or (output, indices) when ``return_indices``.  The
    indices are computed when ``keep_indices`` (a gradient may be needed) or returned."""

    @staticmethod
    def forward(ctx, nd, input, kernel_size, stride, padding, dilation, ceil_mode, keep, ret):
        params = (kernel_size, stride, padding, dilation, ceil_mode)
        result = max_pool_forward(nd, input, *params, keep or ret)
        y, indices = result if keep or ret else (result, None)
        ctx.save_for_backward(input)
        ctx.indices = indices
        ctx.params = (nd, *params)
        return pool_outputs(ctx, y, indices, ret)

    @staticmethod
    def backward(ctx, grad_output, *_grad_indices):
        grad = None
        if ctx.needs_input_grad[1]:
            (input,) = ctx.saved_tensors
            nd, *params = ctx.params
            scatter = functools.partial(_scatter_max, nd, input, ctx.indices, params)
            grad = scatter_grad(scatter, grad_output, ctx.indices)
        return None, grad, *[None] * 7


class AvgPoolFunction(torch.autograd.Function):
    """``apply(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad)``."""

    @staticmethod
    def forward(ctx, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad):
        params = (kernel_size, stride, padding, ceil_mode, count_include_pad)
        ctx.save_for_backward(input)
        ctx.params = (nd, *params)
        return avg_pool_forward(nd, input, *params)

    @staticmethod
    def backward(ctx, grad_output):
        grad = None
        if ctx.needs_input_grad[1]:
            (input,) = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
                grad = apply_function(AvgPoolGradFunction, grad_output, input, ctx.params)
            else:
                nd, *params = ctx.params
                grad = avg_pool_backward(nd, grad_output, input, *params)
        return None, grad, *[None] * 5


# ---------------------------------------------------------------------------------------
# Higher-order gradients.  Both poolings' gradients are linear in the incoming gradient
# and (almost everywhere) independent of the input, so their derivatives are adjoints:
# average pooling's backward has the pooling itself as its gradient, and max pooling's
# scatter through the saved indices has the gather at those indices (and back).
# ---------------------------------------------------------------------------------------


class AvgPoolGradFunction(torch.autograd.Function):
    """``apply(grad_output, input_like, params)``: average pooling's input gradient
    (``params``: nd, kernel_size, stride, padding, ceil_mode, count_include_pad;
    ``input_like`` gives the shape); its gradient is the average pooling again."""

    @staticmethod
    def forward(ctx, grad_output, input_like, params):
        ctx.params = params
        nd, *rest = params
        return avg_pool_backward(nd, grad_output, input_like, *rest)

    @staticmethod
    def backward(ctx, grad):
        nd, *rest = ctx.params
        return apply_function(AvgPoolFunction, nd, grad, *rest), None, None


def _scatter_max(nd, input, indices, params, grad_output) -> torch.Tensor:
    return max_pool_backward(nd, grad_output, input, indices, *params)


def pool_outputs(ctx, y: torch.Tensor, indices, return_indices: bool) -> Any:
    """A max pooling Function's result: ``y``, or (``y``, ``indices``) with the indices
    marked non-differentiable."""
    if return_indices:
        ctx.mark_non_differentiable(indices)
        return y, indices
    return y


def scatter_grad(scatter, grad_output: torch.Tensor, indices) -> torch.Tensor:
    """Max pooling's input gradient ``scatter(grad_output)`` (a fastnn kernel adding each
    gradient at its maximum, ``indices``); under create_graph (and with ``indices``)
    through ``IndexScatterFunction``, so that it is differentiable again."""
    if torch.is_grad_enabled() and indices is not None:
        return apply_function(IndexScatterFunction, grad_output, indices, scatter)
    return scatter(grad_output)


def gather(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``values`` (N, C, *spatial) read at the flat spatial ``indices`` (N, C, *out)."""
    flat = values.reshape(*values.shape[:2], -1)
    return flat.gather(2, indices.reshape(*indices.shape[:2], -1)).reshape(indices.shape)


class IndexScatterFunction(torch.autograd.Function):
    """``apply(grad_output, indices, scatter)``: ``scatter(grad_output)``, a fastnn kernel
    that adds each gradient at its flat input position ``indices`` (max pooling's
    backward); its gradient is the gather at those indices (``IndexGatherFunction``)."""

    @staticmethod
    def forward(ctx, grad_output, indices, scatter):
        ctx.save_for_backward(indices)
        ctx.scatter = scatter
        return scatter(grad_output)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return apply_function(IndexGatherFunction, grad, indices, ctx.scatter), None, None


class IndexGatherFunction(torch.autograd.Function):
    """``apply(values, indices, scatter)``: :func:`gather`; its gradient is ``scatter``
    (``IndexScatterFunction``)."""

    @staticmethod
    def forward(ctx, values, indices, scatter):
        ctx.save_for_backward(indices)
        ctx.scatter = scatter
        return gather(values, indices)

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return apply_function(IndexScatterFunction, grad, indices, ctx.scatter), None, None


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------

_MAX_PARAMS = "int[] kernel_size, int[] stride, int[] padding, int[] dilation, bool ceil_mode"
_AVG_PARAMS = (
    "int[] kernel_size, int[] stride, int[] padding, bool ceil_mode, bool count_include_pad"
)


def _register_max(nd: int) -> Any:
    """``fastnn::max_pool{nd}d`` -> (output, indices) and its backward, which scatters
    through the indices."""
    name = f"max_pool{nd}d"

    def run_forward(input, *params):
        return max_pool_forward(nd, input, *params, True)

    def run_backward(grad_output, input, indices, *params):
        return max_pool_backward(nd, grad_output, input, indices, *params)

    forward_op, backward_op = op_pair(
        name,
        run_forward,
        f"(Tensor input, {_MAX_PARAMS}) -> (Tensor, Tensor)",
        run_backward,
        f"(Tensor grad_output, Tensor input, Tensor indices, {_MAX_PARAMS}) -> Tensor",
    )

    @forward_op.register_fake
    def _(input, kernel_size, stride, padding, dilation, ceil_mode):
        y, indices = _TORCH_MAX[nd](
            input, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True
        )
        return input.new_empty(y.shape), indices.new_empty(indices.shape)

    @backward_op.register_fake
    def _(grad_output, input, indices, *params):
        return input.new_empty(input.shape)

    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.save_for_backward(input, output[1])
        ctx.params = params

    def autograd_backward(ctx, grad_output, _grad_indices):
        input, indices = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = backward_op(grad_output, input, indices, *ctx.params)
        return grad, *[None] * 5

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)
    return forward_op


def _register_avg(nd: int) -> Any:
    """``fastnn::avg_pool{nd}d`` and its backward."""
    name = f"avg_pool{nd}d"

    def run_forward(input, *params):
        return avg_pool_forward(nd, input, *params)

    def run_backward(grad_output, input, *params):
        return avg_pool_backward(nd, grad_output, input, *params)

    forward_op, backward_op = op_pair(
        name,
        run_forward,
        f"(Tensor input, {_AVG_PARAMS}) -> Tensor",
        run_backward,
        f"(Tensor grad_output, Tensor input, {_AVG_PARAMS}) -> Tensor",
    )

    @forward_op.register_fake
    def _(input, kernel_size, stride, padding, ceil_mode, count_include_pad):
        y = _TORCH_AVG[nd](input, kernel_size, stride, padding, ceil_mode, count_include_pad)
        return input.new_empty(y.shape)

    @backward_op.register_fake
    def _(grad_output, input, *params):
        return input.new_empty(input.shape)

    def setup_context(ctx, inputs, output):
        input, *params = inputs
        ctx.save_for_backward(input)
        ctx.params = params

    def autograd_backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = backward_op(grad_output, input, *ctx.params)
        return grad, *[None] * 5

    forward_op.register_autograd(autograd_backward, setup_context=setup_context)
    return forward_op


_MAX_OPS = {nd: _register_max(nd) for nd in (1, 2)}
_AVG_OPS = {nd: _register_avg(nd) for nd in (1, 2)}


# ---------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------


def _unbatched(input: Any, nd: int) -> bool:
    return isinstance(input, torch.Tensor) and input.dim() == nd + 1


def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    if _unbatched(input, nd):  # torch accepts (C, L) / (C, H, W): add the batch dimension
        result = _max_pool(
            nd, input.unsqueeze(0), kernel_size, stride, padding, dilation, ceil_mode,
            return_indices,
        )  # fmt: skip
        return tuple(t.squeeze(0) for t in result) if return_indices else result.squeeze(0)
    stride = [] if stride is None else int_list(stride, nd)
    params = (int_list(kernel_size, nd), stride, int_list(padding, nd), int_list(dilation, nd))
    if torch.compiler.is_compiling():
        y, indices = _MAX_OPS[nd](input, *params, ceil_mode)
        return (y, indices) if return_indices else y
    keep = torch.is_grad_enabled() and isinstance(input, torch.Tensor) and input.requires_grad
    params = eager(*params)
    return apply_function(MaxPoolFunction, nd, input, *params, ceil_mode, keep, return_indices)


def _avg_pool(nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    if _unbatched(input, nd):
        y = _avg_pool(
            nd, input.unsqueeze(0), kernel_size, stride, padding, ceil_mode, count_include_pad
        )
        return y.squeeze(0)
    stride = [] if stride is None else int_list(stride, nd)
    params = (int_list(kernel_size, nd), stride, int_list(padding, nd))
    if torch.compiler.is_compiling():
        return _AVG_OPS[nd](input, *params, ceil_mode, count_include_pad)
    params = eager(*params)
    return apply_function(AvgPoolFunction, nd, input, *params, ceil_mode, count_include_pad)


def max_pool1d(
    input: torch.Tensor,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.functional.max_pool1d`` run by fastnn, on (N, C, L) or (C, L) input.
    With ``return_indices`` also returns the int64 position of each maximum."""
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool2d(
    input: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``torch.nn.functional.max_pool2d`` run by fastnn, on (N, C, H, W) or (C, H, W)
    input.  With ``return_indices`` also returns the flat position ``h * W + w``."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool1d(
    input: torch.Tensor,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> torch.Tensor:
    """``torch.nn.functional.avg_pool1d`` run by fastnn, on (N, C, L) or (C, L) input."""
    return _avg_pool(1, input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d(
    input: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.avg_pool2d`` run by fastnn, on (N, C, H, W) or (C, H, W)
    input.  fastnn has no ``divisor_override``: anything but None raises ValueError (the
    drop-in ``AvgPool2d`` module falls back to torch instead)."""
    if divisor_override is not None:
        raise ValueError(
            f"fastnn.torch.avg_pool2d: divisor_override is not supported by fastnn, got "
            f"{divisor_override!r}; use torch.nn.functional.avg_pool2d"
        )
    return _avg_pool(2, input, kernel_size, stride, padding, ceil_mode, count_include_pad)
