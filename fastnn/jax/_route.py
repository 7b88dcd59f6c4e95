"""How a fastnn kernel is reached from a jitted JAX program: the call routes.

Three routes, tried in this order by ``"auto"``:

- ``"ffi"``: XLA calls a C handler (kernels/jax/fastnn_jax_ffi.cc, compiled on first use, see
  :mod:`fastnn.jax._ffi`) that runs fastnn's C kernels with no Python on the call path.  Only
  the ops that handler covers take it; the others fall through to the next route.
- ``"buffer_callback"``: ``jax.experimental.buffer_callback``; the kernels read XLA's input
  buffers in place and their results are copied once into XLA's own output buffers (fastnn's
  ops allocate their outputs, so one copy remains; ``pure_callback`` hands its results back
  through a Python tuple that XLA copies again).
- ``"pure_callback"``: ``jax.pure_callback``, the fallback that every jax has.

On a GPU (jax's default backend "gpu") every op takes ``buffer_callback`` with
:mod:`fastnn.jax._gpu`'s callback: fastnn's CuPy (or numba-cuda) backend on XLA's device
buffers, on XLA's stream, with no host copy; "pure_callback" is refused there.

The route is read when a function is traced; :func:`set_route` clears jax's caches when it
changes the route, so that jitted functions retrace (and recompile) on their next call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from fastnn.jax import _gpu

__all__ = ["ROUTES", "call", "get_route", "has_buffer_callback", "set_route"]

ROUTES = ("auto", "ffi", "buffer_callback", "pure_callback")

try:  # jax >= 0.7 ships it; older versions fall back to pure_callback
    from jax.experimental.buffer_callback import buffer_callback as _buffer_callback
except ImportError:  # pragma: no cover - depends on the installed jax
    _buffer_callback = None


def has_buffer_callback() -> bool:
    """Whether this jax has ``jax.experimental.buffer_callback``."""
    return _buffer_callback is not None


def _check_route(name: object) -> str:
    if not isinstance(name, str) or name not in ROUTES:
        raise ValueError(f"fastnn.jax.set_route: route must be one of {ROUTES}, got {name!r}")
    if name == "buffer_callback" and _buffer_callback is None:
        raise ValueError(
            "fastnn.jax.set_route: route 'buffer_callback' needs "
            f"jax.experimental.buffer_callback, which jax {jax.__version__} lacks"
        )
    return name


_route = _check_route(os.environ.get("FASTNN_JAX_ROUTE", "auto"))


def set_route(name: str) -> None:
    """Pick the route of the functions traced from now on: "auto" (the fastest that can
    run each op), "ffi" (the C handler where it covers the op, else as "auto"),
    "buffer_callback" or "pure_callback".  The environment variable ``FASTNN_JAX_ROUTE``
    sets the starting value.  A change clears jax's caches (``jax.clear_caches()``): every
    jitted function retraces and recompiles on its next call, under the new route."""
    global _route
    name = _check_route(name)
    if name != _route:
        _route = name
        jax.clear_caches()


def get_route() -> str:
    """The route functions traced now take (see :func:`set_route`)."""
    return _route


def _host_arrays(values: Sequence[Any]) -> list[np.ndarray]:
    return [np.asarray(v) for v in values]


def _write_host(host: Callable[..., Sequence[Any]], outs: Sequence[Any], ins: Sequence[Any]):
    """Run ``host`` on XLA's host buffers ``ins`` and copy its results into ``outs``."""
    results = host(*_host_arrays(ins))
    for buf, value in zip(outs, results):
        np.copyto(np.asarray(buf), value, casting="no")


def _call_gpu(host: Callable[..., Sequence[Any]], specs: tuple, args: tuple) -> tuple:
    """The GPU path (:mod:`fastnn.jax._gpu`): buffer_callback on XLA's device buffers."""
    if _route == "pure_callback":
        raise ValueError(
            "fastnn.jax: route 'pure_callback' would copy every operand to the host and back "
            "on a GPU; there fastnn.jax runs by 'buffer_callback' (set_route('auto'))"
        )
    if _buffer_callback is None:
        raise RuntimeError(
            "fastnn.jax on a GPU needs jax.experimental.buffer_callback, which jax "
            f"{jax.__version__} lacks"
        )
    return tuple(_buffer_callback(_gpu.writer(host, _write_host), specs)(*args))


def call(
    host: Callable[..., Sequence[np.ndarray]],
    specs: Sequence[jax.ShapeDtypeStruct],
    *args: Any,
) -> tuple[Any, ...]:
    """Run ``host`` (arrays in, a sequence of arrays out, one per spec: NumPy arrays on the
    CPU, CuPy or Numba device arrays on a GPU) on ``args`` from inside a traced program by
    a callback route; returns one jax array per spec."""
    specs = tuple(specs)
    if _gpu.on_gpu():
        return _call_gpu(host, specs, args)
    if _route != "pure_callback" and _buffer_callback is not None:

        def write(ctx, outs, *ins):
            _write_host(host, outs, ins)

        return tuple(_buffer_callback(write, specs)(*args))

    def run(*ins):
        return tuple(np.asarray(r, dtype=s.dtype) for r, s in zip(host(*_host_arrays(ins)), specs))

    return tuple(jax.pure_callback(run, specs, *args, vmap_method="sequential"))
