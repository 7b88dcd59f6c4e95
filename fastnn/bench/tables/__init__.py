"""The benchmark tables: focused comparisons, each printing one table, run as
``fastnn bench --table NAME [options]`` (``fastnn bench --table NAME --help`` lists a
table's options) or through its thin entry point in bench/scripts/.

Every table builds :class:`~fastnn.bench.case.Case` records (or, for whole training
steps, zero-argument callables) and times them with :mod:`fastnn.bench.timing`: the same
warm-up, seeded random order and interleaved blocks as ``fastnn bench``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

__all__ = ["TABLES", "main_of", "run_script"]

#: table name -> module under fastnn.bench.tables (imported only when it runs)
TABLES = {
    "conv": "conv",
    "pool": "pool",
    "dense": "dense",
    "lenet-step": "lenet_step",
    "mlp-step": "mlp_step",
    "model-convs": "model_convs",
    "sweep": "sweep",
    "co-tenancy": "co_tenancy",
    "torch-patch": "torch_patch",
    "winograd": "winograd",
    "gpu-smoke": "gpu_smoke",
}


def main_of(name: str) -> Callable[[list[str] | None], int]:
    """The ``main(argv) -> exit status`` of table ``name`` (one of :data:`TABLES`), which
    first keeps freed memory for reuse (fastnn.bench.allocator) and says so."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    table_main = importlib.import_module(f"fastnn.bench.tables.{TABLES[name]}").main

    def main(argv: list[str] | None = None) -> int:
        from fastnn.bench.allocator import steady_allocator

        print(f"allocator: {steady_allocator()}")
        return table_main(argv)

    return main


def run_script(name: str) -> None:
    """Run table ``name`` on the command line's arguments (bench/scripts' entry points);
    exit with its status when that is not 0."""
    status = main_of(name)(sys.argv[1:])
    if status:
        sys.exit(status)
