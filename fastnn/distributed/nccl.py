"""CuPy arrays: NCCL through ``cupy.cuda.nccl``, its unique id bootstrapped over MPI.

Why NCCL and not CUDA-aware MPI: the mpich wheel that the ``distributed`` extra installs
is not built with CUDA support, so handing it device pointers would fail; NCCL runs the
reduction on the GPUs (NVLink, InfiniBand with GPUDirect) and orders it on the current
CuPy stream, after the backward kernels that wrote the gradients and before the
optimizer's, with no host synchronisation.  Rank 0 draws the unique id, MPI broadcasts
it, and every rank creates its communicator once (one GPU per rank: select it with
``cupy.cuda.Device(local_rank).use()`` before the first call).

The module is thin on purpose: it is only reachable with CuPy and a GPU.  The tests run
it against a stand-in ``nccl`` module (``use_modules``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn.distributed import _world

__all__ = ["NcclTransport", "broadcast", "transport", "use_modules"]

_STATE: dict[str, Any] = {"nccl": None, "cupy": None, "comm": None}


def use_modules(nccl: Any = None, cupy: Any = None) -> None:
    """Use these modules instead of ``cupy.cuda.nccl`` and ``cupy`` (tests), and forget
    the communicator; ``use_modules()`` goes back to the real ones."""
    _STATE.update(nccl=nccl, cupy=cupy, comm=None)


def _modules() -> tuple[Any, Any]:
    if _STATE["nccl"] is None:
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as exc:
            raise RuntimeError(
                "fastnn.distributed: CuPy arrays need cupy with NCCL (cupy.cuda.nccl)"
            ) from exc
        _STATE.update(nccl=nccl, cupy=cupy)
    return _STATE["nccl"], _STATE["cupy"]


def _communicator() -> Any:
    if _STATE["comm"] is None:
        nccl, _ = _modules()
        comm = _world.comm()
        uid = nccl.get_unique_id() if _world.rank() == 0 else None
        with _world.collective("bcast of the NCCL unique id"):
            uid = comm.bcast(uid, root=0)
        _STATE["comm"] = nccl.NcclCommunicator(_world.world_size(), uid, _world.rank())
    return _STATE["comm"]


def _dtype(nccl: Any, array: Any) -> int:
    codes = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
    try:
        return codes[np.dtype(array.dtype)]
    except KeyError:
        raise TypeError(f"fastnn.distributed (NCCL): unsupported dtype {array.dtype}") from None


def _stream(cupy: Any) -> int:
    return int(cupy.cuda.get_current_stream().ptr)


class NcclTransport:
    """In-place sums of flat CuPy arrays on the current stream (asynchronous: ``start``
    enqueues, and stream order makes ``wait`` a no-op)."""

    def __init__(self) -> None:
        self.nccl, self.cupy = _modules()
        self.comm = _communicator()

    def allreduce(self, flat: Any) -> None:
        ptr = flat.data.ptr
        self.comm.allReduce(
            ptr, ptr, flat.size, _dtype(self.nccl, flat), self.nccl.NCCL_SUM, _stream(self.cupy)
        )

    def start(self, flat: Any) -> None:
        self.allreduce(flat)

    def progress(self, requests: list[Any]) -> None:
        """Nothing to push: NCCL progresses on the GPU."""

    def wait(self, requests: list[Any]) -> None:
        """Nothing to wait for on the host: later kernels on the stream run after it."""


def transport() -> NcclTransport:
    """The NCCL transport (creates the communicator on first use)."""
    return NcclTransport()


def broadcast(array: Any, root: int) -> None:
    """Overwrite ``array`` (a contiguous CuPy array) with rank ``root``'s, in place."""
    nccl, cupy = _modules()
    ptr = array.data.ptr
    _communicator().bcast(ptr, array.size, _dtype(nccl, array), root, _stream(cupy))
