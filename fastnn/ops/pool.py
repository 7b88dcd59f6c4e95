"""Max, average and adaptive pooling (1-D and 2-D) and their backward: validate once, then
dispatch."""

from __future__ import annotations

from typing import Any

from fastnn import _args
from fastnn._adaptive import adaptive_geometry, check_grad_output
from fastnn._dispatch import resolve

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
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


# ---------------------------------------------------------------------------------------
# Adaptive pooling
# ---------------------------------------------------------------------------------------


def adaptive_avg_pool1d(input: Any, output_size: Any, *, backend: str | None = None) -> Any:
    """Adaptive average pooling of an (N, C, L) input to (N, C, output_size): window ``i``
    averages ``[floor(i * L / Lo), ceil((i + 1) * L / Lo))`` (PyTorch's rule).
    ``output_size`` is an int, a 1-tuple, or None (keep L)."""
    op = "adaptive_avg_pool1d"
    kind = _args.float_array(op, "input", input)
    geom = adaptive_geometry(op, 1, tuple(input.shape), output_size)
    return resolve(op, kind, backend)(input, geom)


def adaptive_avg_pool2d(input: Any, output_size: Any, *, backend: str | None = None) -> Any:
    """Adaptive average pooling of an (N, C, H, W) input to (N, C, Ho, Wo); ``output_size``
    is an int or an (Ho, Wo) pair whose entries may be None (keep that input size).
    ``output_size=1`` is global average pooling."""
    op = "adaptive_avg_pool2d"
    kind = _args.float_array(op, "input", input)
    geom = adaptive_geometry(op, 2, tuple(input.shape), output_size)
    return resolve(op, kind, backend)(input, geom)


def adaptive_max_pool2d(
    input: Any, output_size: Any, return_indices: bool = False, *, backend: str | None = None
) -> Any:
    """Adaptive max pooling of an (N, C, H, W) input (windows as
    :func:`adaptive_avg_pool2d`; NaN propagates, the first maximum / last NaN wins, as in
    PyTorch's CPU kernel).  With ``return_indices`` also returns the int64 flat position
    (``h * W + w``) of each maximum, as ``(output, indices)``."""
    op = "adaptive_max_pool2d"
    kind = _args.float_array(op, "input", input)
    geom = adaptive_geometry(op, 2, tuple(input.shape), output_size)
    with_indices = _args.check_bool(op, "return_indices", return_indices)
    return resolve(op, kind, backend)(input, geom, with_indices)


def _adaptive_avg_backward(op: str, nd: int, grad_output: Any, input: Any, backend) -> Any:
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    geom = check_grad_output(op, grad_output, tuple(input.shape), nd)
    return resolve(op, kind, backend)(grad_output, geom)


def adaptive_avg_pool1d_backward(
    grad_output: Any, input: Any, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`adaptive_avg_pool1d` with respect to its input: every element of
    window ``i`` gets ``grad_output[..., i] / len(window i)``.  ``input`` gives the input
    shape (its values are not read); the output size is ``grad_output``'s."""
    return _adaptive_avg_backward("adaptive_avg_pool1d_backward", 1, grad_output, input, backend)


def adaptive_avg_pool2d_backward(
    grad_output: Any, input: Any, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input (see
    :func:`adaptive_avg_pool1d_backward`)."""
    return _adaptive_avg_backward("adaptive_avg_pool2d_backward", 2, grad_output, input, backend)


def adaptive_max_pool2d_backward(
    grad_output: Any, input: Any, indices: Any = None, *, backend: str | None = None
) -> Any:
    """Gradient of :func:`adaptive_max_pool2d` with respect to its input: each output's
    gradient goes to its maximum; maxima shared by overlapping windows add up.
    ``indices`` (from ``return_indices=True``, any integers in [0, H * W)) are used when
    given; otherwise the maxima are found again in ``input``."""
    op = "adaptive_max_pool2d_backward"
    kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    geom = check_grad_output(op, grad_output, tuple(input.shape), 2)
    if indices is not None:
        _args.index_array(op, "indices", indices, kind)
        _args.check_shape(op, "indices", indices, geom.output_shape, "the pooled shape")
        _args.check_index_range(op, "indices", indices, kind, 0, _prod(geom.in_size), backend)
    return resolve(op, kind, backend)(grad_output, input, geom, indices)
