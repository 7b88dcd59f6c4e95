"""What the benchmark tables share: the clock option, thread counts, geometric means,
reading medians out of measurements, and the LeNet-5 and MLP training steps that several
tables time against PyTorch."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastnn.bench.case import SkipImpl
from fastnn.bench.timing import CLOCKS, Measurement

__all__ = [
    "add_clock",
    "check_clock",
    "copy_weights",
    "fastnn_step",
    "geomean",
    "medians",
    "set_threads",
    "skip_on_value_error",
    "torch_lenet",
    "torch_step",
]


def add_clock(parser: argparse.ArgumentParser) -> None:
    """The ``--clock wall|thread`` option."""
    parser.add_argument(
        "--clock",
        default="wall",
        choices=tuple(CLOCKS),
        help="wall: elapsed time; thread: this thread's CPU time (with --threads 1), which "
        "a busy machine's descheduling does not inflate",
    )


def check_clock(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse ``--clock thread`` with more than one thread (it would see one of them)."""
    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread measures one thread: use it with --threads 1")


def set_threads(threads: int) -> None:
    """Give fastnn and PyTorch (when installed) ``threads`` threads each."""
    import fastnn

    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    fastnn.set_num_threads(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def geomean(values: Iterable[float]) -> float:
    """The geometric mean of positive ``values`` (NaN when there are none)."""
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def medians(measured: Mapping[str, Measurement], where: str = "") -> dict[str, float]:
    """Median seconds of every implementation that ran; the ones that failed (not those
    skipped as not applicable) are reported on stderr."""
    for name, m in measured.items():
        if m.error:
            print(f"{where}{' ' if where else ''}{name} failed: {m.error}", file=sys.stderr)
    return {name: m.median for name, m in measured.items() if m.ok}


def skip_on_value_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, with the ValueError of an algorithm that refuses a layer (e.g. Winograd on
    a 5x5 kernel) turned into :class:`SkipImpl`, so that the table shows "-"."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            raise SkipImpl(str(exc)) from exc

    return call


def torch_lenet(torch: Any) -> Any:
    """LeNet-5 for (N, 1, 32, 32) inputs in torch.nn: the network of
    fastnn.examples.lenet.build_model."""
    t = torch.nn
    return t.Sequential(
        t.Conv2d(1, 6, 5), t.ReLU(), t.MaxPool2d(2),
        t.Conv2d(6, 16, 5), t.ReLU(), t.MaxPool2d(2), t.Flatten(),
        t.Linear(400, 120), t.ReLU(), t.Linear(120, 84), t.ReLU(), t.Linear(84, 10),
    )  # fmt: skip


def copy_weights(model: Any, reference: Any) -> None:
    """Copy a torch model's parameters into the fastnn.nn model of the same layout."""
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        ours.data[...] = theirs.detach().numpy()


def fastnn_step(model: Any, criterion: Any, optimizer: Any, x: Any, y: Any) -> Callable[[], Any]:
    """One fastnn.nn training step: forward, loss, backward, update, gradients cleared."""

    def step() -> Any:
        loss = criterion(model(x), y)
        model.backward(criterion.backward(), need_input_grad=False)
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return step


def torch_step(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any) -> Callable[[], Any]:
    """The same step in torch eager (autograd): gradients cleared, forward, loss,
    backward, update."""

    def step() -> Any:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step
