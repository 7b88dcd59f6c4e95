"""The little array math the training toolkit needs beyond fastnn's ops.

Layers run their heavy work through fastnn's public ops, which accept numpy arrays (CPU)
and CuPy arrays (GPU) alike.  Batch norm, dropout and residual additions also need a few
elementwise operations and reductions; arithmetic operators and methods such as
``x.sum(axis=...)`` work the same on both array types, and the rest (``sqrt``,
``maximum``, random numbers, moving between devices) comes from the array's own library,
picked here from the array's type.  Nothing in this module imports CuPy unless a CuPy
array or ``device="cuda"`` asks for it.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from fastnn import array_kind

__all__ = [
    "DEVICES",
    "check_device",
    "cupy_module",
    "device_of",
    "namespace",
    "random_uniform",
    "to_device",
    "to_like",
    "to_numpy",
]

DEVICES = ("cpu", "cuda")


def check_device(device: object) -> str:
    """Normalise a device name: "cpu" or "cuda" ("cuda:0" is accepted as "cuda")."""
    if isinstance(device, str):
        name = device.split(":", 1)[0].lower()
        if name in DEVICES:
            return name
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def cupy_module() -> ModuleType:
    """The cupy module, or RuntimeError saying why the GPU cannot be used here."""
    from fastnn import backends

    available, reason = backends()["cupy"]
    if not available:
        raise RuntimeError(f"cannot use device 'cuda': {reason}")
    import cupy

    return cupy


def namespace(x: Any) -> ModuleType:
    """numpy for numpy arrays, cupy for CuPy arrays."""
    kind = array_kind(x)
    if kind == "numpy":
        return np
    if kind == "cupy":
        return sys.modules["cupy"]
    raise TypeError(
        f"the training toolkit works on numpy or cupy arrays, got {type(x).__name__}; "
        "wrap other GPU arrays with cupy.asarray"
    )


def device_of(x: Any) -> str:
    """ "cpu" for numpy arrays, "cuda" for GPU arrays."""
    return "cpu" if array_kind(x) == "numpy" else "cuda"


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array with the values of ``x`` (a copy from the GPU for CuPy arrays)."""
    if array_kind(x) == "cupy":
        return x.get()
    return np.asarray(x)


def to_device(x: Any, device: str, dtype: Any = None) -> Any:
    """``x`` on ``device`` ("cpu": numpy, "cuda": cupy), converted to ``dtype`` if given.
    Returns ``x`` itself when nothing changes."""
    device = check_device(device)
    if device == "cpu":
        out = to_numpy(x)
        return out if dtype is None else out.astype(dtype, copy=False)
    cupy = cupy_module()
    return cupy.asarray(x, dtype=dtype)


def to_like(values: Any, like: Any) -> Any:
    """``values`` moved to the device of ``like`` and converted to its dtype."""
    return to_device(values, device_of(like), like.dtype)


def random_uniform(like: Any, rng: np.random.Generator, cache: dict) -> Any:
    """Uniform [0, 1) numbers of ``like``'s shape, dtype and device.

    On the CPU they come from ``rng``; on the GPU from a CuPy generator seeded once from
    ``rng`` and kept in ``cache`` (so the stream is reproducible and stays on the GPU).
    """
    if array_kind(like) == "numpy":
        return rng.random(like.shape, dtype=like.dtype)
    cupy = namespace(like)
    generator = cache.get("cupy")
    if generator is None:
        generator = cupy.random.default_rng(int(rng.integers(2**63)))
        cache["cupy"] = generator
    return generator.random(like.shape, dtype=like.dtype)
