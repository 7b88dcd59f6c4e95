"""DataParallel: what the examples' training loop (``fastnn train NAME --nproc N``) does
differently on each rank of an MPI job.

Every rank draws the same shuffled order of the training set (same seed), cuts the same
global batches, and trains on its share of each (rows ``rank::world_size``); gradients
are averaged with :func:`allreduce_gradients` before the optimizer steps, so the global
batch size stays what ``--batch-size`` says.  Epoch sums (loss, metric) are added over the
ranks for the log, which rank 0 alone writes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastnn._threads import get_num_threads
from fastnn.distributed import _world
from fastnn.distributed._parallel import allreduce_gradients, broadcast_parameters
from fastnn.nn.module import Module

__all__ = ["DataParallel", "threads_per_process"]


def threads_per_process(processes: int, cpus: int | None = None) -> int:
    """The default threads of each of ``processes`` ranks on this host: cores // N."""
    if cpus is None:
        affinity = getattr(os, "sched_getaffinity", None)
        cpus = len(affinity(0)) if affinity is not None else os.cpu_count()
    return max(1, (cpus or 1) // max(processes, 1))


def _share_cores(size: int) -> int | None:
    """Under mpiexec without OMP_NUM_THREADS, give each rank cores // (ranks on this
    host) threads (what ``fastnn train --nproc`` sets when it launches); the count set."""
    if size == 1 or os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    from mpi4py import MPI

    from fastnn._threads import set_num_threads

    local = _world.comm().Split_type(MPI.COMM_TYPE_SHARED)
    threads = threads_per_process(local.Get_size())
    local.Free()
    set_num_threads(threads)
    return threads


class DataParallel:
    """Sharding, gradient averaging and sums for a training loop (see the module
    docstring); ``overlap`` is :func:`allreduce_gradients`' option."""

    def __init__(self, overlap: bool = False) -> None:
        _world.init()
        self.rank = _world.rank()
        self.size = _world.world_size()
        self.overlap = bool(overlap)
        self.samples = 0  # rows this rank trained on
        self.threads = _share_cores(self.size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: Module) -> None:
        """Start every rank from rank 0's weights."""
        broadcast_parameters(model)

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This rank's rows of one global batch (the last row when the batch has fewer
        rows than there are ranks, so no rank runs an empty batch)."""
        share = rows[self.rank :: self.size]
        if len(share) == 0:
            share = rows[-1:]
        self.samples += len(share)
        return share

    def reduce(self, model: Module) -> None:
        """Average the gradients over the ranks (after backward, before the step)."""
        allreduce_gradients(model, overlap=self.overlap)

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks."""
        totals = np.asarray(values, dtype=np.float64)
        if self.size > 1:
            from mpi4py import MPI

            with _world.collective("Allreduce of the epoch's sums"):
                _world.comm().Allreduce(MPI.IN_PLACE, totals)
        return tuple(float(v) for v in totals)

    def log(self, message: str) -> None:
        if self.is_main:
            print(message, flush=True)

    def annotate(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Add the process count and throughput (samples/s per process and in total) to
        an example's summary."""
        seconds = float(summary.get("train_seconds") or 0.0)
        total = self.sum(self.samples)[0]
        summary = dict(summary)
        summary["processes"] = self.size
        summary["threads_per_process"] = get_num_threads()
        if seconds > 0:
            summary["samples_per_s_per_process"] = round(self.samples / seconds, 1)
            summary["samples_per_s_total"] = round(total / seconds, 1)
        return summary
