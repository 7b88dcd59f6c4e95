"""Max and average pooling, 1-D and 2-D, forward and backward (bandwidth-bound)."""

from __future__ import annotations

FAMILY = "pool"


def test_pooling(bench, bench_case):
    bench(bench_case)
