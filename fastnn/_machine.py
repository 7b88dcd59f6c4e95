"""What this machine and this build of fastnn are, for keys of measurements that are only
valid on one of each: the CPU model and a fingerprint of the compiled kernels."""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path

__all__ = ["build_id", "cpu_model", "context"]


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` prints it (from /proc/cpuinfo on Linux), else
    what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.cache
def build_id() -> str:
    """A short fingerprint of the compiled CPU kernels (names, sizes and modification
    times of the extension modules): a rebuild gives another id, so measurements taken
    with the old kernels are not reused."""
    from fastnn import kernels

    digest = hashlib.sha1()
    folder = Path(kernels.__file__).parent / "cpu"
    for path in sorted(folder.glob("*.so")) + sorted(folder.glob("*.pyd")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


@functools.cache
def context() -> str:
    """``cpu model | fastnn version | build``: the part of every tuning key that says
    where and with what the measurement was taken."""
    from fastnn._version import __version__

    return f"{cpu_model()}|fastnn {__version__}|build {build_id()}"


def _reset() -> None:  # for tests
    for fn in (cpu_model, build_id, context):
        fn.cache_clear()
