"""conv1d / conv2d and their backward: validate once, then dispatch."""

from __future__ import annotations

from typing import Any

from fastnn import _args, _geometry
from fastnn._dispatch import lean, resolve
from fastnn._op_checks import conv_algo

__all__ = ["conv1d", "conv1d_backward", "conv2d", "conv2d_backward"]

#: The activations a convolution can fuse into its output (None: the identity).
ACTIVATIONS = (None, "relu", "relu6")


def _forward(
    op, nd, input, weight, bias, stride, padding, dilation, groups, algo, activation, backend
):
    run = lean(op, backend)  # it runs the layer when it remembers how
    if run is not None:
        out = run(input, weight, bias, stride, padding, dilation, groups, algo, activation)
        if out is not None:
            return out
    kind, _ = _args.float_arrays(
        op, {"input": input, "weight": weight, "bias": bias}, optional=("bias",)
    )
    geom = _geometry.conv_geometry(
        op, nd, tuple(input.shape), tuple(weight.shape), stride, padding, dilation, groups
    )
    if bias is not None:
        _args.check_shape(op, "bias", bias, (geom.out_channels,), "C_out")
    algo = conv_algo(op, algo, geom)
    act = _args.activation_name(op, activation, ACTIVATIONS)
    return resolve(op, kind, backend)(input, weight, bias, geom, algo, act)


def _backward(
    op,
    nd,
    grad_output,
    input,
    weight,
    stride,
    padding,
    dilation,
    groups,
    algo,
    output_mask,
    backend,
):
    run = lean(op, backend)
    if run is not None:
        out = run(grad_output, input, weight, stride, padding, dilation, groups, algo, output_mask)
        if out is not None:
            return out
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input, "weight": weight})
    geom = _geometry.conv_geometry(
        op, nd, tuple(input.shape), tuple(weight.shape), stride, padding, dilation, groups
    )
    _args.check_shape(op, "grad_output", grad_output, geom.output_shape, "the conv output shape")
    mask = _args.output_mask(op, output_mask)
    algo = conv_algo(op, algo, geom)
    return resolve(op, kind, backend)(grad_output, input, weight, geom, algo, mask)


def conv1d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    activation: str | None = None,
    backend: str | None = None,
) -> Any:
    """1-D cross-correlation (PyTorch's ``conv1d``) of an (N, C_in, L) input with an
    (C_out, C_in // groups, kL) weight, plus an optional (C_out,) bias, through an
    optional fused ``activation`` (see :func:`conv2d`).

    ``padding`` is an int, a 1-tuple, ``"valid"`` (no padding) or ``"same"`` (output length
    equal to the input's; stride must be 1; an even dilated kernel pads one more on the
    right).  ``algo`` picks "im2col" (+ GEMM), "direct" or "auto" (see :func:`conv2d`).
    Returns (N, C_out, L_out).
    """
    return _forward(
        "conv1d", 1, input, weight, bias, stride, padding, dilation, groups, algo, activation,
        backend,
    )  # fmt: skip


def conv2d(
    input: Any,
    weight: Any,
    bias: Any = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    activation: str | None = None,
    backend: str | None = None,
) -> Any:
    """2-D cross-correlation (PyTorch's ``conv2d``) of an (N, C_in, H, W) input with an
    (C_out, C_in // groups, kH, kW) weight, plus an optional (C_out,) bias:
    ``out[n, j] = bias[j] + sum_k weight[j, k] * input[n, k]``.

    ``stride``, ``padding`` and ``dilation`` are ints or pairs; ``padding`` may also be
    ``"valid"`` or ``"same"`` (stride 1 only).  Returns (N, C_out, H_out, W_out).

    ``algo``: "auto" (default) measures the candidate algorithms on first use of a shape
    and remembers the fastest (``fastnn.autotune``; with autotuning off, a static prior
    picks); "im2col" (+ GEMM), "direct", or "winograd" (3x3, stride 1, dilation 1 only;
    "winograd2", "winograd4", "winograd6" pin the output tile F(m x m, 3 x 3)).  A layer
    an explicit algorithm cannot run raises ValueError.

    ``activation``: None (default), "relu" (``max(y, 0)``) or "relu6"
    (``min(max(y, 0), 6)``), applied to ``conv + bias`` by the kernel as it writes the
    output, with no extra pass over it; NaN stays NaN.  The backward ops do not take it:
    pass the gradient through the activation first (``activation_backward`` from this
    output), then call :func:`conv2d_backward`.
    """
    return _forward(
        "conv2d", 2, input, weight, bias, stride, padding, dilation, groups, algo, activation,
        backend,
    )  # fmt: skip


def conv1d_backward(
    grad_output: Any,
    input: Any,
    weight: Any,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    output_mask: tuple[bool, bool, bool] = (True, True, True),
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of :func:`conv1d`: ``(grad_input, grad_weight, grad_bias)`` given the
    gradient of the loss with respect to its output.  An entry is None (and costs nothing)
    where ``output_mask`` is False."""
    return _backward(
        "conv1d_backward",
        1,
        grad_output,
        input,
        weight,
        stride,
        padding,
        dilation,
        groups,
        algo,
        output_mask,
        backend,
    )


def conv2d_backward(
    grad_output: Any,
    input: Any,
    weight: Any,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    output_mask: tuple[bool, bool, bool] = (True, True, True),
    backend: str | None = None,
) -> tuple[Any, Any, Any]:
    """Gradients of :func:`conv2d`: ``(grad_input, grad_weight, grad_bias)``; None where
    ``output_mask`` is False."""
    return _backward(
        "conv2d_backward",
        2,
        grad_output,
        input,
        weight,
        stride,
        padding,
        dilation,
        groups,
        algo,
        output_mask,
        backend,
    )
