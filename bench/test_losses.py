"""mse_loss, binary_cross_entropy and cross_entropy, forward and backward."""

from __future__ import annotations

FAMILY = "loss"


def test_losses(bench, bench_case):
    bench(bench_case)
