"""The fused residual add ``activation(a + b)`` on torch tensors, run by fastnn in one pass.

Its gradient with respect to ``a`` and to ``b`` is the same tensor: the activation's
gradient from the forward *output* (identity: ``grad_output``; relu: fastnn's
``activation_backward("relu")``, zero where the output is <= 0; relu6: zero where the
output is <= 0 or >= 6, as torch's hardtanh backward), so only the output is saved.
Three layers, as ``_activation``: a tensor-level function, a ``torch.autograd.Function``
for eager mode, and the custom ops ``torch.ops.fastnn.add`` / ``add_backward`` for
``torch.compile``.
"""

from __future__ import annotations

import torch

import fastnn
from fastnn.torch._activation_grad import activation_grad
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor
from fastnn.torch._custom_op import op_pair

__all__ = ["AddFunction", "add"]


def add_forward(a: torch.Tensor, b: torch.Tensor, activation: str) -> torch.Tensor:
    """fastnn's add (``activation`` "" for none) on tensors of one shape and dtype."""
    with device_scope(a):
        y = fastnn.add(
            to_array("fastnn.torch.add", "a", a),
            to_array("fastnn.torch.add", "b", b),
            activation=activation or None,
        )
        return to_tensor(y)


def add_backward(activation: str, grad_output: torch.Tensor, output: torch.Tensor):
    """The gradient of ``activation(a + b)`` with respect to a (and b), from the output."""
    if not activation:
        return grad_output.clone(memory_format=torch.contiguous_format)
    if activation == "relu":
        op = "fastnn.torch.add backward"
        with device_scope(output):
            grad = fastnn.activation_backward(
                "relu", to_array(op, "grad_output", grad_output), to_array(op, "output", output)
            )
            return to_tensor(grad)
    outside = (output <= 0) | (output >= 6)  # relu6: NaN compares false and passes
    return torch.where(outside, torch.zeros_like(grad_output), grad_output).contiguous()


class AddFunction(torch.autograd.Function):
    """``apply(a, b, activation)`` (activation "" for none, "relu" or "relu6")."""

    @staticmethod
    def forward(ctx, a, b, activation):
        y = add_forward(a, b, activation)
        ctx.activation = activation
        ctx.save_for_backward(y if activation else None)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        if not any(ctx.needs_input_grad[:2]):
            return None, None, None
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            grad = activation_grad(ctx.activation or None, grad_output, output)
        else:
            grad = add_backward(ctx.activation, grad_output, output)
        ga = grad if ctx.needs_input_grad[0] else None
        gb = grad if ctx.needs_input_grad[1] else None
        return ga, gb, None


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------

_forward_op, _backward_op = op_pair(
    "add",
    add_forward,
    "(Tensor a, Tensor b, str activation) -> Tensor",
    add_backward,
    "(str activation, Tensor grad_output, Tensor output) -> Tensor",
)
_forward_op.register_fake(
    lambda a, b, activation: torch.empty_like(a, memory_format=torch.contiguous_format)
)
_backward_op.register_fake(
    lambda activation, grad_output, output: torch.empty_like(
        output, memory_format=torch.contiguous_format
    )
)


def _setup_context(ctx, inputs, output):
    ctx.activation = inputs[2]
    ctx.save_for_backward(output)


def _autograd_backward(ctx, grad_output):
    (output,) = ctx.saved_tensors
    grad = _backward_op(ctx.activation, grad_output, output)
    return (grad if ctx.needs_input_grad[0] else None,
            grad if ctx.needs_input_grad[1] else None, None)  # fmt: skip


_forward_op.register_autograd(_autograd_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------
# Public function
# ---------------------------------------------------------------------------------------

_ACTIVATIONS = (None, "relu", "relu6")


def add(a: torch.Tensor, b: torch.Tensor, *, activation: str | None = None) -> torch.Tensor:
    """``activation(a + b)`` in one pass (a residual connection), activation None, "relu"
    or "relu6".  ``a`` and ``b`` must have the same shape and dtype (no broadcasting:
    fastnn raises ValueError)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"fastnn.torch.add: activation must be one of {_ACTIVATIONS}, got {activation!r}"
        )
    name = activation or ""
    if torch.compiler.is_compiling():
        return _forward_op(a, b, name)
    return apply_function(AddFunction, a, b, name)
