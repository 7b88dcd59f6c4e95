"""GPU smoke test: every op on both GPU backends against the CPU backend, with timings.

    python bench/gpu_smoke.py [--quick | --tiny] [--repeats N] [--backend cupy]

The same as ``fastnn bench --gpu-smoke [options]``; the cases are in
fastnn/bench/tables/gpu_smoke_cases.py, the run and its table in
fastnn/bench/tables/gpu_smoke.py.  Without a GPU it prints "skipped: no GPU" and exits 0.
"""

import sys

from fastnn.bench.tables.gpu_smoke import build_cases, main

__all__ = ["build_cases", "main"]

if __name__ == "__main__":
    sys.exit(main())
