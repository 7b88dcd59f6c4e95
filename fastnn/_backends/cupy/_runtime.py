"""What every op module of the ``cupy`` backend shares: compiled modules (cached), kernel
launches, scalars of the right C type, and the conversion of the caller's arrays.

Arrays: an op receives cupy arrays, Numba device arrays or any other object with
``__cuda_array_interface__``.  :func:`cupy_arrays` wraps each implementation so that it sees
cupy arrays only (``cupy.asarray`` wraps the others without a copy) and gives back the
caller's kind: Numba device arrays for Numba input (``numba.cuda.as_cuda_array``, zero
copy), cupy arrays otherwise (a cupy array has ``__cuda_array_interface__`` itself).
Kernels launch on CuPy's current stream.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import cupy
import numpy as np

from fastnn._backends.cupy import _sources
from fastnn._dispatch import array_kind

__all__ = [
    "MAX_BLOCKS",
    "contiguous",
    "cupy_arrays",
    "f64",
    "i32",
    "i64",
    "kernel",
    "launch_1d",
    "launch_rows",
    "run_rows",
    "scalar",
]

#: NVRTC options.  CuPy adds -arch for the current device and -ftz=true itself.
COMPILE_OPTIONS = ("--std=c++17",)

#: Upper bound of a 1-D grid: grid-stride loops cover the rest (and the grid stays far
#: below CUDA's limit of 2^31 - 1 blocks).
MAX_BLOCKS = 65535 * 4


# ---------------------------------------------------------------------------------------
# Modules and launches
# ---------------------------------------------------------------------------------------


@functools.cache
def _module(file: str, c_type: str, device: int) -> Any:
    """``file`` compiled for one element type on one device, compiled once per process
    (CuPy also keeps compiled binaries in its on-disk cache)."""
    del device  # part of the cache key only: a module is loaded per device
    return cupy.RawModule(
        code=_sources.source_text(file),
        options=COMPILE_OPTIONS,
        name_expressions=_sources.expressions(file, c_type),
    )


def kernel(file: str, name: str, dtype: Any, *extra: object) -> Any:
    """The kernel ``name<ctype(dtype), extra...>`` of ``file`` on the current device."""
    if extra not in _sources.KERNELS[file][name]:
        raise KeyError(f"{file} has no instantiation {name}<{dtype}, {extra}> (see _sources.py)")
    c_type = _sources.ctype(dtype)
    module = _module(file, c_type, cupy.cuda.Device().id)
    return module.get_function(_sources.expression(name, c_type, *extra))


def blocks_for(count: int, threads: int = _sources.THREADS) -> int:
    """Blocks of ``threads`` to cover ``count`` items once (at most MAX_BLOCKS)."""
    return max(1, min(MAX_BLOCKS, math.ceil(count / threads)))


def launch_1d(kern: Any, count: int, args: tuple) -> None:
    """Launch a grid-stride kernel over ``count`` items; nothing when ``count`` is 0."""
    if count > 0:
        kern((blocks_for(count),), (_sources.THREADS,), args)


def row_threads(length: int) -> int:
    """Threads per block of a row kernel for rows of ``length`` elements."""
    small, large = _sources.ROW_THREADS
    return small if length <= 4 * small else large


def launch_rows(kern: Any, rows: int, threads: int, args: tuple) -> None:
    """Launch a row kernel (one block per row, grid-stride over rows)."""
    if rows > 0:
        kern((max(1, min(rows, MAX_BLOCKS)),), (threads,), args)


def run_rows(
    file: str, name: str, dtype: Any, extra: tuple, rows: int, length: int, args: tuple
) -> None:
    """Launch the row kernel ``name<ctype(dtype), *extra, threads>`` of ``file`` over
    ``rows`` rows of ``length`` elements, with the block size :func:`row_threads` picks
    (the kernel's last template argument)."""
    threads = row_threads(length)
    launch_rows(kernel(file, name, dtype, *extra, threads), rows, threads, args)


# ---------------------------------------------------------------------------------------
# Scalars and arrays
# ---------------------------------------------------------------------------------------


def scalar(dtype: Any, value: float) -> np.floating:
    """``value`` as the kernel's element type (np.float32 or np.float64): CuPy passes a
    Python float as a double, which a float parameter would misread."""
    return np.dtype(dtype).type(value)


def i32(value: int) -> np.int32:
    """A C ``int`` kernel argument."""
    return np.int32(value)


def i64(value: int) -> np.int64:
    """A C ``long long`` kernel argument (element counts, flat indices)."""
    return np.int64(value)


def f64(value: float) -> np.float64:
    """A C ``double`` kernel argument."""
    return np.float64(value)


def contiguous(x: Any, dtype: Any = None) -> Any:
    """``x`` as a C-contiguous cupy array (no copy when it already is one)."""
    return cupy.ascontiguousarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------
# The caller's arrays in, the same kind out
# ---------------------------------------------------------------------------------------


def _to_cupy(value: Any) -> Any:
    if isinstance(value, cupy.ndarray):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cupy(v) for v in value)
    if array_kind(value) in ("numba", "cuda"):
        return cupy.asarray(value)  # zero-copy through __cuda_array_interface__
    return value  # geometry, names, flags, numbers


def _first_kind(values: tuple) -> str | None:
    for value in values:
        if isinstance(value, (list, tuple)):
            kind = _first_kind(tuple(value))
        else:
            kind = array_kind(value)
        if kind is not None:
            return kind
    return None


def _numba_view(array: Any) -> Any:
    """A Numba device array on the memory of the cupy array ``array`` (no copy)."""
    from numba import cuda

    return cuda.as_cuda_array(array)


def to_numba(result: Any) -> Any:
    """Every cupy array in ``result`` (an array, or nested tuples/lists) as a Numba device
    array on the same memory."""
    if isinstance(result, cupy.ndarray):
        return _numba_view(result)
    if isinstance(result, (list, tuple)):
        return type(result)(to_numba(r) for r in result)
    return result


def cupy_arrays(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an op implementation so that it is called with cupy arrays and returns arrays
    of the caller's kind.  Register the result with ``fastnn._dispatch.register``."""

    @functools.wraps(func)
    def run(*args: Any) -> Any:
        result = func(*(_to_cupy(a) for a in args))
        return to_numba(result) if _first_kind(args) == "numba" else result

    return run
