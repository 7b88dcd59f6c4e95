"""Which implementations can run here: the peer libraries and fastnn's own backends.

:func:`detect` looks once and returns an :class:`Environment`; case builders ask it
``env.has("torch")`` before adding a torch implementation, and the report prints every
peer that was skipped and why.  Tests build an Environment by hand to pretend a peer is
missing.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from dataclasses import dataclass, field

__all__ = ["PEERS", "Environment", "detect", "set_threads"]

#: The peer libraries, in the order the report lists them.
PEERS = ("numpy", "scipy", "torch", "torch-cuda", "cupy", "jax")


@dataclass(frozen=True)
class Environment:
    """What can run: ``available[name] = (ok, detail or reason)`` for every peer and every
    fastnn backend (``"fastnn[cpu]"``...), and the ops that have a CPU kernel (an op
    without one falls back to the reference backend, so ``fastnn[cpu]`` is left out)."""

    available: dict[str, tuple[bool, str]]
    cpu_ops: frozenset[str] = field(default_factory=frozenset)

    def has(self, name: str) -> bool:
        """True when the peer or backend ``name`` can run here."""
        return self.available.get(name, (False, ""))[0]

    def skipped(self) -> dict[str, str]:
        """``{name: reason}`` for everything that cannot run here."""
        return {name: why for name, (ok, why) in self.available.items() if not ok}


def _numpy() -> tuple[bool, str]:
    import numpy as np

    return True, f"NumPy {np.__version__}, BLAS {_blas_name()}"


def _blas_name() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    names = {
        f"{p.get('internal_api')} {p.get('version')}"
        for p in threadpool_info()
        if p.get("user_api") == "blas"
    }
    return " + ".join(sorted(names)) or "unknown"


def _scipy() -> tuple[bool, str]:
    try:
        import scipy
    except ImportError as exc:
        return False, f"scipy is not installed ({exc})"
    return True, f"SciPy {scipy.__version__} (signal.oaconvolve, linalg.blas)"


def _torch() -> tuple[bool, str]:
    if importlib.util.find_spec("torch") is None:
        return False, "torch is not installed (pip install 'fastnn[torch]')"
    try:
        import torch
    except Exception as exc:  # a broken install
        return False, f"torch does not import: {exc}"
    onednn = "oneDNN" if torch.backends.mkldnn.is_available() else "no oneDNN"
    return True, f"PyTorch {torch.__version__} CPU ({onednn})"


def _torch_cuda() -> tuple[bool, str]:
    ok, why = _torch()
    if not ok:
        return ok, why
    import torch

    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return True, f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()} (cuDNN {cudnn})"


def _cupy() -> tuple[bool, str]:
    if importlib.util.find_spec("cupy") is None:
        return False, "cupy is not installed (pip install 'fastnn[cuda]')"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, no device
        return False, f"cupy cannot use a GPU: {exc}"
    if count < 1:
        return False, "cupy sees no CUDA device"
    return True, f"CuPy {cupy.__version__} (cuBLAS), {count} device(s)"


def _jax() -> tuple[bool, str]:
    if importlib.util.find_spec("jax") is None:
        return False, "jax is not installed (pip install 'fastnn[jax]')"
    try:
        import jax

        backend = jax.default_backend()
    except Exception as exc:  # a broken install
        return False, f"jax does not import: {exc}"
    return True, f"JAX {jax.__version__} (XLA {backend.upper()}, jitted)"


_PROBES = {
    "numpy": _numpy,
    "scipy": _scipy,
    "torch": _torch,
    "torch-cuda": _torch_cuda,
    "cupy": _cupy,
    "jax": _jax,
}


def _cpu_ops() -> frozenset[str]:
    from fastnn._dispatch import registered

    return frozenset(op for op, backends in registered().items() if "cpu" in backends)


@functools.cache
def detect() -> Environment:
    """Probe every peer library and fastnn backend (imports torch and cupy when present).
    The answer is cached: the libraries a process can use do not change."""
    import fastnn
    from fastnn.bench.case import fastnn_name

    available: dict[str, tuple[bool, str]] = {}
    for name in PEERS:
        try:
            available[name] = _PROBES[name]()
        except Exception as exc:  # a peer must never stop the benchmark
            available[name] = (False, f"{type(exc).__name__}: {exc}")
    for backend, status in fastnn.backends().items():
        available[fastnn_name(backend)] = status
    try:
        cpu_ops = _cpu_ops()
    except Exception as exc:  # a kernel module that fails to import
        cpu_ops = frozenset()
        why = f"loading the CPU kernels failed: {type(exc).__name__}: {exc}"
        available[fastnn_name("cpu")] = (False, why)
    return Environment(available, cpu_ops)


def set_threads(n: int, env: Environment) -> dict[str, int | None]:
    """Give fastnn, PyTorch and every BLAS the same ``n`` threads; return what each
    library reports afterwards (printed by ``fastnn bench``)."""
    import fastnn

    fastnn.set_num_threads(n)
    counts: dict[str, int | None] = {"fastnn": fastnn.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(limits=n, user_api="blas")
        blas = {p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"}
        counts["blas"] = blas.pop() if len(blas) == 1 else None
    except Exception:  # threadpoolctl cannot control this BLAS
        counts["blas"] = None
    if env.has("torch"):
        import torch

        torch.set_num_threads(n)
        counts["torch"] = torch.get_num_threads()
    return counts
