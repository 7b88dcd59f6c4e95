"""Sum-allreduce of one flat host array in place, through MPI's buffer interface.

mpi4py passes a contiguous numpy array to MPI by its buffer (no pickling, no copy); the
``MPI.IN_PLACE`` form reduces into the array itself.  The non-blocking form returns a
request; MPICH advances it only inside MPI calls (no progress thread), so
:meth:`MpiTransport.progress` is called from the gradient-ready hooks to push it on.
"""

from __future__ import annotations

from typing import Any

from fastnn.distributed._world import collective

__all__ = ["MpiTransport"]


class MpiTransport:
    """In-place sums over an mpi4py communicator."""

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm

    def allreduce(self, flat: Any) -> None:
        with collective("Allreduce of a gradient bucket"):
            self.comm.Allreduce(self._mpi.IN_PLACE, flat)

    def start(self, flat: Any) -> Any:
        return self.comm.Iallreduce(self._mpi.IN_PLACE, flat)

    def progress(self, requests: list[Any]) -> None:
        if requests:
            self._mpi.Request.Testall(requests)

    def wait(self, requests: list[Any]) -> None:
        if requests:
            with collective("Iallreduce of gradient buckets"):
                self._mpi.Request.Waitall(requests)
