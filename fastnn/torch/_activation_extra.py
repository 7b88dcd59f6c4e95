"""hardtanh, relu6, leaky_relu, silu and gelu on torch tensors, run by fastnn, and the
in-place variants of relu, relu6, hardtanh, leaky_relu (and silu).

Same three layers as ``_activation``: tensor-level functions, ``torch.autograd.Function``
classes for eager mode, custom ops ``torch.ops.fastnn.*`` for ``torch.compile``.

relu, hardtanh (relu6 is hardtanh on [0, 6]) and leaky_relu ("pointwise" below, with two
float parameters p0, p1: min_val / max_val, negative_slope) take their gradient from the
forward output, so the in-place variants need nothing but the overwritten tensor.  They
compute with fastnn's kernel straight into the tensor's memory (``out=`` the DLPack view)
and keep torch's autograd safety: the Function calls ``ctx.mark_dirty`` (the version
counter is bumped, so a tensor saved by another op for its backward raises there, as in
torch), and in-place on a leaf that requires grad (or a view of one) raises before any
memory is written.  leaky_relu's gradient from its output needs ``negative_slope >= 0``:
its in-place backward with a negative slope raises, as torch's does; out of place, a
negative slope saves the input instead.

silu and gelu take their gradient from the input.  ``silu(inplace=True)`` computes out of
place and copies the result into the input with ``Tensor.copy_`` (torch's autograd checks
and version bump), from a clone of the input when a gradient is needed (the backward
needs the values copy_ overwrites): torch's semantics at the price of one or two
temporaries; gelu has no in-place form, as in torch.
"""

from __future__ import annotations

from typing import Any

import torch

import fastnn
from fastnn.torch._activation_grad import activation_grad, input_grad, pointwise_kernel
from fastnn.torch._bridge import apply_function, device_scope, to_array, to_tensor
from fastnn.torch._custom_op import op_pair

__all__ = [
    "GeluFunction",
    "InplacePointwiseFunction",
    "PointwiseFunction",
    "SiluFunction",
    "gelu",
    "hardtanh",
    "inplace_relu",
    "leaky_relu",
    "relu6",
    "silu",
]

#: The activations with a gradient from the output and an in-place form.
POINTWISE = ("relu", "hardtanh", "leaky_relu")


# ---------------------------------------------------------------------------------------
# Tensor functions
# ---------------------------------------------------------------------------------------


def _check_pointwise(name: str) -> None:
    if name not in POINTWISE:
        raise ValueError(f"fastnn.torch: no pointwise activation {name!r}")


def _forward_array(name: str, x: Any, p0: float, p1: float, out: Any = None) -> Any:
    if name == "relu":
        return fastnn.relu(x, out=out)
    if name == "hardtanh":
        return fastnn.hardtanh(x, p0, p1, out=out)
    return fastnn.leaky_relu(x, p0, out=out)


def pointwise_forward(name: str, input: torch.Tensor, p0: float, p1: float) -> torch.Tensor:
    """relu / hardtanh (p0, p1 = min_val, max_val) / leaky_relu (p0 = negative_slope) of
    ``input`` as a new tensor."""
    _check_pointwise(name)
    with device_scope(input):
        x = to_array(f"fastnn.torch.{name}", "input", input)
        return to_tensor(_forward_array(name, x, p0, p1))


def pointwise_forward_(name: str, input: torch.Tensor, p0: float, p1: float) -> None:
    """The same, written into ``input``'s own memory (no autograd bookkeeping here)."""
    _check_pointwise(name)
    with device_scope(input):
        x = to_array(f"fastnn.torch.{name}_", "input", input)
        if input.is_contiguous():
            _forward_array(name, x, p0, p1, out=x)
            return
        y = to_tensor(_forward_array(name, x, p0, p1))  # a strided tensor: via a temporary
    with torch.no_grad():
        input.copy_(y)


def pointwise_backward(
    name: str, grad_output: torch.Tensor, output: torch.Tensor, p0: float, p1: float
) -> torch.Tensor:
    """Gradient of relu / hardtanh / leaky_relu from the forward output (leaky_relu:
    ``negative_slope = p0 >= 0``, else fastnn raises ValueError)."""
    _check_pointwise(name)
    return pointwise_kernel(name, grad_output, output, p0, p1)


def _leaky_relu_backward_from_input(grad_output, input, slope: float) -> torch.Tensor:
    """leaky_relu's gradient for a negative slope (the output cannot tell the sign)."""
    return torch.where(input > 0, grad_output, grad_output * slope)


def silu_forward(input: torch.Tensor) -> torch.Tensor:
    """fastnn's silu of ``input``."""
    with device_scope(input):
        return to_tensor(fastnn.silu(to_array("fastnn.torch.silu", "input", input)))


