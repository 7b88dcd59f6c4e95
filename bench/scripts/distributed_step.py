"""Data-parallel training steps on one host: processes against threads, bucketed
allreduce against raw MPI, and how much communication overlap hides.

Run it without mpiexec (``env -u OPENBLAS_CORETYPE .venv/bin/python
bench/scripts/distributed_step.py``); it starts its own jobs:

1. steps/s of the LeNet and ResNet-small examples at a fixed global batch, one process
   with T threads against T processes with one thread each (``mpiexec -n T``), in
   alternating blocks (A B A B ...), medians of each block's samples;
2. under ``mpiexec -n 2``: ``allreduce_gradients`` on a model holding ~45 MB of float32
   gradients (ResNet-18's size) against one raw mpi4py ``Allreduce`` of the same bytes,
   and of the same pieces as the buckets, interleaved by fastnn.bench.timing (the ratio
   should be >= 0.9: the gradients already live in the buckets, nothing is copied);
3. under ``mpiexec -n 2``: the share of the allreduce hidden behind backward with
   ``overlap=True``: (t_sync - t_overlap) / (t_sync - t_backward), from forward+backward
   alone, with a synchronous allreduce, and with the overlapped one, on the same model.

Every rank runs exactly the same number of calls (TimingPlan.rounds), so the collectives
inside the timed steps match.  Timings on a shared machine move; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np

from fastnn import distributed as dist
from fastnn import nn, optim
from fastnn.bench.timing import TimingPlan, measure
from fastnn.distributed import _world, launch

MODELS = ("lenet", "resnet")
SHAPES = {"lenet": (1, 32, 32), "resnet": (1, 16, 16)}


# ---------------------------------------------------------------------- rank side


def _example_model(name: str) -> nn.Module:
    from fastnn import examples

    return examples.load(name).build_model(np.random.default_rng(0))


def _wide_mlp(layers: int = 11, width: int = 1024) -> nn.Sequential:
    """About 45 MB of float32 parameters (11.5 M), ResNet-18's gradient volume."""
    rng = np.random.default_rng(0)
    body: list[nn.Module] = []
    for _ in range(layers):
        body += [nn.Linear(width, width, rng=rng), nn.ReLU()]
    return nn.Sequential(*body[:-1])


def _step_fn(model: nn.Module, x, y, reduce=None):
    criterion = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        criterion(model(x), y)
        model.backward(criterion.backward(), need_input_grad=False)
        if reduce is not None:
            reduce(model)
        opt.step()
        opt.zero_grad()

    return step


def rank_steps(args: argparse.Namespace) -> dict:
    """Steps/s of each example at the global batch, this rank on its share."""
    rank, size = dist.rank(), dist.world_size()
    share = args.global_batch // size
    out = {}
    for name in MODELS:
        data = np.random.default_rng(rank)
        x = data.standard_normal((share, *SHAPES[name])).astype(np.float32)
        y = data.integers(0, 10, share)
        model = _example_model(name)
        dist.broadcast_parameters(model)
        step = _step_fn(model, x, y, dist.allreduce_gradients if size > 1 else None)
        seconds = measure({"step": step}, TimingPlan.rounds(args.rounds))["step"].median
        out[name] = 1.0 / seconds
    return out


