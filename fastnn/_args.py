"""Argument normalisation and validation for every public op.

Everything a kernel relies on is checked here, once, in Python, before any backend runs:
array kinds and dtypes, shapes, and the integer parameters of convolution and pooling,
which fastnn._geometry turns into the frozen geometries that backends read.  Kernels run with
bounds checking off, so nothing may reach them unchecked.  Checks that read the data (index
ranges, probabilities) live in fastnn/ops/_data_checks.py.

Errors follow one rule: ``TypeError`` for a wrong type (an int array where floats are
needed, a float stride), ``ValueError`` for a wrong value or shape.  Every message starts
with the op's name and names the argument, the value received and what was expected.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastnn._kinds import KIND_NAMES, array_kind

__all__ = [
    "ACTIVATIONS",
    "FLOAT_DTYPES",
    "REDUCTIONS",
    "activation_name",
    "check_bool",
    "check_dim",
    "check_ndim",
    "check_same_shape",
    "check_scalar",
    "float_arrays",
    "index_array",
    "output_mask",
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


def float_arrays(
    op: str, arrays: dict[str, Any], optional: tuple[str, ...] = ()
) -> tuple[str, np.dtype]:
    """Check the named arrays of one call: each is an array, all live on one device and
    share one float dtype.  Returns ``(kind, dtype)``.  Only the names in ``optional`` may
    be None (skipped); None for any other is a TypeError naming the argument."""
    # fast path: NumPy arrays of one float dtype (the common CPU call; ~0.2 us)
    dtype = None
    for value in arrays.values():
        if type(value) is not np.ndarray or (dtype is not None and value.dtype != dtype):
            break
        dtype = value.dtype
    else:
        if dtype in FLOAT_DTYPES:
            return "numpy", dtype
    kind = dtype = None
    first = ""
    for name, value in arrays.items():
        if value is None:
            if name not in optional:
                _kind_of(op, name, value)  # raises: None where an array is required
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
    if type(value) is tuple and len(value) == 3:  # fast path: a tuple of three Python bools
        a, b, c = value
        if (a is True or a is False) and (b is True or b is False) and (c is True or c is False):
            return value
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{op}: output_mask must be a tuple of 3 bools, got {value!r}")
    items = tuple(value)
    if len(items) != 3:
        raise ValueError(f"{op}: output_mask must be a tuple of 3 bools, got {items!r}")
    return tuple(check_bool(op, "output_mask", v) for v in items)  # type: ignore[return-value]
