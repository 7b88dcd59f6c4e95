"""What a benchmark case is, and how its arrays reach the device an implementation runs on.

A :class:`Case` is one op on one shape.  Its ``data`` function makes the input arrays (in
NumPy, once per case); each :class:`Impl` names a device (``"numpy"``, ``"torch"``,
``"torch-cuda"``, ``"cupy"``, ``"numba"``) and a function ``call(arrays)`` that runs the op
once on the arrays moved there.  :func:`prepare` turns an Impl into the zero-argument
callable that the timer calls; GPU work is synchronised inside that callable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FAMILIES",
    "FASTNN_PREFIX",
    "REFERENCE",
    "Case",
    "Impl",
    "SkipImpl",
    "fastnn_name",
    "is_subject",
    "prepare",
    "to_numpy",
]

#: Implementation names of fastnn's backends look like ``fastnn[cpu]`` or
#: ``fastnn[cpu:im2col]`` (backend, then the algorithm when the op has several).
FASTNN_PREFIX = "fastnn["
#: fastnn's NumPy reference backend: a peer in the ratios, not a subject.
REFERENCE = "fastnn[reference]"

#: Op families, in report order.
FAMILIES = (
    "dispatch",
    "gemm",
    "linear",
    "conv2d",
    "conv1d",
    "pool",
    "activation",
    "loss",
    "sensitivity",
    "train",
    "sweep",
)

#: Devices an implementation can run on.
DEVICES = ("numpy", "torch", "torch-cuda", "cupy", "numba", "jax")


class SkipImpl(Exception):
    """Raised by ``Impl.call`` or a case's data when an implementation does not apply to
    a shape (too much memory, unsupported parameter); the message says why."""


def fastnn_name(backend: str, algo: str | None = None) -> str:
    """The implementation name of a fastnn backend (and algorithm)."""
    return f"{FASTNN_PREFIX}{backend}{':' + algo if algo else ''}]"


def is_subject(name: str) -> bool:
    """True for fastnn's own fast implementations (every backend but the reference)."""
    return name.startswith(FASTNN_PREFIX) and name != REFERENCE


@dataclass(frozen=True)
class Impl:
    """One way to run a case's op.

    ``call(arrays)`` runs the op once on ``arrays`` (the case's data moved to ``device``)
    and returns the result; it may raise :class:`SkipImpl`.
    """

    name: str
    call: Callable[[Mapping[str, Any]], Any]
    device: str = "numpy"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"Impl {self.name}: device must be one of {DEVICES}")


@dataclass(frozen=True)
class Case:
    """One op on one shape, and every implementation to compare on it.

    ``flops`` counts arithmetic operations (a multiply-add is 2); ``bytes`` the compulsory
    memory traffic (every input read once, every output written once).  ``metric`` says
    how the report shows throughput: "flops" (GFLOP/s), "bytes" (GB/s) or "latency" (time
    only: the dispatch-overhead cases).  ``updates_inputs``: the implementations change
    their arrays in place (each then gets its own copy).
    """

    family: str
    op: str
    shape: str
    params: Mapping[str, Any]
    flops: float
    bytes: float
    data: Callable[[np.random.Generator], dict[str, Any]]
    impls: tuple[Impl, ...]
    metric: str = "flops"
    updates_inputs: bool = False

    @property
    def key(self) -> str:
        """A unique, readable id: ``family/op/shape``."""
        return f"{self.family}/{self.op}/{self.shape}"

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP per byte."""
        return self.flops / self.bytes if self.bytes else float("inf")


# ---------------------------------------------------------------------------------------
# Moving data to a device
# ---------------------------------------------------------------------------------------


def _map_arrays(value: Any, fn: Callable[[np.ndarray], Any]) -> Any:
    """``value`` with ``fn`` applied to every NumPy array in it (in lists, tuples and
    dicts too)."""
    if isinstance(value, np.ndarray):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_arrays(v, fn) for v in value)
    if isinstance(value, dict):
        return {key: _map_arrays(v, fn) for key, v in value.items()}
    return value


def _converter(device: str, copy: bool) -> Callable[[np.ndarray], Any]:
    if device == "numpy":
        return np.copy if copy else (lambda a: a)
    if device in ("torch", "torch-cuda"):
        import torch

        where = "cuda" if device == "torch-cuda" else "cpu"
        if copy:
            return lambda a: torch.from_numpy(a.copy()).to(where)
        return lambda a: torch.from_numpy(a).to(where)  # shares the memory on the CPU
    if device == "cupy":
        import cupy

        return cupy.array  # a copy on the device
    if device == "numba":
        from numba import cuda

        return lambda a: cuda.to_device(np.ascontiguousarray(a))
    if device == "jax":  # the JAX peer's calls wait for their own results
        import jax.numpy as jnp

        return jnp.array  # a copy in XLA's memory
    raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")


def move(arrays: Mapping[str, Any], device: str, copy: bool = False) -> dict[str, Any]:
    """``arrays`` with every NumPy array moved to ``device``.

    With ``copy`` the host arrays are copied too: a case whose implementations update
    their inputs in place (the training step) must not let one implementation change what
    another reads.  Read-only cases share the host memory (the largest take a GB).
    """
    convert = _converter(device, copy)
    return {key: _map_arrays(value, convert) for key, value in arrays.items()}


def _synchronizer(device: str) -> Callable[[], None] | None:
    if device == "torch-cuda":
        import torch

        return torch.cuda.synchronize
    if device == "cupy":
        import cupy

        return cupy.cuda.Device().synchronize
    if device == "numba":
        from numba import cuda

        return cuda.synchronize
    return None


def prepare(impl: Impl, arrays: Mapping[str, Any], copy: bool = False) -> Callable[[], Any]:
    """The zero-argument callable the timer runs: ``impl`` on ``arrays`` moved to its
    device (copied when ``copy``: see :func:`move`), synchronised with the GPU before it
    returns."""
    moved = move(arrays, impl.device, copy)
    call = impl.call
    sync = _synchronizer(impl.device)
    if sync is None:
        return lambda: call(moved)

    def synchronised() -> Any:
        out = call(moved)
        sync()
        return out

    return synchronised


def to_numpy(result: Any) -> Any:
    """``result`` with every tensor or GPU array turned into a NumPy array (tuples and
    lists recursively; None and Python numbers unchanged)."""
    if isinstance(result, (tuple, list)):
        return type(result)(to_numpy(r) for r in result)
    if result is None or isinstance(result, (int, float, np.ndarray, np.generic)):
        return result
    if hasattr(result, "detach"):  # torch.Tensor
        return result.detach().cpu().numpy()
    if hasattr(result, "get"):  # cupy.ndarray
        return result.get()
    if hasattr(result, "copy_to_host"):  # numba device array
        return result.copy_to_host()
    return np.asarray(result)
