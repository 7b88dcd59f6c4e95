"""Batch normalisation on torch tensors, run by fastnn (``torch.nn.functional.batch_norm``
semantics, with fastnn's fused relu / relu6).

Same three layers as ``_dense``: tensor-level functions, a ``torch.autograd.Function``
for eager mode, custom ops ``torch.ops.fastnn.batch_norm`` / ``batch_norm_backward`` for
``torch.compile``.  Eager mode updates the running statistics in place through fastnn (a
view of the tensors' memory).  The custom op is functional instead: it returns the new
running statistics, computed by the very same kernels on copies, and the caller copies
them into the buffers with torch ops that the compiler traces (autograd formulas cannot
be registered for ops that mutate their inputs).
"""

from __future__ import annotations

import torch

import fastnn
from fastnn.torch._activation_grad import activation_grad
from fastnn.torch._bridge import apply_function, run_op
from fastnn.torch._norm_grad import batch_norm_grads

__all__ = ["BatchNormFunction", "batch_norm"]

_OP = "fastnn.torch.batch_norm"


def batch_norm_forward(
    input, weight, bias, running_mean, running_var, training, momentum, eps, activation
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, mean, invstd) of fastnn's batch_norm; the running statistics (None or
    tensors) are updated in place when ``training``."""
    tensors = {
        "input": input,
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
    }
    options = {"training": training, "momentum": momentum, "eps": eps, "activation": activation}
    optional = ("running_mean", "running_var", "weight", "bias")
    return run_op(_OP, fastnn.batch_norm, input, tensors, optional=optional, return_stats=True,
                  **options)  # fmt: skip


def batch_norm_backward(grad_output, input, weight, mean, invstd, output, training, activation,
                        mask):  # fmt: skip
    """(grad_input, grad_weight, grad_bias), None where ``mask`` is False."""
    op = f"{_OP} backward"
    tensors = {"grad_output": grad_output, "input": input, "weight": weight, "mean": mean,
               "invstd": invstd}  # fmt: skip
    return run_op(
        op,
        fastnn.batch_norm_backward,
        input,
        tensors,
        optional=("weight",),
        keywords={"output": output},
        training=training,
        activation=activation,
        output_mask=tuple(mask),
    )


class BatchNormFunction(torch.autograd.Function):
    """``apply(input, weight, bias, running_mean, running_var, training, momentum, eps,
    activation)``; running statistics updated in place in training."""

    @staticmethod
    def forward(ctx, input, weight, bias, running_mean, running_var, training, momentum, eps,
                activation):  # fmt: skip
        y, mean, invstd = batch_norm_forward(
            input, weight, bias, running_mean, running_var, training, momentum, eps, activation
        )
        ctx.save_for_backward(input, weight, mean, invstd, y if activation else None)
        ctx.params = (training, activation, eps)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        input, weight, mean, invstd, output = ctx.saved_tensors
        training, activation, eps = ctx.params
        mask = ctx.needs_input_grad[:3]
        grads = (None, None, None)
        if torch.is_grad_enabled():  # create_graph: gradients differentiable again
            grad = activation_grad(activation, grad_output, output)
            grads = batch_norm_grads(grad, input, weight, (mean, invstd), training, eps, mask)
        elif any(mask):
            grads = batch_norm_backward(
                grad_output, input, weight, mean, invstd, output, training, activation, mask
            )
        return (*grads, None, None, None, None, None, None)


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile (activation "" means none)
# ---------------------------------------------------------------------------------------


def _copy(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone(memory_format=torch.contiguous_format)


@torch.library.custom_op(
    "fastnn::batch_norm",
    mutates_args=(),
    schema=(
        "(Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, "
        "Tensor? running_var, bool training, float momentum, float eps, str activation) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)"
    ),
)
def _batch_norm_op(input, weight, bias, running_mean, running_var, training, momentum, eps,
                   activation):  # fmt: skip
    new_mean, new_var = _copy(running_mean), _copy(running_var)
    y, mean, invstd = batch_norm_forward(
        input, weight, bias, new_mean, new_var, training, momentum, eps, activation or None
    )
    if new_mean is None:  # no running statistics: empty placeholders
        new_mean, new_var = input.new_empty(0), input.new_empty(0)
    return y, mean, invstd, new_mean, new_var


@torch.library.custom_op(
    "fastnn::batch_norm_backward",
    mutates_args=(),
    schema=(
        "(Tensor grad_output, Tensor input, Tensor? weight, Tensor mean, Tensor invstd, "
        "Tensor? output, bool training, str activation, bool[] output_mask) -> Tensor[]"
    ),
)
def _batch_norm_backward_op(grad_output, input, weight, mean, invstd, output, training,
                            activation, output_mask):  # fmt: skip
    grads = batch_norm_backward(
        grad_output, input, weight, mean, invstd, output, training, activation or None,
        output_mask,
    )  # fmt: skip
    return [g for g in grads if g is not None]


@_batch_norm_op.register_fake
def _(input, weight, bias, running_mean, running_var, training, momentum, eps, activation):
    channels = input.shape[1]
    y = input.new_empty(input.shape)
    stats = (input.new_empty(channels), input.new_empty(channels))
    if running_mean is None:
        return y, *stats, input.new_empty(0), input.new_empty(0)
    return (
        y,
        *stats,
        running_mean.new_empty(running_mean.shape),
        running_var.new_empty(running_var.shape),
    )


@_batch_norm_backward_op.register_fake
def _(grad_output, input, weight, mean, invstd, output, training, activation, output_mask):
    channels = input.shape[1]
    like = (input, mean, mean)
    return [
        t.new_empty(t.shape if k == 0 else (channels,))
        for k, (t, wanted) in enumerate(zip(like, output_mask))
        if wanted
    ]


def _setup_context(ctx, inputs, output):
    input, weight, _bias, _rm, _rv, training, _momentum, _eps, activation = inputs
    y, mean, invstd, _, _ = output
    ctx.save_for_backward(input, weight, mean, invstd, y if activation else None)
    ctx.params = (training, activation)


def _autograd_backward(ctx, grad_output, _gm, _gi, _grm, _grv):
    input, weight, mean, invstd, output = ctx.saved_tensors
    training, activation = ctx.params
    mask = list(ctx.needs_input_grad[:3])
    grads = iter(
        _batch_norm_backward_op(
            grad_output, input, weight, mean, invstd, output, training, activation, mask
        )
        if any(mask)
        else ()
    )
    return (*(next(grads) if wanted else None for wanted in mask), *(None,) * 6)


_batch_norm_op.register_autograd(_autograd_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------
# Public function
# ---------------------------------------------------------------------------------------


def _check_momentum(momentum: object) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise TypeError(f"{_OP}: momentum must be a float, got {momentum!r}")
    return float(momentum)


def batch_norm(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    *,
    activation: str | None = None,
) -> torch.Tensor:
    """``torch.nn.functional.batch_norm`` run by fastnn, on (N, C, *) input.

    Training normalises with the batch's statistics and moves ``running_mean`` /
    ``running_var`` (None for none) in place towards them, the variance unbiased; eval
    normalises with the running statistics.  ``activation`` ("relu", "relu6" or None) is
    applied in the same pass.  Gradients flow to ``input``, ``weight`` and ``bias``."""
    m = _check_momentum(momentum)
    if torch.compiler.is_compiling():
        y, _, _, new_mean, new_var = _batch_norm_op(
            input, weight, bias, running_mean, running_var, bool(training), m, float(eps),
            activation or "",
        )  # fmt: skip
        if training and running_mean is not None:
            with torch.no_grad():
                running_mean.copy_(new_mean)
                running_var.copy_(new_var)
        return y
    return apply_function(
        BatchNormFunction,
        input,
        weight,
        bias,
        running_mean,
        running_var,
        training,
        m,
        eps,
        activation,
    )