def silu_backward(grad_output: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """Gradient of silu from its forward input."""
    op = "fastnn.torch.silu backward"
    with device_scope(input):
        grad = fastnn.silu_backward(
            to_array(op, "grad_output", grad_output), to_array(op, "input", input)
        )
        return to_tensor(grad)


def gelu_forward(input: torch.Tensor, approximate: str) -> torch.Tensor:
    """fastnn's gelu of ``input`` ("none": erf, or "tanh")."""
    with device_scope(input):
        x = to_array("fastnn.torch.gelu", "input", input)
        return to_tensor(fastnn.gelu(x, approximate))


def gelu_backward(grad_output: torch.Tensor, input: torch.Tensor, approximate: str):
    """Gradient of gelu from its forward input."""
    op = "fastnn.torch.gelu backward"
    with device_scope(input):
        grad = fastnn.gelu_backward(
            to_array(op, "grad_output", grad_output), to_array(op, "input", input), approximate
        )
        return to_tensor(grad)


# ---------------------------------------------------------------------------------------
# Autograd functions (eager mode)
# ---------------------------------------------------------------------------------------


def _pointwise_grad(name: str, grad_output, output, p0: float, p1: float) -> torch.Tensor:
    """The fused kernel without a graph to record; under create_graph, the differentiable
    ``PointwiseGradFunction``."""
    if torch.is_grad_enabled():
        return activation_grad(name, grad_output, output, p0, p1)
    return pointwise_backward(name, grad_output, output, p0, p1)


def _saves_input(name: str, p0: float) -> bool:
    return name == "leaky_relu" and p0 < 0


class PointwiseFunction(torch.autograd.Function):
    """``apply(name, input, p0, p1)``: relu / hardtanh / leaky_relu out of place."""

    @staticmethod
    def forward(ctx, name, input, p0, p1):
        y = pointwise_forward(name, input, p0, p1)
        ctx.save_for_backward(input if _saves_input(name, p0) else y)
        ctx.params = (name, p0, p1)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (saved,) = ctx.saved_tensors
        name, p0, p1 = ctx.params
        if _saves_input(name, p0):  # (torch ops: differentiable as they are)
            return None, _leaky_relu_backward_from_input(grad_output, saved, p0), None, None
        return None, _pointwise_grad(name, grad_output, saved, p0, p1), None, None


class InplacePointwiseFunction(torch.autograd.Function):
    """``apply(name, input, p0, p1)``: relu / hardtanh / leaky_relu written into
    ``input``, which is marked dirty and returned."""

    @staticmethod
    def forward(ctx, name, input, p0, p1):
        pointwise_forward_(name, input, p0, p1)
        ctx.mark_dirty(input)
        ctx.save_for_backward(input)  # the output: the gradient is computed from it
        ctx.params = (name, p0, p1)
        return input

    @staticmethod
    def backward(ctx, grad_output):
        (output,) = ctx.saved_tensors
        name, p0, p1 = ctx.params
        return None, _pointwise_grad(name, grad_output, output, p0, p1), None, None


class SiluFunction(torch.autograd.Function):
    """``apply(input)``: silu, its gradient from the saved input."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return silu_forward(input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            return input_grad("silu", grad_output, input)
        return silu_backward(grad_output, input)


class GeluFunction(torch.autograd.Function):
    """``apply(input, approximate)``: gelu, its gradient from the saved input."""

    @staticmethod
    def forward(ctx, input, approximate):
        ctx.save_for_backward(input)
        ctx.approximate = approximate
        return gelu_forward(input, approximate)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a gradient differentiable again
            name = "gelu" if ctx.approximate == "none" else "gelu_tanh"
            return input_grad(name, grad_output, input), None
        return gelu_backward(grad_output, input, ctx.approximate), None


# ---------------------------------------------------------------------------------------
# Custom ops, for torch.compile
# ---------------------------------------------------------------------------------------


def _like(tensor: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(tensor, memory_format=torch.contiguous_format)


_pointwise_op, _pointwise_backward_op = op_pair(
    "pointwise",
    pointwise_forward,
    "(str name, Tensor input, float p0, float p1) -> Tensor",
    pointwise_backward,
    "(str name, Tensor grad_output, Tensor output, float p0, float p1) -> Tensor",
)
_pointwise_backward_op.register_fake(lambda name, grad_output, output, p0, p1: _like(output))
_pointwise_op.register_fake(lambda name, input, p0, p1: _like(input))


def _pointwise_setup(ctx, inputs, output):
    name, input, p0, p1 = inputs
    ctx.save_for_backward(input if _saves_input(name, p0) else output)
    ctx.params = (name, p0, p1)


def _pointwise_autograd(ctx, grad_output):
    (saved,) = ctx.saved_tensors
    name, p0, p1 = ctx.params
    if _saves_input(name, p0):
        return None, _leaky_relu_backward_from_input(grad_output, saved, p0), None, None
    return None, _pointwise_backward_op(name, grad_output, saved, p0, p1), None, None


_pointwise_op.register_autograd(_pointwise_autograd, setup_context=_pointwise_setup)

#: In place, without autograd (torch.compile runs it where no gradient is needed; with a
#: gradient the compiled path is the out-of-place op followed by ``copy_``).
_pointwise_inplace_op = torch.library.custom_op(
    "fastnn::pointwise_",
    pointwise_forward_,
    mutates_args=("input",),
    schema="(str name, Tensor(a!) input, float p0, float p1) -> ()",
)
_pointwise_inplace_op.register_fake(lambda name, input, p0, p1: None)

_silu_op, _silu_backward_op = op_pair(
    "silu",
    silu_forward,
    "(Tensor input) -> Tensor",
    silu_backward,
    "(Tensor grad_output, Tensor input) -> Tensor",
)
_silu_backward_op.register_fake(lambda grad_output, input: _like(input))
_silu_op.register_fake(_like)


def _save_input(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.params = inputs[1:]


_silu_op.register_autograd(
    lambda ctx, grad_output: _silu_backward_op(grad_output, ctx.saved_tensors[0]),
    setup_context=_save_input,
)

_gelu_op, _gelu_backward_op = op_pair(
    "gelu",
    gelu_forward,
    "(Tensor input, str approximate) -> Tensor",
    gelu_backward,
    "(Tensor grad_output, Tensor input, str approximate) -> Tensor",
)
_gelu_backward_op.register_fake(lambda grad_output, input, approximate: _like(input))
_gelu_op.register_fake(lambda input, approximate: _like(input))
_gelu_op.register_autograd(
    lambda ctx, grad_output: (
        _gelu_backward_op(grad_output, ctx.saved_tensors[0], ctx.params[0]),
        None,
    ),
    setup_context=_save_input,
)


# ---------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------


def _check_inplace_allowed(input: torch.Tensor) -> None:
    """torch's own checks of an in-place op, made before any memory is written."""
    if not isinstance(input, torch.Tensor) or not torch.is_grad_enabled():
        return
    if input.requires_grad and input.is_leaf:
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation."
        )
    base = input._base
    if base is not None and base.requires_grad and base.is_leaf:
        raise RuntimeError(
            "a view of a leaf Variable that requires grad is being used in an in-place operation."
        )


