"""Argument normalisation and validation for every public op.

Everything a kernel relies on is checked here, once, in Python, before any backend runs:
array kinds and dtypes, shapes, and the integer parameters of convolution and pooling,
which are normalised into :class:`PoolGeometry` (convolutions: fastnn._geometry).  Kernels run
with bounds checking off, so nothing may reach them unchecked.

Errors follow one rule: ``TypeError`` for a wrong type (an int array where floats are
needed, a float stride), ``ValueError`` for a wrong value or shape.  Every message starts
with the op's name and names the argument, the value received and what was expected.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastnn._dispatch import KIND_NAMES, array_kind

__all__ = [
    "ACTIVATIONS",
    "FLOAT_DTYPES",
    "REDUCTIONS",
    "PoolGeometry",
    "activation_name",
    "check_bool",
    "check_dim",
    "check_ndim",
    "check_same_shape",
    "check_scalar",
    "float_arrays",
    "index_array",
    "output_mask",
    "pool_geometry",
    "reduction_name",
]

FLOAT_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
ACTIVATIONS = (None, "relu", "sigmoid", "tanh")
REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------


def _kind_of(op: str, name: str, value: object) -> str:
    kind = array_kind(value)
    if kind is None:
        raise TypeError(
            f"{op}: {name} must be an array (numpy.ndarray, cupy.ndarray or an object with "
            f"__cuda_array_interface__), got {type(value).__name__}"
        )
    return kind


def _float_dtype(op: str, name: str, value: Any) -> np.dtype:
    dtype = value.dtype
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: {name} must be a float32 or float64 array, got dtype {dtype}")
    return dtype


def float_array(op: str, name: str, value: Any) -> str:
    """Check that ``value`` is a float32/float64 array; return its kind.  The fast path for
    single-array ops."""
    kind = array_kind(value)
    if kind is None:
        kind = _kind_of(op, name, value)
    if value.dtype not in FLOAT_DTYPES:
        _float_dtype(op, name, value)
    return kind


def float_arrays(op: str, arrays: dict[str, Any]) -> tuple[str, np.dtype]:
    """Check the named arrays of one call (None entries are skipped): each is an array,
    all live on one device and share one float dtype.  Returns ``(kind, dtype)``."""
    kind = dtype = None
    first = ""
    for name, value in arrays.items():
        if value is None:
            continue
        this_kind = _kind_of(op, name, value)
        this_dtype = _float_dtype(op, name, value)
        if kind is None:
            kind, dtype, first = this_kind, this_dtype, name
            continue
        if _device(this_kind) != _device(kind):
            raise ValueError(
                f"{op}: {first} is a {KIND_NAMES[kind]} but {name} is a "
                f"{KIND_NAMES[this_kind]}; all arrays of one call must be on the same device"
            )
        if this_dtype != dtype:
            raise TypeError(
                f"{op}: {first} and {name} must have the same dtype, got {dtype} and {this_dtype}"
            )
    if kind is None:
        raise TypeError(f"{op}: no array given")
    return kind, dtype


def index_array(op: str, name: str, value: Any, kind: str) -> None:
    """Check that ``value`` is an integer array on the same device as ``kind``."""
    this_kind = _kind_of(op, name, value)
    if _device(this_kind) != _device(kind):
        raise ValueError(
            f"{op}: {name} is a {KIND_NAMES[this_kind]} but the other arrays are "
            f"{KIND_NAMES[kind]}s; all arrays of one call must be on the same device"
        )
    dtype = np.dtype(value.dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer array, got dtype {dtype}")


def _device(kind: str) -> str:
    return "host" if kind == "numpy" else "cuda"


def check_ndim(op: str, name: str, value: Any, ndim: int | tuple[int, ...], layout: str) -> None:
    """Raise ValueError unless ``value.ndim`` is ``ndim`` (or one of them)."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if len(value.shape) not in allowed:
        want = " or ".join(f"{n}-d" for n in allowed)
        raise ValueError(f"{op}: {name} must be {want} {layout}, got shape {tuple(value.shape)}")


def check_same_shape(op: str, first: str, a: Any, second: str, b: Any) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{op}: {first} and {second} must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def check_shape(op: str, name: str, value: Any, expected: tuple[int, ...], why: str) -> None:
    """Raise ValueError unless ``value.shape == expected``."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{op}: {name} must have shape {tuple(expected)} ({why}), got {tuple(value.shape)}"
        )


# ---------------------------------------------------------------------------------------
# Scalars and names
# ---------------------------------------------------------------------------------------


def _int(op: str, name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    try:
        return operator.index(value)  # int and numpy integers; not float
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r}") from None


def int_tuple(op: str, name: str, value: object, nd: int, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a length-``nd`` sequence of ints, each >= ``minimum``."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}")
    if isinstance(value, Sequence) or (isinstance(value, np.ndarray) and value.ndim == 1):
        items = tuple(value)
        if len(items) == 1 and nd > 1:
            items = items * nd
        if len(items) != nd:
            raise ValueError(
                f"{op}: {name} must be an int or a tuple of {nd} ints, got {tuple(value)!r}"
            )
        result = tuple(_int(op, name, v) for v in items)
    else:
        result = (_int(op, name, value),) * nd
    if any(v < minimum for v in result):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return result


def check_bool(op: str, name: str, value: object) -> bool:
    """A bool (numpy bools too); anything else is a TypeError."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{op}: {name} must be a bool, got {value!r}")