def rank_allreduce(args: argparse.Namespace) -> dict:
    """Bucketed allreduce of ~45 MB of gradients against one raw Allreduce."""
    from mpi4py import MPI

    model = _wide_mlp()
    for param in model.parameters():
        param.grad = np.ones_like(param.data)
    dist.allreduce_gradients(model, average=False)  # sets up the buckets: grads are views
    nbytes = dist.buckets_of(model).nbytes
    raw = np.ones(nbytes // 4, dtype=np.float32)
    pieces = [np.ones_like(bucket.flat) for bucket in dist.buckets_of(model).buckets]
    comm = dist.comm()

    def raw_pieces() -> None:
        for piece in pieces:
            comm.Allreduce(MPI.IN_PLACE, piece)

    impls = {
        "bucketed": lambda: dist.allreduce_gradients(model, average=False),
        "raw": lambda: comm.Allreduce(MPI.IN_PLACE, raw),
        "raw_pieces": raw_pieces,
    }
    t = {name: m.median for name, m in measure(impls, TimingPlan.rounds(args.rounds)).items()}
    return {
        "megabytes": nbytes / 1e6,
        "buckets": len(pieces),
        **{f"{name}_s": value for name, value in t.items()},
        "throughput_ratio": t["raw"] / t["bucketed"],
        "pieces_ratio": t["raw_pieces"] / t["bucketed"],
    }


def rank_overlap(args: argparse.Namespace) -> dict:
    """Share of the allreduce hidden behind backward with overlap=True (wide MLP)."""
    data = np.random.default_rng(dist.rank())
    x = data.standard_normal((args.global_batch // dist.world_size(), 1024)).astype(np.float32)
    y = data.integers(0, 10, len(x))
    impls = {
        "backward": _step_fn(_wide_mlp(), x, y),
        "sync": _step_fn(_wide_mlp(), x, y, dist.allreduce_gradients),
        "overlap": _step_fn(_wide_mlp(), x, y, lambda m: dist.allreduce_gradients(m, overlap=True)),
    }
    t = {name: m.median for name, m in measure(impls, TimingPlan.rounds(args.rounds)).items()}
    comm_s = t["sync"] - t["backward"]
    return {
        **{f"{name}_s": value for name, value in t.items()},
        "hidden_share": (t["sync"] - t["overlap"]) / comm_s if comm_s > 0 else float("nan"),
    }


ROLES = {"steps": rank_steps, "allreduce": rank_allreduce, "overlap": rank_overlap}


# ---------------------------------------------------------------------- driver


def _launch(args: argparse.Namespace, role: str, processes: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--role", role]
    command += ["--rounds", str(args.rounds), "--global-batch", str(args.global_batch)]
    if processes > 1:
        command = launch.mpiexec_command(processes, command)
    env = {k: v for k, v in os.environ.items() if k not in _world.LAUNCHER_VARIABLES}
    env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drive(args: argparse.Namespace) -> None:
    cores = args.cores
    configs = {f"1 x {cores} threads": (1, cores), f"{cores} x 1 thread": (cores, 1)}
    runs: dict[str, list[dict]] = {label: [] for label in configs}
    for block in range(args.blocks):
        order = list(configs) if block % 2 == 0 else list(reversed(configs))
        for label in order:
            runs[label].append(_launch(args, "steps", *configs[label]))
    print(f"global batch {args.global_batch}, {args.blocks} alternating blocks, steps/s:")
    for name in MODELS:
        medians = {label: statistics.median(r[name] for r in runs[label]) for label in configs}
        first, second = medians.values()
        cells = "  ".join(f"{label}: {value:7.1f}" for label, value in medians.items())
        print(f"  {name:7s} {cells}  processes / threads: {second / first:.2f}")
    reduce = _launch(args, "allreduce", 2, 1)
    print(
        f"allreduce of {reduce['megabytes']:.1f} MB in {reduce['buckets']} buckets: "
        f"{reduce['bucketed_s'] * 1e3:.2f} ms, raw Allreduce {reduce['raw_s'] * 1e3:.2f} ms, "
        f"bucketed / raw throughput {reduce['throughput_ratio']:.2f}; raw Allreduce of the "
        f"same {reduce['buckets']} pieces {reduce['raw_pieces_s'] * 1e3:.2f} ms "
        f"(ratio {reduce['pieces_ratio']:.2f})"
    )
    hidden = _launch(args, "overlap", 2, 1)
    print(
        f"overlap (45 MB MLP, 2 x 1 thread): forward+backward+step {hidden['backward_s'] * 1e3:.1f}"
        f" ms, + sync allreduce {hidden['sync_s'] * 1e3:.1f} ms, + overlapped "
        f"{hidden['overlap_s'] * 1e3:.1f} ms: {100 * hidden['hidden_share']:.0f}% of the "
        "communication hidden"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=15, help="timed steps per run")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks")
    parser.add_argument("--global-batch", type=int, default=64, help="samples per step")
    parser.add_argument(
        "--cores", type=int, default=2, help="threads of the one process = processes"
    )
    args = parser.parse_args()
    if args.role is None:
        drive(args)
        return
    dist.init()
    result = ROLES[args.role](args)
    if dist.rank() == 0:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
