"""One LeNet-5 training step with fastnn.nn + fastnn.optim.Adam against the same model in
PyTorch CPU eager (autograd + torch.optim.Adam), same weights, same batch.

    env -u OPENBLAS_CORETYPE python bench/scripts/lenet_step.py [--batch 128] [--threads 2]
        [--rounds 7] [--min-seconds 0.5] [--dtype float32] [--clock wall|thread] [--autotune]

A step is forward, cross-entropy, backward, Adam update, gradients cleared.  Rounds
alternate the two implementations (each timed over ``--min-seconds``), so machine noise
hits both alike; the table shows medians and the ratio torch / fastnn (> 1: fastnn is
faster).  Then fastnn's step is split into its phases, and the backend each op runs on is
listed (ops without a CPU kernel fall back to the NumPy reference).  Before timing, one
step of each from the same weights is compared (loss and updated weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import fastnn
from fastnn import nn, optim
from fastnn._dispatch import resolve
from fastnn.examples.lenet import build_model

OPS = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "relu",
    "activation_backward", "linear", "linear_backward", "cross_entropy",
    "cross_entropy_backward", "adam_update",
]  # fmt: skip

CLOCK = time.perf_counter


def torch_lenet(torch):
    """The same network as fastnn.examples.lenet.build_model, in torch.nn."""
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(6, 16, 5), t.ReLU(), t.MaxPool2d(2), t.Flatten(),
        t.Linear(400, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(), t.Linear(84, 10),
    )  # fmt: skip


def per_call(fn: Callable[[], object], min_seconds: float) -> float:
    """Seconds per call, averaged over as many calls as fit in ``min_seconds``."""
    fn()
    calls, start = 0, CLOCK()
    while True:
        fn()
        calls += 1
        elapsed = CLOCK() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def main() -> None:
    global CLOCK
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.5)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall")
    parser.add_argument(
        "--autotune",
        action="store_true",
        help="let algo='auto' convolutions time im2col vs direct (fresh cache in a temp dir)",
    )
    args = parser.parse_args()
    if args.autotune:
        fastnn.autotune(True, cache=Path(tempfile.mkdtemp()) / "autotune.json")
    if args.clock == "thread":
        if args.threads != 1:
            parser.error("--clock thread measures one thread: use it with --threads 1")
        CLOCK = time.thread_time

    import torch

    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)
    dtype = np.dtype(args.dtype)
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 32, 32)).astype(dtype)
    y = rng.integers(0, 10, args.batch)
    torch.manual_seed(0)
    reference = torch_lenet(torch).to(torch_dtype)
    model = build_model(0, dtype)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        ours.data[...] = theirs.detach().numpy()
    criterion = nn.CrossEntropyLoss()
    adam = optim.Adam(model.parameters(), lr=1e-3)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def fastnn_step():
        loss = criterion(model(x), y)
        model.backward(criterion.backward(), need_input_grad=False)
        adam.step()
        adam.zero_grad()
        return loss

    def torch_step():
        torch_adam.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(reference(tx), ty)
        loss.backward()
        torch_adam.step()
        return loss

    with threadpool_limits(args.threads):
        ours_loss, theirs_loss = float(fastnn_step()), float(torch_step().detach())
        worst = max(
            float(np.max(np.abs(p.data - t.detach().numpy())))
            for p, t in zip(model.parameters(), reference.parameters())
        )
        print(
            f"one step from the same weights: loss {ours_loss:.6f} (fastnn) vs "
            f"{theirs_loss:.6f} (torch); largest weight difference after Adam {worst:.1e}"
        )
        print("backends: " + ", ".join(f"{op}={_backend(op)}" for op in OPS))
        times: dict[str, list[float]] = {"fastnn": [], "torch": []}
        for _ in range(args.rounds):
            times["fastnn"].append(per_call(fastnn_step, args.min_seconds))
            times["torch"].append(per_call(torch_step, args.min_seconds))
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
        _phases(model, criterion, adam, x, y, args.min_seconds)


def _phases(model, criterion, adam, x, y, min_seconds) -> None:
    """fastnn's step split into forward (+ loss), backward, and the Adam update."""
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
    print("  fastnn phases: " + ", ".join(
        f"{name} {per_call(fn, min_seconds / 2) * 1e3:.2f} ms"
        for name, fn in (("forward+loss", forward), ("backward", backward), ("adam", update))
    ))  # fmt: skip
    adam.zero_grad()


def _backend(op: str) -> str:
    module = resolve(op, "numpy").__module__
    return module.split(".")[2] if module.startswith("fastnn.backends.") else module


if __name__ == "__main__":
    main()
