"""The course notes' MLP training steps with fastnn.nn + fastnn.optim against the same
models in PyTorch eager (autograd + torch.optim), same weights, same batch:

- XOR 2-4-1: sigmoid layers, MSE loss, plain SGD, the four XOR points as the batch;
- 784-300-10: a ReLU hidden layer, cross-entropy, SGD with momentum 0.9, batch 64.

A step is forward, loss, backward, optimizer update, gradients cleared.  Both run in
fastnn.bench's interleaved, seeded-order blocks (fastnn.bench.timing.measure); the table
shows medians and torch / fastnn (> 1: fastnn is faster).  Before timing, one step of each
from the same weights is compared.

    env -u OPENBLAS_CORETYPE fastnn bench --table mlp-step [--threads 2]
        [--budget 1] [--repeats 9]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from fastnn import nn, optim
from fastnn._machine import cpu_model
from fastnn.bench.tables.common import copy_weights, fastnn_step, set_threads, torch_step
from fastnn.bench.timing import TimingPlan, measure

__all__ = ["MODELS", "main", "mnist_steps", "xor_steps"]


def _steps(model, reference, criterion, torch_loss, opt, torch_opt, x, y, torch):
    """(fastnn step, torch step) from the same weights."""
    copy_weights(model, reference)
    ours = fastnn_step(model, criterion, opt, x, y)
    return ours, torch_step(reference, torch_loss, torch_opt, torch.from_numpy(x),
                            torch.from_numpy(y))  # fmt: skip


def xor_steps(torch: Any):
    """(fastnn step, torch step) for XOR 2-4-1."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    t = torch.nn
    torch.manual_seed(0)
    reference = t.Sequential(t.Linear(2, 4), t.Sigmoid(), t.Linear(4, 1), t.Sigmoid())
    model = nn.Sequential(
        nn.Linear(2, 4, activation="sigmoid"), nn.Linear(4, 1, activation="sigmoid")
    )
    return _steps(
        model, reference, nn.MSELoss(), torch.nn.functional.mse_loss,
        optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(reference.parameters(), lr=0.5),
        x, y, torch,
    )  # fmt: skip


def mnist_steps(torch: Any, batch: int = 64):
    """(fastnn step, torch step) for 784-300-10 at ``batch``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    t = torch.nn
    torch.manual_seed(0)
    reference = t.Sequential(t.Linear(784, 300), t.ReLU(), t.Linear(300, 10))
    model = nn.Sequential(nn.Linear(784, 300, activation="relu"), nn.Linear(300, 10))
    return _steps(
        model, reference, nn.CrossEntropyLoss(), torch.nn.functional.cross_entropy,
        optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9), x, y, torch,
    )  # fmt: skip


MODELS = (("XOR 2-4-1, SGD, MSE", xor_steps), ("784-300-10, SGD+momentum, CE", mnist_steps))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="fastnn bench --table mlp-step", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)

    import torch

    set_threads(args.threads)
    plan = TimingPlan(budget=args.budget, repeats=args.repeats, min_runs=min(5, args.repeats))
    print(f"MLP training steps, float32, {args.threads} threads, {cpu_model()}")
    print("| model | fastnn | torch | torch / fastnn | first loss fastnn / torch |")
    print("|---|---|---|---|---|")
    for name, build in MODELS:
        ours, theirs = build(torch)
        first = f"{float(ours()):.6f} / {float(theirs().detach()):.6f}"
        ours, theirs = build(torch)  # fresh weights for the timing
        got = measure({"fastnn": ours, "torch": theirs}, plan)
        f, t = got["fastnn"].median, got["torch"].median
        print(f"| {name} | {f * 1e6:.1f} us | {t * 1e6:.1f} us | {t / f:.2f}x | {first} |")
    return 0
