"""Rank-0-only helpers: log once per job, write checkpoints once per job."""

from __future__ import annotations

import os
import sys
from typing import Any

from fastnn.distributed import _world
from fastnn.nn.module import Module

__all__ = ["is_main_process", "log", "save_checkpoint"]


def is_main_process() -> bool:
    """Whether this is rank 0 (always True in a single-process world)."""
    return _world.rank() == 0


def log(*values: Any, sep: str = " ", file: Any = None) -> None:
    """``print`` on rank 0 only (flushed, so lines of a job are not held back)."""
    if is_main_process():
        print(*values, sep=sep, file=sys.stdout if file is None else file, flush=True)


def save_checkpoint(path: str | os.PathLike, model: Module) -> None:
    """Rank 0 writes ``model``'s state (``Module.save``, an .npz file), then every rank
    waits at a barrier, so the file is complete when any rank goes on (to read it back,
    every rank calls ``model.load(path)``).  The parameters are the same on every rank
    after :func:`allreduce_gradients` steps; the running statistics of plain batch norm
    are rank 0's."""
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint: model must be a fastnn.nn.Module, got {model!r}")
    if is_main_process():
        model.save(path)
    _world.barrier()
