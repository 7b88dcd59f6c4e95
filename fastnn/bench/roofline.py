"""The machine's roofline, measured: peak compute (sgemm) and memory bandwidth (copy).

- Compute roof: NumPy float32 matmul (its BLAS, with the thread count set for the run) on
  square matrices, best of a few calls, in GFLOP/s.
- Memory roof: ``np.copyto`` of a buffer much larger than the last-level cache, split
  into one slice per thread (NumPy releases the GIL while it copies), best of a few
  calls, in GB/s counted as bytes read + bytes written.

Every kernel is then placed against ``min(peak, intensity * bandwidth)``: the fastest a
kernel of that arithmetic intensity (FLOP per byte) can run on this machine.

:func:`roof_check` measures both roofs again (smaller, quicker: a probe) with the load
average; ``fastnn bench`` takes one before the suite, one between two families and one
after it, and the report flags a family during which the roofs moved (another process
took the cores or the memory bus).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fastnn._machine import best_seconds

__all__ = [
    "Roofline",
    "load_average",
    "measure_bandwidth",
    "measure_roofline",
    "measure_sgemm",
    "roof_check",
]


@dataclass(frozen=True)
class Roofline:
    """Peak GFLOP/s and GB/s measured on this machine, and how."""

    gflops: float
    gbps: float
    threads: int
    gemm_size: int
    copy_mbytes: int

    @property
    def balance(self) -> float:
        """FLOP per byte where the memory roof meets the compute roof."""
        return self.gflops / self.gbps

    def attainable(self, intensity: float) -> float:
        """The roof in GFLOP/s for a kernel of ``intensity`` FLOP per byte."""
        return min(self.gflops, intensity * self.gbps)

    def fraction(self, flops: float, nbytes: float, seconds: float) -> float:
        """Fraction of the roof a kernel reached: the least time the roofline allows for
        its flops and bytes, divided by the time it took."""
        floor = max(flops / (self.gflops * 1e9), nbytes / (self.gbps * 1e9))
        return floor / seconds if seconds > 0 else float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def measure_sgemm(size: int = 2048, repeats: int = 3) -> float:
    """GFLOP/s of NumPy's float32 matmul on two ``size`` x ``size`` matrices."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    seconds = best_seconds(lambda: np.matmul(a, b, out=out), repeats, warm_up=True)
    return 2.0 * size**3 / seconds / 1e9


def measure_bandwidth(mbytes: int = 256, threads: int = 1, repeats: int = 5) -> float:
    """GB/s (read + write) of copying a ``mbytes`` MB buffer with ``threads`` threads."""
    n = mbytes * 2**20 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.zeros_like(src)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    parts = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if threads == 1:
        seconds = best_seconds(lambda: np.copyto(dst, src), repeats, warm_up=True)
    else:
        with ThreadPoolExecutor(threads) as pool:

            def copy_all() -> None:
                list(pool.map(lambda part: np.copyto(*part), parts))

            seconds = best_seconds(copy_all, repeats, warm_up=True)
    return 2.0 * src.nbytes / seconds / 1e9


def measure_roofline(
    threads: int, gemm_size: int = 2048, copy_mbytes: int = 256, repeats: int = 3
) -> Roofline:
    """Measure both roofs with ``threads`` threads (BLAS must already be set to them)."""
    return Roofline(
        gflops=measure_sgemm(gemm_size, repeats),
        gbps=measure_bandwidth(copy_mbytes, threads, repeats + 2),
        threads=threads,
        gemm_size=gemm_size,
        copy_mbytes=copy_mbytes,
    )


def load_average() -> list[float] | None:
    """The system's load average over 1, 5 and 15 minutes (``os.getloadavg``), or None
    where the system does not keep one."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def roof_check(
    threads: int,
    after: str | None,
    before: str | None,
    gemm_size: int = 1024,
    copy_mbytes: int = 128,
    repeats: int = 3,
    settle: float = 0.2,
    started: float | None = None,
) -> dict[str, Any]:
    """Both roofs measured now (after ``settle`` seconds, so that the threads of the
    previous case stop spinning, and followed by as many, so that the probe's do too),
    between the families ``after`` and ``before`` (None: the start or the end of the
    suite), with the load average: a dict for the report's ``roof_checks``;
    ``elapsed_s`` counts from ``started`` (a ``time.perf_counter()``)."""
    time.sleep(settle)
    roof = measure_roofline(threads, gemm_size, copy_mbytes, repeats)
    time.sleep(settle)  # and the probe's own BLAS threads stop spinning before the next case
    check: dict[str, Any] = {
        "after": after,
        "before": before,
        "gflops": roof.gflops,
        "gbps": roof.gbps,
        "load_average": load_average(),
        "gemm_size": gemm_size,
        "copy_mbytes": copy_mbytes,
    }
    if started is not None:
        check["elapsed_s"] = round(time.perf_counter() - started, 2)
    return check
