"""conv2d backward (input, weight and bias gradients): fastnn (im2col, direct) vs NumPy
and PyTorch."""

from __future__ import annotations

FAMILY = "conv2d"
OPS = ("conv2d_backward",)


def test_conv2d_backward(bench, bench_case):
    bench(bench_case)
