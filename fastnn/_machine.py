"""What this machine and this build of fastnn are, for keys of measurements that are only
valid on one of each: the CPU model and a fingerprint of the compiled kernels."""

from __future__ import annotations

import functools
import hashlib
import platform
import time
from pathlib import Path

__all__ = ["build_id", "context", "cpu_model", "l2_bytes", "llc_bytes"]


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


#: The L2 size assumed when the system does not say (a common per-core size).
DEFAULT_L2 = 1 << 20
#: The last-level cache assumed when the system does not say.
DEFAULT_L3 = 8 << 20


def _cache_bytes(level: int) -> int | None:
    """The size of cpu0's level-``level`` data or unified cache (Linux sysfs), or None."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(base.glob("index*")):
            if (index / "level").read_text().strip() != str(level):
                continue
            if (index / "type").read_text().strip() == "Instruction":
                continue
            text = (index / "size").read_text().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            return int(text.rstrip("KMG")) * scale
    except (OSError, ValueError):
        pass
    return None


@functools.cache
def l2_bytes() -> int:
    """The per-core L2 cache size in bytes (Linux sysfs), else DEFAULT_L2.  Kernels size
    the blocks they keep near a core from it instead of from one CPU's number."""
    return _cache_bytes(2) or DEFAULT_L2


@functools.cache
def llc_bytes() -> int:
    """The last-level cache (L3, else L2) in bytes as the system reports it, else
    DEFAULT_L3: how much data a kernel's result can leave in cache for its reader."""
    return _cache_bytes(3) or _cache_bytes(2) or DEFAULT_L3


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


def best_seconds(fn, repeats: int = 3, warm_up: bool = False) -> float:
    """The fastest of ``repeats`` timed calls of ``fn`` (after one untimed call with
    ``warm_up``): a quick measurement of this machine, for calibration, not for reports
    (fastnn.bench times those)."""
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
