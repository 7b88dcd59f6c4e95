"""Dispatch overhead: tiny tensors where the time is argument checking, dispatch and allocation."""

from __future__ import annotations

FAMILY = "dispatch"


def test_dispatch_overhead(bench, bench_case):
    bench(bench_case)
