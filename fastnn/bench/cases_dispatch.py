"""Dispatch-overhead cases: ops on tensors so small that the time is all argument
checking, dispatch and allocation (PyTorch eager: about 1 us for relu, 5 us for conv2d).
The report shows microseconds per call, no throughput.  Every suite has the same ones."""

from __future__ import annotations

from dataclasses import replace

from fastnn.bench.building import Context
from fastnn.bench.case import Case
from fastnn.bench.cases_activation import elementwise_case, softmax_case
from fastnn.bench.cases_conv import conv_case
from fastnn.bench.cases_dense import gemm_case, linear_case
from fastnn.bench.shapes import DISPATCH

__all__ = ["cases"]


def _latency(case: Case, name: str) -> Case:
    return replace(case, family="dispatch", shape=name, metric="latency")


def cases(ctx: Context) -> list[Case]:
    """One tiny call each of relu, gemm, linear, conv2d and softmax."""
    d = DISPATCH
    built = {
        "relu-8": elementwise_case(ctx, "relu", "relu-8", d["relu-8"], backward=False),
        "gemm-4x4x4": gemm_case(ctx, d["gemm-4x4x4"]),
        "linear-1x16x4": linear_case(ctx, d["linear-1x16x4"], backward=False),
        "conv2d-1x1x5x5-k3": conv_case(ctx, d["conv2d-1x1x5x5-k3"], backward=False),
        "softmax-1x10": softmax_case(
            ctx, "softmax", "softmax-1x10", d["softmax-1x10"], backward=False
        ),
    }
    return [_latency(case, name) for name, case in built.items()]
