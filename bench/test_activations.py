"""relu, sigmoid, tanh and their backward from L1- to DRAM-sized arrays; softmax and log_softmax."""

from __future__ import annotations

FAMILY = "activation"


def test_activations(bench, bench_case):
    bench(bench_case)
