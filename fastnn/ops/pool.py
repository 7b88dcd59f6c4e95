"""Max and average pooling (1-D and 2-D) and their backward: validate once, then dispatch."""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._dispatch import resolve

__all__ = [
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
]


def _max(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend):
    kind = _args.float_array(op, "input", input)
    geom = _args.pool_geometry(
        op, nd, tuple(input.shape), kernel_size, stride, padding, dilation, ceil_mode
    )
    with_indices = _args.check_bool(op, "return_indices", return_indices)
    return resolve(op, kind, backend)(input, geom, with_indices)


def _max_backward(
    op, nd, grad_output, input, kernel_size, stride, padding, dilation, ceil_mode, indices, backend
):
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    geom = _args.pool_geometry(
        op, nd, tuple(input.shape), kernel_size, stride, padding, dilation, ceil_mode
    )
    _args.check_shape(op, "grad_output", grad_output, geom.output_shape, "the pooled shape")
    if indices is not None:
        _args.index_array(op, "indices", indices, kind)
        _args.check_shape(op, "indices", indices, geom.output_shape, "the pooled shape")
        _args.check_index_range(op, "indices", indices, kind, 0, _prod(geom.in_size), backend)
    return resolve(op, kind, backend)(grad_output, input, geom, indices)


def _avg(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, backend):
    kind = _args.float_array(op, "input", input)
    geom = _args.pool_geometry(
        op, nd, tuple(input.shape), kernel_size, stride, padding, 1, ceil_mode
    )
    include_pad = _args.check_bool(op, "count_include_pad", count_include_pad)
    return resolve(op, kind, backend)(input, geom, include_pad)


def _avg_backward(
    op, nd, grad_output, input, kernel_size, stride, padding, ceil_mode, count_include_pad, backend
):
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    geom = _args.pool_geometry(
        op, nd, tuple(input.shape), kernel_size, stride, padding, 1, ceil_mode
    )
    _args.check_shape(op, "grad_output", grad_output, geom.output_shape, "the pooled shape")
    include_pad = _args.check_bool(op, "count_include_pad", count_include_pad)
    return resolve(op, kind, backend)(grad_output, geom, include_pad)


def _prod(values: tuple[int, ...]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


def max_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    backend: str | None = None,
) -> Any:
    """Max pooling over windows of an (N, C, L) input (PyTorch semantics: padding is -inf,
    NaN propagates).  With ``return_indices`` also returns the int64 position (in L) of
    each maximum, as ``(output, indices)``."""
    return _max(
        "max_pool1d",
        1,
        input,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        return_indices,
        backend,
    )


def max_pool2d(
    input: Any,
    kernel_size: int | tuple[int, int],
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
    *,
    backend: str | None = None,
) -> Any:
    """Max pooling over windows of an (N, C, H, W) input.  With ``return_indices`` also
    returns the int64 flat position (``h * W + w``) of each maximum."""
    return _max(
        "max_pool2d",
        2,
        input,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        return_indices,
        backend,
    )


def avg_pool1d(
    input: Any,
    kernel_size: int | tuple[int],
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    backend: str | None = None,
) -> Any:
    """Average pooling of an (N, C, L) input; ``count_include_pad`` counts the zero padding
    in the divisor (PyTorch semantics, ceil_mode windows included)."""
    return _avg(
        "avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, backend
    )


def avg_pool2d(
    input: Any,
    kernel_size: int | tuple[int, int],
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    backend: str | None = None,
) -> Any:
    """Average pooling of an (N, C, H, W) input (PyTorch semantics)."""
    return _avg(
        "avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad, backend
    )


def max_pool1d_backward(
    grad_output: Any,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    indices: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`max_pool1d` with respect to its input.  ``indices`` (from
    ``return_indices=True``) are validated and used when given; otherwise the maxima are
    found again in ``input``."""
    return _max_backward(
        "max_pool1d_backward",
        1,
        grad_output,
        input,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        indices,
        backend,
    )


def max_pool2d_backward(
    grad_output: Any,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    indices: Any = None,
    *,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`max_pool2d` with respect to its input (see
    :func:`max_pool1d_backward`)."""
    return _max_backward(
        "max_pool2d_backward",
        2,
        grad_output,
        input,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        indices,
        backend,
    )


def avg_pool1d_backward(
    grad_output: Any,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`avg_pool1d` with respect to its input."""
    return _avg_backward(
        "avg_pool1d_backward",
        1,
        grad_output,
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        backend,
    )


def avg_pool2d_backward(
    grad_output: Any,
    input: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    backend: str | None = None,
) -> Any:
    """Gradient of :func:`avg_pool2d` with respect to its input."""
    return _avg_backward(
        "avg_pool2d_backward",
        2,
        grad_output,
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        backend,
    )