def _pointwise(name: str, input: torch.Tensor, p0: float, p1: float, inplace: bool):
    if not inplace:
        if torch.compiler.is_compiling():
            return _pointwise_op(name, input, p0, p1)
        return apply_function(PointwiseFunction, name, input, p0, p1)
    if torch.compiler.is_compiling():
        if torch.is_grad_enabled() and input.requires_grad:
            return input.copy_(_pointwise_op(name, input, p0, p1))
        _pointwise_inplace_op(name, input, p0, p1)
        return input
    _check_inplace_allowed(input)
    return apply_function(InplacePointwiseFunction, name, input, p0, p1)


def _bool(name: str, value: object) -> bool:
    if value is True or value is False:
        return value
    raise TypeError(f"fastnn.torch: {name} must be a bool, got {value!r}")


def inplace_relu(input: torch.Tensor) -> torch.Tensor:
    """``torch.relu_(input)`` run by fastnn: written into ``input`` and returned."""
    return _pointwise("relu", input, 0.0, 0.0, True)


def hardtanh(
    input: torch.Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> torch.Tensor:
    """``torch.nn.functional.hardtanh`` run by fastnn (NaN stays NaN); ``inplace=True``
    writes into ``input`` (torch's autograd checks kept)."""
    lo, hi = float(min_val), float(max_val)
    if hi < lo:  # (torch's message; fastnn.hardtanh checks the rest)
        raise ValueError("min_val cannot be greater than max_val")
    return _pointwise("hardtanh", input, lo, hi, _bool("inplace", inplace))


def relu6(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``torch.nn.functional.relu6`` run by fastnn: hardtanh on [0, 6]."""
    return _pointwise("hardtanh", input, 0.0, 6.0, _bool("inplace", inplace))


def leaky_relu(
    input: torch.Tensor, negative_slope: float = 0.01, inplace: bool = False
) -> torch.Tensor:
    """``torch.nn.functional.leaky_relu`` run by fastnn; in place, its backward needs
    ``negative_slope >= 0`` (as torch's)."""
    slope = float(negative_slope)
    return _pointwise("leaky_relu", input, slope, 0.0, _bool("inplace", inplace))


def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``torch.nn.functional.silu`` run by fastnn; ``inplace=True`` copies the result
    into ``input`` (``Tensor.copy_``: torch's autograd checks and version bump)."""
    inplace = _bool("inplace", inplace)
    source = input
    if inplace and torch.is_grad_enabled() and input.requires_grad:
        source = input.clone()  # the gradient needs the input that copy_ overwrites
    y = _silu_op(source) if torch.compiler.is_compiling() else apply_function(SiluFunction, source)
    return input.copy_(y) if inplace else y


def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """``torch.nn.functional.gelu`` run by fastnn (``approximate`` "none" or "tanh")."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    if torch.compiler.is_compiling():
        return _gelu_op(input, approximate)
    return apply_function(GeluFunction, input, approximate)
