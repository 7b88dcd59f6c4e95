"""Finding the bundled ``mpiexec`` and building a launch command."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["find_mpiexec", "mpiexec_command"]


def find_mpiexec() -> str:
    """The ``mpiexec`` next to this Python (the mpich wheel puts it in the environment's
    bin/), else the first one on PATH; RuntimeError when there is none."""
    beside = Path(sys.executable).with_name("mpiexec")
    if beside.exists():
        return str(beside)
    found = shutil.which("mpiexec")
    if found is None:
        raise RuntimeError(
            "no mpiexec found next to this Python or on PATH; "
            "pip install 'fastnn[distributed]' (mpi4py and the mpich wheel)"
        )
    return found


def mpiexec_command(processes: int, command: list[str]) -> list[str]:
    """``mpiexec -n processes command...`` with the bundled mpiexec."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"mpiexec_command: processes must be an int >= 1, got {processes!r}")
    return [find_mpiexec(), "-n", str(processes), *command]
