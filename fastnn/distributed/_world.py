"""The process group: MPI's world communicator, or a single-process world.

:func:`init` joins the job that mpiexec or srun started (their environment says so: PMI,
PMIx, Open MPI or Slurm variables); without one it makes a world of one process and
imports nothing.  In a world of several processes it also installs

- an exception hook: a rank whose Python code raises prints its traceback (prefixed with
  its rank) and aborts the whole job with ``MPI_Abort``, so the job ends with a non-zero
  exit instead of the other ranks waiting forever in their next collective;
- a collective timeout: every collective of fastnn.distributed runs under a deadline
  (``timeout`` seconds, default ``FASTNN_DIST_TIMEOUT`` or 600; 0 disables it).  A
  watchdog thread, asleep between one-second checks, aborts the job naming the
  collective when one runs past it (a rank that hangs outside Python, a lost peer).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "barrier",
    "collective",
    "comm",
    "init",
    "is_initialized",
    "launched_by_mpi",
    "rank",
    "timeout",
    "world_size",
]

#: Environment variables that a process started by an MPI launcher has.
LAUNCHER_VARIABLES = (
    "PMI_RANK",  # MPICH's hydra (the mpich wheel's mpiexec), Intel MPI
    "PMI_SIZE",
    "PMI_FD",  # srun --mpi=pmi2
    "PMIX_RANK",  # Open MPI 5, srun --mpi=pmix
    "OMPI_COMM_WORLD_SIZE",  # Open MPI's mpirun
    "MPI_LOCALNRANKS",  # hydra
)

DEFAULT_TIMEOUT = 600.0


class _World:
    def __init__(self) -> None:
        self.comm: Any = None  # an mpi4py communicator, or None for one process
        self.rank = 0
        self.size = 1
        self.timeout = 0.0
        self.initialized = False
        self.deadline: float | None = None
        self.what = ""
        self.watchdog: threading.Thread | None = None


_WORLD = _World()


def launched_by_mpi(environ: dict[str, str] | None = None) -> bool:
    """Whether this process was started by mpiexec/mpirun/srun (from its environment)."""
    env = os.environ if environ is None else environ
    return any(name in env for name in LAUNCHER_VARIABLES)


def _check_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"init: timeout must be a number of seconds, got {value!r}")
    if not value >= 0:
        raise ValueError(f"init: timeout must be >= 0 seconds (0: none), got {value!r}")
    return float(value)


def _env_timeout() -> float:
    text = os.environ.get("FASTNN_DIST_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        return _check_timeout(float(text))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"FASTNN_DIST_TIMEOUT must be seconds >= 0, got {text!r}") from exc


def init(timeout: float | None = None) -> int:
    """Join the MPI job this process belongs to, or make a single-process world when it
    was not started by an MPI launcher; returns the world size.  Calling it again only
    updates ``timeout`` (seconds a collective may take before the job is aborted; None:
    ``FASTNN_DIST_TIMEOUT`` or 600; 0: no limit)."""
    seconds = _env_timeout() if timeout is None else _check_timeout(timeout)
    world = _WORLD
    world.timeout = seconds
    if world.initialized:
        return world.size
    if launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise RuntimeError(
                "fastnn.distributed: started by an MPI launcher but mpi4py is missing; "
                "pip install 'fastnn[distributed]'"
            ) from exc
        world.comm = MPI.COMM_WORLD
        world.rank = world.comm.Get_rank()
        world.size = world.comm.Get_size()
        if world.size > 1:
            _install_abort_on_error()
    world.initialized = True
    return world.size


def is_initialized() -> bool:
    return _WORLD.initialized


def _ensure() -> _World:
    if not _WORLD.initialized:
        init()
    return _WORLD


def rank() -> int:
    """This process's rank, 0 .. world_size() - 1 (calls :func:`init` if needed)."""
    return _ensure().rank


def world_size() -> int:
    """The number of processes in the job (1 without MPI; calls :func:`init` if needed)."""
    return _ensure().size


def comm() -> Any:
    """The mpi4py world communicator, or None in a single-process world."""
    return _ensure().comm


def timeout() -> float:
    """Seconds a collective may take before the job is aborted (0: no limit)."""
    return _ensure().timeout


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in a single process)."""
    world = _ensure()
    if world.comm is not None and world.size > 1:
        with collective("barrier"):
            world.comm.Barrier()


#: Seconds between writing the reason of an abort and MPI_Abort: the launcher forwards each
#: rank's output through its own proxy, and an abort that tears the job down at once can
#: lose the very message that says why (seen with the mpich wheel's hydra).
ABORT_GRACE_SECONDS = 0.5


def _abort(message: str, code: int = 1) -> None:
    sys.stdout.flush()
    sys.stderr.write(message)
    sys.stderr.flush()
    time.sleep(ABORT_GRACE_SECONDS)
    _WORLD.comm.Abort(code)


def _install_abort_on_error() -> None:
    def excepthook(kind: type, value: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        prefix = f"[rank {_WORLD.rank}] "
        lines = "".join(prefix + line + "\n" for line in text.rstrip("\n").split("\n"))
        _abort(lines + f"{prefix}aborting the MPI job (MPI_Abort)\n")

    sys.excepthook = excepthook


@contextmanager
def collective(what: str) -> Iterator[None]:
    """Run the enclosed MPI collective under the timeout (see the module docstring)."""
    world = _WORLD
    if world.size == 1 or world.timeout <= 0:
        yield
        return
    if world.watchdog is None:
        world.watchdog = threading.Thread(target=_watch, name="fastnn-dist-watchdog", daemon=True)
        world.watchdog.start()
    world.what = what
    world.deadline = time.monotonic() + world.timeout
    try:
        yield
    finally:
        world.deadline = None


def _watch() -> None:
    world = _WORLD
    while True:
        time.sleep(min(1.0, max(world.timeout / 4, 0.05)))
        deadline = world.deadline
        if deadline is not None and time.monotonic() > deadline:
            _abort(
                f"[rank {world.rank}] fastnn.distributed: {world.what} took longer than "
                f"the collective timeout of {world.timeout:g} s (FASTNN_DIST_TIMEOUT); "
                "aborting the MPI job\n"
            )
            return
