"""Max, average and adaptive pooling (1-D and 2-D) and their backward: validate once, then
dispatch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastnn import _args, _geometry
from fastnn._dispatch import lean, resolve
from fastnn._geometry import adaptive_geometry, check_grad_output
from fastnn.ops import _data_checks

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


_F = TypeVar("_F", bound=Callable[..., Any])


def _named(op: str, doc: str) -> Callable[[_F], _F]:
    """Give the function built for ``op`` its public name and docstring."""

    def name(fn: _F) -> _F:
        fn.__name__ = fn.__qualname__ = op
        fn.__doc__ = doc
        return fn

    return name


#: The ``grad_output`` of a forward op in :func:`_windows` (None is a wrong argument).
_FORWARD = object()


def _windows(
    op: str,
    nd: int,
    input: Any,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    ceil_mode: Any,
    grad_output: Any = _FORWARD,
) -> tuple[str, Any]:
    """``(array kind, pool geometry)`` of a pooling call, after checking ``input`` (and,
    for a backward op, ``grad_output``: the same kind, the pooled shape)."""
    backward = grad_output is not _FORWARD
    if not backward:
        kind = _args.float_array(op, "input", input)
    else:
        kind, _ = _args.float_arrays(op, {"grad_output": grad_output, "input": input})
    geom = _geometry.pool_geometry(
        op, nd, tuple(input.shape), kernel_size, stride, padding, dilation, ceil_mode
    )
    if backward:
        _args.check_shape(op, "grad_output", grad_output, geom.output_shape, "the pooled shape")
    return kind, geom


def _max_pool(nd: int, doc: str) -> Callable[..., Any]:
    """``max_pool{nd}d``: one definition for 1-D and 2-D."""
    op = f"max_pool{nd}d"

    @_named(op, doc)
    def max_pool(
        input: Any,
        kernel_size: int | tuple[int, ...],
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
        *,
        backend: str | None = None,
    ) -> Any:
        run = lean(op, backend)  # it runs the call when it has run one like it
        if run is not None:
            out = run(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
            if out is not None:
                return out
        kind, geom = _windows(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode)
        with_indices = _args.check_bool(op, "return_indices", return_indices)
        return resolve(op, kind, backend)(input, geom, with_indices)

    return max_pool


def _avg_pool(nd: int, doc: str) -> Callable[..., Any]:
    """``avg_pool{nd}d``: one definition for 1-D and 2-D."""
    op = f"avg_pool{nd}d"

    @_named(op, doc)
    def avg_pool(
        input: Any,
        kernel_size: int | tuple[int, ...],
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        *,
        backend: str | None = None,
    ) -> Any:
        run = lean(op, backend)  # it runs the call when it has run one like it
        if run is not None:
            out = run(input, kernel_size, stride, padding, ceil_mode, count_include_pad)
            if out is not None:
                return out
        kind, geom = _windows(op, nd, input, kernel_size, stride, padding, 1, ceil_mode)
        include_pad = _args.check_bool(op, "count_include_pad", count_include_pad)
        return resolve(op, kind, backend)(input, geom, include_pad)

    return avg_pool


def _max_pool_backward(nd: int, doc: str) -> Callable[..., Any]:
    """``max_pool{nd}d_backward``: one definition for 1-D and 2-D."""
    op = f"max_pool{nd}d_backward"

    @_named(op, doc)
    def max_pool_backward(
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
        kind, geom = _windows(
            op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, grad_output
        )
        _check_indices(op, indices, kind, geom, backend)
        return resolve(op, kind, backend)(grad_output, input, geom, indices)

    return max_pool_backward


def _avg_pool_backward(nd: int, doc: str) -> Callable[..., Any]:
    """``avg_pool{nd}d_backward``: one definition for 1-D and 2-D."""
    op = f"avg_pool{nd}d_backward"

    @_named(op, doc)
    def avg_pool_backward(
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
        kind, geom = _windows(
            op, nd, input, kernel_size, stride, padding, 1, ceil_mode, grad_output
        )
        include_pad = _args.check_bool(op, "count_include_pad", count_include_pad)
        return resolve(op, kind, backend)(grad_output, geom, include_pad)

    return avg_pool_backward


def _check_indices(op: str, indices: Any, kind: str, geom: Any, backend: str | None) -> None:
    """Validate the ``indices`` a max pooling returned (None: nothing to check): integer,
    the pooled shape, each a position in the input plane."""
    if indices is None:
        return
    _args.index_array(op, "indices", indices, kind)
    _args.check_shape(op, "indices", indices, geom.output_shape, "the pooled shape")
    _data_checks.check_index_range(op, "indices", indices, kind, 0, _prod(geom.in_size), backend)


def _prod(values: tuple[int, ...]) -> int:
    result = 1
    for v in values:
        result *= v
    return result


max_pool1d = _max_pool(
    1,
    """Max pooling over windows of an (N, C, L) input (PyTorch semantics: padding is -inf,
    NaN propagates).  With ``return_indices`` also returns the int64 position (in L) of
    each maximum, as ``(output, indices)``.""",
)
max_pool2d = _max_pool(
    2,
    """Max pooling over windows of an (N, C, H, W) input.  With ``return_indices`` also
    returns the int64 flat position (``h * W + w``) of each maximum.""",
)
avg_pool1d = _avg_pool(
    1,
    """Average pooling of an (N, C, L) input; ``count_include_pad`` counts the zero padding
    in the divisor (PyTorch semantics, ceil_mode windows included).""",
)
avg_pool2d = _avg_pool(2, """Average pooling of an (N, C, H, W) input (PyTorch semantics).""")
max_pool1d_backward = _max_pool_backward(
    1,
    """Gradient of :func:`max_pool1d` with respect to its input.  ``indices`` (from
    ``return_indices=True``) are validated and used when given; otherwise the maxima are
    found again in ``input``.""",
)
max_pool2d_backward = _max_pool_backward(
    2,
    """Gradient of :func:`max_pool2d` with respect to its input (see
    :func:`max_pool1d_backward`).""",
)
avg_pool1d_backward = _avg_pool_backward(
    1, """Gradient of :func:`avg_pool1d` with respect to its input."""
)
avg_pool2d_backward = _avg_pool_backward(
    2, """Gradient of :func:`avg_pool2d` with respect to its input."""
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
    _check_indices(op, indices, kind, geom, backend)
    return resolve(op, kind, backend)(grad_output, input, geom, indices)
