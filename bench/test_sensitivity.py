"""The sensitivity recursion BP1-BP4: output_sensitivity, sensitivity, dense_grads, mlp_backward."""

from __future__ import annotations

FAMILY = "sensitivity"


def test_sensitivity(bench, bench_case):
    bench(bench_case)
