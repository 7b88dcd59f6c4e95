"""One LeNet-5 training step with fastnn.nn + fastnn.optim.Adam against the same model in
PyTorch CPU eager (autograd + torch.optim.Adam), same weights, same batch.

    env -u OPENBLAS_CORETYPE fastnn bench --table lenet-step [--batch 128] [--threads 2]
        [--rounds 7] [--min-seconds 0.5] [--dtype float32] [--clock wall|thread] [--autotune]

A step is forward, cross-entropy, backward, Adam update, gradients cleared.  The two
implementations take turns in fastnn.bench.timing's rounds (each sample lasting at least
``--min-seconds``, a new seeded order every round), so machine noise hits both alike; the
table shows medians and the ratio torch / fastnn (> 1: fastnn is faster).  Then fastnn's
step is split into its phases, and the backend each op runs on is listed (ops without a
CPU kernel fall back to the NumPy reference).  Before timing, one step of each from the
same weights is compared (loss and updated weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import fastnn
from fastnn._dispatch import resolve
from fastnn.bench.tables.common import (
    add_clock,
    check_clock,
    copy_weights,
    fastnn_step,
    set_threads,
    torch_lenet,
    torch_step,
)
from fastnn.bench.timing import TimingPlan, measure

__all__ = ["OPS", "main", "steps"]

OPS = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "relu",
    "activation_backward", "linear", "linear_backward", "cross_entropy",
    "cross_entropy_backward", "adam_update",
]  # fmt: skip


def steps(batch: int, dtype: Any) -> dict[str, Any]:
    """The two training steps from the same weights and batch: {"fastnn": step, "torch":
    step, "model", "criterion", "adam", "x", "y"} (the last ones for the phases)."""
    import torch

    from fastnn import nn, optim
    from fastnn.examples.lenet import build_model

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 32, 32)).astype(dtype)
    y = rng.integers(0, 10, batch)
    torch.manual_seed(0)
    torch_dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    reference = torch_lenet(torch).to(torch_dtype)
    model = build_model(0, dtype)
    copy_weights(model, reference)
    criterion = nn.CrossEntropyLoss()
    adam = optim.Adam(model.parameters(), lr=1e-3)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=1e-3)
    theirs = torch_step(
        reference, torch.nn.functional.cross_entropy, torch_adam, torch.from_numpy(x),
        torch.from_numpy(y),
    )  # fmt: skip
    return {
        "fastnn": fastnn_step(model, criterion, adam, x, y),
        "torch": theirs,
        "reference": reference,
        "model": model,
        "criterion": criterion,
        "adam": adam,
        "x": x,
        "y": y,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, compare one step, then time both; returns the exit status."""
    from threadpoolctl import threadpool_limits

    parser = argparse.ArgumentParser(
        prog="fastnn bench --table lenet-step", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    add_clock(parser)
    parser.add_argument(
        "--autotune",
        action="store_true",
        help="let algo='auto' convolutions time im2col vs direct (fresh cache in a temp dir)",
    )
    args = parser.parse_args(argv)
    check_clock(parser, args)
    if args.autotune:
        fastnn.autotune(True, cache=Path(tempfile.mkdtemp()) / "autotune.json")
    set_threads(args.threads)
    s = steps(args.batch, np.dtype(args.dtype).type)
    with threadpool_limits(args.threads):
        ours_loss, theirs_loss = float(s["fastnn"]()), float(s["torch"]().detach())
        worst = max(
            float(np.max(np.abs(p.data - t.detach().numpy())))
            for p, t in zip(s["model"].parameters(), s["reference"].parameters())
        )
        print(
            f"one step from the same weights: loss {ours_loss:.6f} (fastnn) vs "
            f"{theirs_loss:.6f} (torch); largest weight difference after Adam {worst:.1e}"
        )
        print("backends: " + ", ".join(f"{op}={_backend(op)}" for op in OPS))
        plan = TimingPlan.rounds(args.rounds, min_sample=args.min_seconds, clock=args.clock)
        got = measure({"fastnn": s["fastnn"], "torch": s["torch"]}, plan)
        times = {k: got[k].times for k in ("fastnn", "torch")}
        ours, theirs = (statistics.median(times[k]) for k in ("fastnn", "torch"))
        ratios = [t / f for f, t in zip(times["fastnn"], times["torch"])]
        print(
            f"\nLeNet-5 training step, batch {args.batch}, {args.dtype}, {args.threads} "
            f"thread(s), median of {args.rounds} rounds ({args.clock} clock"
            f"{', autotuned convolutions' if args.autotune else ''}):"
        )
        print(f"  fastnn  {ours * 1e3:8.2f} ms")
        print(f"  torch   {theirs * 1e3:8.2f} ms")
        print(
            f"  torch / fastnn = {theirs / ours:.2f}x  (per-round ratios "
            f"{min(ratios):.2f}-{max(ratios):.2f})"
        )
        _phases(s, TimingPlan.rounds(1, min_sample=args.min_seconds / 2, clock=args.clock))
    return 0


def _phases(s: dict[str, Any], plan: TimingPlan) -> None:
    """fastnn's step split into forward (+ loss), backward, and the Adam update, each
    timed on its own (a backward needs the forward before it)."""
    model, criterion, adam, x, y = (s[k] for k in ("model", "criterion", "adam", "x", "y"))
    state = {}

    def forward():
        state["loss"] = criterion(model(x), y)

    def backward():
        model.zero_grad()
        model.backward(criterion.backward(), need_input_grad=False)

    def update():
        adam.step()

    forward()
    backward()
    phases = (("forward+loss", forward), ("backward", backward), ("adam", update))
    times = {name: measure({name: fn}, plan)[name].median for name, fn in phases}
    print("  fastnn phases: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in times.items()))
    adam.zero_grad()


def _backend(op: str) -> str:
    module = resolve(op, "numpy").__module__
    return module.split(".")[2] if module.startswith("fastnn._backends.") else module
