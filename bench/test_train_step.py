"""One LeNet-5 training step (forward, backward, SGD) from fastnn's raw ops vs PyTorch autograd."""

from __future__ import annotations

FAMILY = "train"


def test_train_step(bench, bench_case):
    bench(bench_case)
