"""Helpers the ``cases_*`` modules share: the build context, random data, and the lists
of implementations (fastnn's backends and the peers) for one op.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.bench.case import REFERENCE, Impl, SkipImpl, fastnn_name
from fastnn.bench.peers import Environment

__all__ = ["Context", "fastnn_impls", "itemsize", "peer_impls", "randn", "reference_impl"]

#: fastnn's GPU backends and the array kind each is timed on.
_GPU_BACKENDS = {"cupy": "cupy", "numba-cuda": "numba"}


@dataclass(frozen=True)
class Context:
    """What a family's case builder needs: the suite, what can run, the dtype, and the
    longest call (estimated, in seconds) of the slow NumPy reference backend that is still
    timed."""

    suite: str
    env: Environment
    dtype: type = np.float32
    reference_max_seconds: float = 5.0


def itemsize(ctx: Context) -> int:
    return np.dtype(ctx.dtype).itemsize


def randn(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float32) -> Any:
    """Standard-normal values of ``dtype`` and ``shape``."""
    return rng.standard_normal(shape).astype(dtype)


FastnnCall = Callable[[Mapping[str, Any], str, "str | None"], Any]


def fastnn_impls(
    ctx: Context,
    op: str,
    call: FastnnCall,
    flops: float,
    algos: tuple[str | None, ...] = (None,),
    reference_gflops: float = 1.0,
) -> list[Impl]:
    """fastnn's implementations of ``op``: the CPU kernel (once per algorithm) when there
    is one, the GPU backends that run here, and the reference backend.

    ``call(arrays, backend, algo)`` runs the op once.  Without a CPU kernel the ``cpu``
    backend would run the reference again, so it is left out (the report says so).  The
    reference, estimated to run at ``reference_gflops``, is skipped when one call would
    take longer than ``ctx.reference_max_seconds``.
    """
    impls = []
    if op in ctx.env.cpu_ops:
        for algo in algos:
            impls.append(Impl(fastnn_name("cpu", algo), _bind(call, "cpu", algo)))
    for backend, device in _GPU_BACKENDS.items():
        if ctx.env.has(fastnn_name(backend)):
            for algo in algos:
                impls.append(Impl(fastnn_name(backend, algo), _bind(call, backend, algo), device))
    impls.append(reference_impl(ctx, _bind(call, "reference", None), flops, reference_gflops))
    return impls


def reference_impl(
    ctx: Context, call: Callable[[Mapping], Any], flops: float, reference_gflops: float = 1.0
) -> Impl:
    """The ``fastnn[reference]`` implementation ``call(arrays)``, or one that skips with
    the reason when a call is estimated to take longer than the suite allows."""
    estimate = flops / (reference_gflops * 1e9)
    if estimate > ctx.reference_max_seconds:
        return Impl(REFERENCE, _too_slow(estimate, ctx.reference_max_seconds))
    return Impl(REFERENCE, call)


def _bind(call: FastnnCall, backend: str, algo: str | None) -> Callable[[Mapping], Any]:
    return lambda arrays: call(arrays, backend, algo)


def _too_slow(estimate: float, limit: float) -> Callable[[Mapping], Any]:
    def skip(arrays: Mapping) -> Any:
        raise SkipImpl(
            f"the reference backend would take about {estimate:.0f} s per call "
            f"(this suite's limit: {limit:g} s)"
        )

    return skip


def peer_impls(
    ctx: Context,
    numpy: Callable[[Mapping], Any] | None = None,
    torch: Callable[[Mapping], Any] | None = None,
    scipy: Callable[[Mapping], Any] | None = None,
    cupy: bool = True,
    jax: Callable[[Mapping], Any] | None = None,
) -> list[Impl]:
    """The peers that run here: ``numpy(arrays)`` (also run on CuPy arrays as the "cupy"
    peer unless ``cupy`` is False), ``torch(arrays)`` (also on the GPU as "torch-cuda"),
    ``scipy(arrays)``, ``jax(arrays)`` (on jax arrays)."""
    env = ctx.env
    impls = []
    if numpy is not None and env.has("numpy"):
        impls.append(Impl("numpy", numpy))
    if scipy is not None and env.has("scipy"):
        impls.append(Impl("scipy", scipy))
    if torch is not None and env.has("torch"):
        impls.append(Impl("torch", torch, "torch"))
    if torch is not None and env.has("torch-cuda"):
        impls.append(Impl("torch-cuda", torch, "torch-cuda"))
    if numpy is not None and cupy and env.has("cupy"):
        impls.append(Impl("cupy", numpy, "cupy"))
    if jax is not None and env.has("jax"):
        impls.append(Impl("jax", jax, "jax"))
    return impls
