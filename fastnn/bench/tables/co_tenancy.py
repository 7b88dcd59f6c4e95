"""A training step beside another job on the same cores: how much slower than alone?

    env -u OPENBLAS_CORETYPE fastnn bench --table co-tenancy \\
        [--neighbours torch,fastnn,busy] [--trials 10] [--threads 2] [--batch 128]
        [--budget 1.5] [--no-small]

The subjects are one LeNet-5 training step (batch 128, Adam) in fastnn.nn and the same
model in torch eager, and (unless ``--no-small``) the quick report's small ops that
collapsed under load: relu on 256K elements and softmax of 128 x 10, in both libraries.
Each is timed alone, then once per trial beside a neighbour process started for that
trial: "torch" (a 2-thread torch conv + relu + pool loop), "fastnn" (the same loop on
fastnn's ops) or "busy" (one pure-Python spinning process per core).  Timing is
fastnn.bench.timing's (medians of interleaved blocks).  The table gives each trial's
slowdown (time beside the neighbour / time alone) and the worst per subject; issue 15's
goal is fastnn <= 2.5x in every trial (two jobs on two cores cost ~2x by arithmetic; more
is the thread runtimes fighting).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import numpy as np

from fastnn._machine import cpu_model
from fastnn.bench.tables.common import fastnn_step as training_step
from fastnn.bench.tables.common import set_threads, torch_lenet
from fastnn.bench.tables.common import torch_step as torch_training_step
from fastnn.bench.timing import TimingPlan, measure

PROG = "fastnn bench --table co-tenancy"

#: The neighbours, as scripts run by this interpreter (they loop until killed).
NEIGHBOURS = {
    "torch": """
import torch
torch.set_num_threads({threads})
conv = torch.nn.Conv2d(16, 32, 3, padding=1)
x = torch.randn(32, 16, 32, 32)
with torch.no_grad():
    while True:
        torch.max_pool2d(torch.relu(conv(x)), 2)
""",
    "fastnn": """
import numpy as np, fastnn
fastnn.set_num_threads({threads})
rng = np.random.default_rng(0)
x = rng.standard_normal((32, 16, 32, 32), dtype=np.float32)
w = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
while True:
    fastnn.max_pool2d(fastnn.relu(fastnn.conv2d(x, w, None, 1, 1)), 2)
""",
    "busy": """
import multiprocessing as mp
def spin():
    while True:
        pass
procs = [mp.Process(target=spin) for _ in range({threads})]
[p.start() for p in procs]
[p.join() for p in procs]
""",
}


def fastnn_step(batch: int):
    """One LeNet-5 training step in fastnn.nn + fastnn.optim.Adam."""
    from fastnn import nn, optim
    from fastnn.examples.lenet import build_model

    rng = np.random.default_rng(0)
    model = build_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = rng.standard_normal((batch, 1, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return training_step(model, loss_fn, opt, x, y)


def torch_step(batch: int):
    """The same step in torch eager (autograd + torch.optim.Adam)."""
    import torch

    model = torch_lenet(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 32, 32, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    return torch_training_step(model, torch.nn.functional.cross_entropy, opt, x, y)


def small_ops() -> dict:
    """The quick report's small-op rows that collapsed under load (issue 15): relu on 256K
    elements and softmax of 128 x 10, in fastnn and in torch."""
    import torch

    import fastnn

    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 18, dtype=np.float32)
    logits = rng.standard_normal((128, 10), dtype=np.float32)
    xt, logits_t = torch.from_numpy(x), torch.from_numpy(logits)
    return {
        "fastnn relu 256K": lambda: fastnn.relu(x),
        "torch relu 256K": lambda: torch.relu(xt),
        "fastnn softmax 128x10": lambda: fastnn.softmax(logits, 1),
        "torch softmax 128x10": lambda: torch.softmax(logits_t, 1),
    }


def _time(subjects, plan) -> dict[str, float]:
    """Each subject timed on its own (one after the other, not interleaved): a user's job
    runs one library, and torch's spinning pool must not land on fastnn's time."""
    return {name: measure({name: fn}, plan)[name].median for name, fn in subjects.items()}


def _start(neighbour: str, threads: int) -> subprocess.Popen:
    code = NEIGHBOURS[neighbour].format(threads=threads)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    # Its own session, so that killing the group also ends the busy neighbour's children.
    return subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--neighbours", default="torch,fastnn,busy")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--budget", type=float, default=1.5, help="seconds per subject")
    parser.add_argument("--warm", type=float, default=0.5, help="neighbour start-up, s")
    parser.add_argument("--no-small", action="store_true", help="only the training steps")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    plan = TimingPlan(budget=args.budget, repeats=5, min_runs=3)
    subjects = {"fastnn": fastnn_step(args.batch), "torch": torch_step(args.batch)}
    if not args.no_small:
        subjects.update(small_ops())
    print(
        f"LeNet-5 training step (fastnn, torch), batch {args.batch}, and small ops; "
        f"{args.threads} threads, {cpu_model()}, {os.cpu_count()} CPUs; "
        "slowdown = time beside the neighbour / time alone"
    )
    quiet = _time(subjects, plan)
    print("alone: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in quiet.items()), flush=True)
    print("\n| neighbour | trial | " + " | ".join(f"{k} x" for k in subjects) + " |")
    print("|---|---|" + "---|" * len(subjects))
    worst: dict[tuple[str, str], float] = {}
    for neighbour in args.neighbours.split(","):
        for trial in range(1, args.trials + 1):
            proc = _start(neighbour, args.threads)
            try:
                time.sleep(args.warm)
                busy = _time(subjects, plan)
            finally:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            slow = {k: busy[k] / quiet[k] for k in subjects}
            for k, v in slow.items():
                worst[(neighbour, k)] = max(worst.get((neighbour, k), 0.0), v)
            cells = " | ".join(f"{slow[k]:.2f}" for k in subjects)
            print(f"| {neighbour} | {trial} | {cells} |", flush=True)
    print()
    for (neighbour, who), value in worst.items():
        verdict = "" if not who.startswith("fastnn") else (
            "  (goal <= 2.5x: met)" if value <= 2.5 else "  (goal <= 2.5x: NOT met)")  # fmt: skip
        print(f"worst beside {neighbour}: {who} {value:.2f}x{verdict}")
    return 0
