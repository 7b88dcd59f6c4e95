"""The GPU call path of fastnn.jax: fastnn's CUDA backends on XLA's own device buffers.

When a function is traced for a GPU (jax's default backend is "gpu"), :func:`fastnn.jax.
_route.call` takes ``jax.experimental.buffer_callback`` whatever the route says ("auto",
"ffi" and "buffer_callback" alike; the C handler is CPU only), and the callback is
:func:`writer`'s:

- XLA's operand and result buffers are wrapped as CuPy arrays through their
  ``__cuda_array_interface__``, with no copy;
- the op runs on backend "cupy" with ``cupy.cuda.ExternalStream(ctx.stream)``, XLA's own
  stream, as CuPy's current stream (fastnn's CuPy and numba-cuda kernels launch on it), on
  the device that holds the buffers;
- each result is copied device to device into its XLA result buffer on that stream (fastnn's
  ops allocate their results; none takes ``out=`` for every op the bridge runs).

Nothing goes through host memory and nothing waits for the GPU: XLA orders the callback's
work with its own by the stream.  Without CuPy the op runs on backend "numba-cuda", whose
kernels launch on the default stream for Numba arrays: that path waits for XLA's stream
before the op and for the default stream after the copies (correct, but it stalls).

``"pure_callback"`` on a GPU would copy every operand to the host and every result back;
it is refused with a ValueError at trace time.  A program traced while the default backend
is a GPU but lowered for the CPU (operands committed to a CPU device) hands the callback
host buffers; the writer sees that and runs the CPU path instead.

CUDA only: CuPy's ROCm build refuses ``__cuda_array_interface__``, and jaxlib 0.10.2's
callback buffers give DLPack without ``__dlpack_device__``.  Untested on real hardware so
far (no GPU was lent): tests/jax_bridge/test_jax_gpu_route.py drives this path with
buffers that expose ``__cuda_array_interface__`` over host memory and the CuPy emulator of
tests/gpu; its ``test_real_gpu_smoke`` runs the bridge where jax has a GPU and CuPy is
installed (``pytest tests/jax_bridge/test_jax_gpu_route.py -k real_gpu``).
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax

import fastnn

__all__ = ["GPU_PLATFORMS", "device_backend", "is_device_buffer", "on_gpu", "platform", "writer"]

#: The names jax gives a GPU backend (``jax.default_backend()``) or lowering platform.
GPU_PLATFORMS = frozenset({"gpu", "cuda", "rocm"})

#: The fastnn backends that run on XLA's GPU buffers, in the order they are tried.
DEVICE_BACKENDS = ("cupy", "numba-cuda")

Host = Callable[..., Sequence[Any]]


def platform() -> str:
    """The platform functions traced now run on: jax's default backend ("cpu", "gpu",
    "tpu", ...)."""
    return jax.default_backend()


def on_gpu() -> bool:
    """Whether functions traced now run on a GPU (then only the GPU path may run them)."""
    return platform() in GPU_PLATFORMS


def device_backend() -> str:
    """The fastnn backend that runs the ops on XLA's GPU buffers: "cupy", else
    "numba-cuda"; RuntimeError when neither can run here."""
    status = fastnn.backends()
    for name in DEVICE_BACKENDS:
        if status[name][0]:
            return name
    reasons = "; ".join(f"{name}: {status[name][1]}" for name in DEVICE_BACKENDS)
    raise RuntimeError(f"fastnn.jax on a GPU needs the cupy or numba-cuda backend ({reasons})")


def is_device_buffer(buf: Any) -> bool:
    """Whether an XLA callback buffer lives in GPU memory (its ``__cuda_array_interface__``
    raises on the CPU, with jax's own error type rather than AttributeError)."""
    try:
        buf.__cuda_array_interface__  # noqa: B018 - the property access is the test
    except Exception:
        return False
    return True


def writer(host: Host, host_write: Callable[[Host, Sequence[Any], Sequence[Any]], None]):
    """The ``buffer_callback`` callback that runs ``host`` on XLA's GPU buffers (see the
    module docstring); ``host_write(host, outs, ins)`` runs it on host buffers."""

    def write(ctx: Any, outs: Sequence[Any], *ins: Any) -> None:
        if not is_device_buffer(outs[0]):  # lowered for the CPU after all
            host_write(host, outs, ins)
            return
        backend = device_backend()
        run = _run_cupy if backend == "cupy" else _run_numba
        with fastnn.use_backend(backend):
            run(host, int(ctx.stream), outs, ins)

    return write


def _check_result(buf: Any, result: Any) -> None:
    """The result a host function gave has its XLA buffer's shape and dtype."""
    if tuple(result.shape) != tuple(buf.shape) or result.dtype != buf.dtype:
        raise RuntimeError(
            f"fastnn.jax: a kernel returned {result.dtype}{tuple(result.shape)} for an "
            f"XLA buffer of {buf.dtype}{tuple(buf.shape)}"
        )


def _pointer(buffers: Sequence[Any]) -> int | None:
    """The data pointer of the first non-empty buffer (an empty one may have none)."""
    for buf in buffers:
        if math.prod(buf.shape):
            return int(buf.__cuda_array_interface__["data"][0])
    return None


@contextlib.contextmanager
def _cupy_on(cupy: Any, pointer: int | None, stream: int) -> Iterator[None]:
    """CuPy's current device: the one holding ``pointer`` (the current one for None); its
    current stream: XLA's."""
    device = contextlib.nullcontext()
    if pointer is not None:
        device = cupy.cuda.Device(cupy.cuda.runtime.pointerGetAttributes(pointer).device)
    with device, cupy.cuda.ExternalStream(stream):
        yield


def _run_cupy(host: Host, stream: int, outs: Sequence[Any], ins: Sequence[Any]) -> None:
    cupy = importlib.import_module("cupy")
    with _cupy_on(cupy, _pointer([*outs, *ins]), stream):
        targets = [cupy.asarray(b) for b in outs]  # views of XLA's memory, no copy
        results = host(*(cupy.asarray(b) for b in ins))
        for target, result in zip(targets, results, strict=True):
            _check_result(target, result)
            target[...] = result  # device to device, on XLA's stream


def _run_numba(host: Host, stream: int, outs: Sequence[Any], ins: Sequence[Any]) -> None:
    cuda = importlib.import_module("numba.cuda")
    cuda.external_stream(stream).synchronize()  # XLA has written the operands
    results = host(*(cuda.as_cuda_array(b, sync=False) for b in ins))
    for buf, result in zip(outs, results, strict=True):
        target = cuda.as_cuda_array(buf, sync=False)
        _check_result(target, result)
        target.copy_to_device(result)  # device to device, default stream
    cuda.default_stream().synchronize()  # done before XLA's stream reads the results
