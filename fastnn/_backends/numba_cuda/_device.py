"""Arrays in and out of the numba-cuda backend: one wrapper, :func:`device_arrays`.

Every op implementation of this backend is wrapped by :func:`device_arrays` and
registered with ``fastnn._dispatch.register``.  Before the implementation runs, each
array argument (lists of arrays included) becomes a C-contiguous Numba device array:

- Numba device arrays are taken as they are; CuPy arrays and other
  ``__cuda_array_interface__`` objects are wrapped with ``cuda.as_cuda_array``, zero-copy.
- A non-contiguous array (any strides, negative too) is copied on the device by one
  kernel (kernels/numba_cuda/layout.py; CuPy arrays by ``cupy.ascontiguousarray``); the
  caller's array is never written.

While it runs, :func:`stream` is the stream to launch on and allocate with: CuPy's
current stream when the call brought CuPy arrays (so fastnn's work is ordered with the
caller's), otherwise the default stream.  Its results go back as the kind the caller gave:
CuPy arrays (zero-copy, ``cupy.asarray``) for CuPy inputs, Numba device arrays otherwise.
CuPy is only imported when the caller's arrays already are CuPy arrays.
"""

from __future__ import annotations

import contextvars
import functools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

from fastnn._backends.numba_cuda import _launch
from fastnn._dispatch import array_kind
from fastnn.kernels.numba_cuda import layout as _layout

__all__ = ["contiguous", "device_arrays", "empty", "launch", "stream", "to_host", "zeros"]

_STREAM: contextvars.ContextVar[Any] = contextvars.ContextVar("fastnn_numba_stream", default=0)


def stream() -> Any:
    """The stream of the running op (0: the default stream)."""
    return _STREAM.get()


def empty(shape: tuple[int, ...] | int, dtype: Any) -> Any:
    """A new uninitialised C-contiguous device array on the op's stream."""
    return cuda.device_array(shape, dtype=np.dtype(dtype), stream=stream())


def zeros(shape: tuple[int, ...] | int, dtype: Any) -> Any:
    """A new zero-filled device array (an empty result of a sum over nothing)."""
    host = np.zeros(shape, dtype=np.dtype(dtype))
    return cuda.to_device(host, stream=stream())


def to_host(x: Any) -> np.ndarray:
    """``x`` copied to a numpy array, once the op's stream has finished writing it."""
    s = stream()
    host = x.copy_to_host(stream=s)
    if s != 0:
        s.synchronize()
    return host


def launch(kernel: Any, blocks: Any, threads: Any, *args: Any) -> None:
    """``kernel[blocks, threads, stream()](*args)``, or nothing at all when the grid or the
    block is empty (a zero-size problem)."""
    if _empty(blocks) or _empty(threads):
        return
    kernel[blocks, threads, stream()](*args)


def _empty(size: Any) -> bool:
    if isinstance(size, tuple):
        return any(s <= 0 for s in size)
    return size <= 0


def contiguous(x: Any) -> Any:
    """``x`` if it is C-contiguous, else a C-contiguous copy made on the device."""
    if x.is_c_contiguous():
        return x
    out = empty(x.shape, x.dtype)
    _copy_into(x, out)
    return out


def _copy_into(src: Any, dst: Any) -> None:
    if src.ndim > 4:  # one launch per leading index: rare ranks, views of rank 4 each
        for i in range(src.shape[0]):
            _copy_into(src[i], dst[i])
        return
    blocks, threads = _launch.elementwise(dst.size, _layout.THREADS)
    launch(_layout.COPY[src.ndim], blocks, threads, src, dst)


# ---------------------------------------------------------------------------------------
# The wrapper
# ---------------------------------------------------------------------------------------


def device_arrays(impl: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an op implementation so that it sees C-contiguous Numba device arrays, runs
    on the caller's stream and returns the caller's kind of array (see the module
    docstring).  Register the result with ``fastnn._dispatch.register``."""

    @functools.wraps(impl)
    def run(*args: Any) -> Any:
        kind = _first_kind(args)
        token = _STREAM.set(_stream_for(kind))
        try:
            result = impl(*(_as_input(a) for a in args))
            return _as_output(result, kind)
        finally:
            _STREAM.reset(token)

    return run


def _first_kind(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, (list, tuple)):
            for item in a:
                kind = _kind(item)
                if kind is not None:
                    return kind
        kind = _kind(a)
        if kind is not None:
            return kind
    return "numba"


def _kind(value: Any) -> str | None:
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    return array_kind(value)


def _stream_for(kind: str) -> Any:
    if kind != "cupy":
        return 0
    cupy = sys.modules["cupy"]  # the caller's arrays are CuPy arrays: it is imported
    return _external_stream(cupy.cuda.get_current_stream().ptr)


@functools.lru_cache(maxsize=16)
def _external_stream(ptr: int) -> Any:
    return cuda.default_stream() if ptr == 0 else cuda.external_stream(ptr)


def _as_input(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_input(v) for v in value]
    kind = _kind(value)
    if kind is None or kind == "numpy":
        return value
    if kind == "cupy":  # CuPy copies a strided array itself, on its current stream
        value = sys.modules["cupy"].ascontiguousarray(value)
    if kind != "numba":
        value = _wrap_foreign(value)
    return contiguous(value)


def _wrap_foreign(value: Any) -> Any:
    as_cuda_array = getattr(cuda, "as_cuda_array", None)
    if as_cuda_array is None:  # the CUDA simulator has no __cuda_array_interface__ import
        raise TypeError(
            "the numba-cuda backend under the CUDA simulator takes Numba device arrays "
            f"only, got {type(value).__name__}"
        )
    # The caller orders its work on the stream we launch on (CuPy's current stream), so
    # numba need not synchronise on the exporter's stream.
    return as_cuda_array(value, sync=False)


def _as_output(value: Any, kind: str) -> Any:
    if isinstance(value, tuple):
        return tuple(_as_output(v, kind) for v in value)
    if isinstance(value, list):
        return [_as_output(v, kind) for v in value]
    if kind == "cupy" and _kind(value) == "numba":
        return sys.modules["cupy"].asarray(value)
    return value
