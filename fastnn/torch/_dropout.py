"""Dropout on torch tensors, run by fastnn.

The random stream is fastnn's counter-based one (see :mod:`fastnn.ops.regularization`):
each call draws its 64-bit seed from torch's default CPU generator
(``torch.randint``), so ``torch.manual_seed(s)`` makes a sequence of fastnn dropout
calls reproducible, on the CPU and on CUDA alike (the masks differ from torch's own
``F.dropout``, whose stream is another).  The mask (uint8) is kept for the backward pass.

Three layers, as ``_activation``: tensor-level functions, a ``torch.autograd.Function``
for eager mode (``inplace=True`` writes into the input and marks it dirty), and the
custom ops ``torch.ops.fastnn.dropout`` / ``dropout_backward`` for ``torch.compile``,
which take the seed as a 0-d int64 tensor so that drawing it stays in the graph.
"""

from __future__ import annotations

import numbers

import torch

import fastnn
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor
from fastnn.torch._custom_op import op_pair

__all__ = ["DropoutFunction", "DropoutGradFunction", "dropout", "draw_seed"]

_SEED_HIGH = 2**63 - 1


def draw_seed() -> torch.Tensor:
    """A 0-d int64 seed drawn from torch's default CPU generator."""
    return torch.randint(0, _SEED_HIGH, (), dtype=torch.int64)


def dropout_forward(input: torch.Tensor, seed: torch.Tensor, p: float):
    """fastnn's dropout (training) on a tensor: (output, uint8 mask)."""
    with device_scope(input):
        y, mask = fastnn.dropout(
            to_array("fastnn.torch.dropout", "input", input), p, generator=int(seed)
        )
        return to_tensor(y), to_tensor(mask)


def dropout_backward(grad_output: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    """grad_output * mask / (1 - p)."""
    op = "fastnn.torch.dropout backward"
    with device_scope(grad_output):
        grad = fastnn.dropout_backward(
            to_array(op, "grad_output", grad_output), to_array(op, "mask", mask, indices=True), p
        )
        return to_tensor(grad)


class DropoutFunction(torch.autograd.Function):
    """``apply(input, seed, p, inplace)``: training-mode dropout; the output is ``input``
    itself (overwritten) when ``inplace``."""

    @staticmethod
    def forward(ctx, input, seed, p, inplace):
        y, mask = dropout_forward(input, seed, p)
        ctx.save_for_backward(mask)
        ctx.p = p
        ctx.mark_non_differentiable(mask)
        if inplace:
            ctx.mark_dirty(input)
            return input.copy_(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (mask,) = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
                grad = apply_function(DropoutGradFunction, grad_output, mask, ctx.p)
            else:
                grad = dropout_backward(grad_output, mask, ctx.p)
        return grad, None, None, None


class DropoutGradFunction(torch.autograd.Function):
    """``apply(grad_output, mask, p)``: ``grad_output * mask / (1 - p)`` (fastnn's
    dropout_backward), a diagonal linear map: its gradient is itself."""

    @staticmethod
    def forward(ctx, grad_output, mask, p):
        ctx.save_for_backward(mask)
        ctx.p = p
        return dropout_backward(grad_output, mask, p)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return apply_function(DropoutGradFunction, grad, mask, ctx.p), None, None


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------

_forward_op, _backward_op = op_pair(
    "dropout",
    dropout_forward,
    "(Tensor input, Tensor seed, float p) -> (Tensor, Tensor)",
    dropout_backward,
    "(Tensor grad_output, Tensor mask, float p) -> Tensor",
)


@_forward_op.register_fake
def _(input, seed, p):
    shape = input.shape
    return input.new_empty(shape), input.new_empty(shape, dtype=torch.uint8)


_backward_op.register_fake(lambda grad_output, mask, p: grad_output.new_empty(mask.shape))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])
    ctx.p = inputs[2]


def _autograd_backward(ctx, grad_output, _grad_mask):
    (mask,) = ctx.saved_tensors
    grad = _backward_op(grad_output, mask, ctx.p) if ctx.needs_input_grad[0] else None
    return grad, None, None


_forward_op.register_autograd(_autograd_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------
# Public function
# ---------------------------------------------------------------------------------------


def dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> torch.Tensor:
    """``torch.nn.functional.dropout`` run by fastnn: zero each element with probability
    ``p`` and scale the others by ``1 / (1 - p)``.  Not training, ``p == 0`` or an empty
    input return ``input`` itself (as torch does); ``p == 1`` runs torch's own dropout
    (all zeros; fastnn rejects p = 1).  The seed of each call comes from torch's default
    CPU generator, so ``torch.manual_seed`` makes runs reproducible."""
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got p={p!r}")
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"fastnn.torch.dropout: input must be a torch.Tensor, got {input!r}")
    if not training or p == 0 or input.numel() == 0:
        return input
    if p == 1:
        return torch.nn.functional.dropout(input, p, training, inplace)
    seed = draw_seed()
    if torch.compiler.is_compiling():
        y, _ = _forward_op(input, seed, float(p))
        return input.copy_(y) if inplace else y
    return apply_function(DropoutFunction, input, seed, float(p), bool(inplace))