def check_scalar(op: str, name: str, value: object) -> float:
    """A real number (int, float or numpy real scalar); not a bool, not complex."""
    if type(value) is float or type(value) is int:  # the common case, without ABC checks
        return float(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def activation_name(op: str, value: object, allowed: tuple = ACTIVATIONS) -> str | None:
    """One of the activation names (None means the identity)."""
    if value is None or (isinstance(value, str) and value in allowed):
        return value
    raise ValueError(f"{op}: activation must be one of {allowed}, got {value!r}")


def reduction_name(op: str, value: object) -> str:
    """ "mean", "sum" or "none"."""
    if isinstance(value, str) and value in REDUCTIONS:
        return value
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {value!r}")


def check_dim(op: str, dim: object, ndim: int) -> int:
    """Normalise ``dim`` (negative counts from the end) to ``0 <= dim < max(ndim, 1)``."""
    d = _int(op, "dim", dim)
    rank = max(ndim, 1)
    if not -rank <= d < rank:
        raise ValueError(
            f"{op}: dim must be in [{-rank}, {rank - 1}] for a {ndim}-d input, got {d}"
        )
    return d % rank


def output_mask(op: str, value: object) -> tuple[bool, bool, bool]:
    """A sequence of three bools: which of (grad_input, grad_weight, grad_bias) to compute."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{op}: output_mask must be a tuple of 3 bools, got {value!r}")
    items = tuple(value)
    if len(items) != 3:
        raise ValueError(f"{op}: output_mask must be a tuple of 3 bools, got {items!r}")
    return tuple(check_bool(op, "output_mask", v) for v in items)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------
# Pooling geometry
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolGeometry:
    """Validated pooling parameters.  Spatial tuples have 1 (L) or 2 (H, W) entries; the
    padding is symmetric (``pad`` on both sides); ``dilation`` is 1 for average pooling."""

    batch: int
    channels: int
    in_size: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]
    ceil_mode: bool
    out_size: tuple[int, ...]
    #: (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw): the 2-D view the CPU kernels take,
    #: a 1-D problem as one row (H = Ho = kh = sh = dh = 1, ph = 0); set once, at creation.
    plane: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.in_size, self.out_size, self.kernel, self.stride, self.pad,
                  self.dilation)  # fmt: skip
        if len(self.in_size) == 1:
            fields = tuple((one, *f) for one, f in zip((1, 1, 1, 1, 0, 1), fields))
        (h, w), (ho, wo), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = fields
        object.__setattr__(self, "plane", (h, w, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw))

    @property
    def nd(self) -> int:
        return len(self.in_size)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.in_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.channels, *self.out_size)


def pool_output_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size (``ceil_mode`` drops a window that starts in the
    right padding)."""
    numerator = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _padding_only_window(size: int, k: int, s: int, p: int, d: int, out: int) -> int | None:
    """The first of the ``out`` windows whose ``k`` taps (``start + j * d``) all miss the
    input ``[0, size)``, or None.  Only windows that start in the left padding can miss:
    every window starts before ``size`` (the output-size rule guarantees it)."""
    o = 0
    while o < out and o * s - p < 0:
        start = o * s - p
        first_real = -(start // d)  # ceil(-start / d): the first tap at or after 0
        if first_real >= k or start + first_real * d >= size:
            return o
        o += 1
    return None


def _pool_geometry(
    op: str,
    nd: int,
    input_shape: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil_mode: object,
) -> PoolGeometry:
    """Validate the parameters of a {max,avg}_pool{nd}d call and compute its geometry."""
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    if len(input_shape) != nd + 2:
        raise ValueError(
            f"{op}: input must be {nd + 2}-d {layout} (batched), got shape {tuple(input_shape)}"
        )
    batch, channels, *in_size = input_shape
    kernel = int_tuple(op, "kernel_size", kernel_size, nd, 1)
    if stride is None or (isinstance(stride, Sequence) and len(stride) == 0):
        stride_t = kernel
    else:
        stride_t = int_tuple(op, "stride", stride, nd, 1)
    pad = int_tuple(op, "padding", padding, nd, 0)
    dilation_t = int_tuple(op, "dilation", dilation, nd, 1)
    ceil = check_bool(op, "ceil_mode", ceil_mode)
    if channels < 1 or any(s < 1 for s in in_size):
        raise ValueError(
            f"{op}: input must have non-zero channels and spatial size (only the batch may be "
            f"empty), got shape {tuple(input_shape)}"
        )
    for k, p in zip(kernel, pad):
        if p > k // 2:
            raise ValueError(
                f"{op}: padding must be at most half of kernel_size (as in PyTorch), got "
                f"padding={pad} and kernel_size={kernel}"
            )
    out_size = tuple(
        pool_output_size(i, k, s, p, d, ceil)
        for i, k, s, p, d in zip(in_size, kernel, stride_t, pad, dilation_t)
    )
    if any(o < 1 for o in out_size):
        raise ValueError(
            f"{op}: input spatial size {tuple(in_size)} is too small for kernel_size={kernel}, "
            f"padding={pad} and dilation={dilation_t}: the output size would be {out_size}"
        )
    axes = zip(in_size, kernel, stride_t, pad, dilation_t, out_size)
    for axis, (i, k, s, p, d, o) in enumerate(axes):
        empty = _padding_only_window(i, k, s, p, d, o)
        if empty is not None:
            raise ValueError(
                f"{op}: window {empty} along spatial axis {axis} reads only padding (input "
                f"size {tuple(in_size)}, kernel_size={kernel}, stride={stride_t}, "
                f"padding={pad}, dilation={dilation_t}): its dilated taps skip every input "
                f"element, so it has no maximum (PyTorch returns -inf and an out-of-range index)"
            )
    return PoolGeometry(
        batch=batch,
        channels=channels,
        in_size=tuple(in_size),
        kernel=kernel,
        stride=stride_t,
        pad=pad,
        dilation=dilation_t,
        ceil_mode=ceil,
        out_size=out_size,
    )


# ---------------------------------------------------------------------------------------
# Checks that read the data (index ranges, probabilities)
# ---------------------------------------------------------------------------------------


def value_range(x: Any, kind: str, backend: str | None) -> tuple[float, float] | None:
    """``(min, max)`` of ``x`` (NaN if it holds a NaN), or None when ``x`` is empty.  Runs
    the backend's ``_value_range`` op, so GPU arrays are checked on the GPU."""
    from fastnn._dispatch import resolve

    if _size(x) == 0:
        return None
    return resolve("_value_range", kind, backend)(x)


def check_index_range(
    op: str, name: str, x: Any, kind: str, low: int, high: int, backend: str | None
) -> None:
    """Raise ValueError unless every entry of the integer array ``x`` is in [low, high)."""
    bounds = value_range(x, kind, backend)
    if bounds is not None and not (bounds[0] >= low and bounds[1] < high):
        raise ValueError(
            f"{op}: every entry of {name} must be in [{low}, {high}), got values in "
            f"[{bounds[0]}, {bounds[1]}]"
        )


def check_probabilities(op: str, name: str, x: Any, kind: str, backend: str | None) -> None:
    """Raise ValueError unless every entry of ``x`` is in [0, 1] (NaN is not)."""
    bounds = value_range(x, kind, backend)
    if bounds is not None and not (bounds[0] >= 0.0 and bounds[1] <= 1.0):
        raise ValueError(
            f"{op}: every entry of {name} must be in [0, 1], got values in "
            f"[{bounds[0]}, {bounds[1]}]"
        )


def _size(x: Any) -> int:
    return math.prod(x.shape)


# ---------------------------------------------------------------------------------------
# Memoised geometry: a training loop calls the same layer with the same parameters over
# and over, and validating them costs ~10 us of Python.  Only calls whose parameters are
# plain ints, strs, bools, None or tuples of ints are memoised, keyed with their types so
# that True never stands in for 1; anything else (lists, numpy ints) is validated afresh.
# Geometries are frozen, so sharing one is safe; errors are never cached.
# ---------------------------------------------------------------------------------------

_MEMO_LIMIT = 4096
_pool_memo: dict[tuple, PoolGeometry] = {}
_SCALARS = frozenset({int, str, bool, type(None)})


def _memo_key(args: tuple) -> tuple | None:
    """``(args, their types)``, or None when an argument is not a plain scalar or a tuple
    of exact ints (the types keep True from standing in for 1 at the top level; inside a
    tuple only exact ints are accepted)."""
    kinds = tuple(map(type, args))
    for value, kind in zip(args, kinds):
        if kind is tuple:
            for v in value:
                if type(v) is not int:
                    return None
        elif kind not in _SCALARS:
            return None
    return (args, kinds)


def _memoised(memo: dict, build, args: tuple):
    key = _memo_key(args)
    if key is None:
        return build(*args)
    geometry = memo.get(key)
    if geometry is None:
        geometry = build(*args)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = geometry
    return geometry


def pool_geometry(
    op: str,
    nd: int,
    input_shape: tuple[int, ...],
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    ceil_mode: object,
) -> PoolGeometry:
    """Validate the parameters of a {max,avg}_pool{nd}d call and compute its geometry
    (memoised for repeated plain-int parameters)."""
    args = (op, nd, input_shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _memoised(_pool_memo, _pool_geometry, args)
