"""Every convolution layer of a network against PyTorch CPU, with a total per model.

The layers come from the shape tables that ship with fastnn (fastnn.net_shapes:
resnet18, resnet50, vgg11, mobilenet_v2, squeezenet1_1, lenet).  For each layer, fastnn's
forward and backward (grad_input + grad_weight, as a training step asks for them) run beside
torch's in the same process, timed by fastnn.bench's interleaved, seeded-order blocks
(fastnn.bench.timing.measure).  The table gives medians, the speed-up torch / fastnn
(> 1: fastnn is faster), the algorithm fastnn chose for each pass, and the model's totals
weighted by how often each layer occurs.

    env -u OPENBLAS_CORETYPE fastnn bench --table model-convs resnet18 \\
        [--batch 8] [--threads 2] [--algos auto,im2col,direct,winograd] [--passes fwd,bwd]
        [--only layer3] [--budget 2] [--repeats 7] [--cache PATH | --no-tune]

``--algos`` adds a column per explicit algorithm (a layer an algorithm cannot run shows
"-").  By default "auto" tunes into a temporary cache, so the first call of each layer
pays the tuning and the table times what a second process would run; ``--cache PATH``
keeps the choices in PATH, ``--no-tune`` uses the static prior only.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from functools import partial

import numpy as np

import fastnn
from fastnn import net_shapes
from fastnn._machine import cpu_model
from fastnn.bench.tables.common import medians, set_threads, skip_on_value_error
from fastnn.bench.timing import TimingPlan, measure

PROG = "fastnn bench --table model-convs"


def _torch_impls(layer, x, w, b, gy):
    import torch
    import torch.nn.functional as F

    tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
    stride, pad = [layer.stride] * 2, [layer.pad] * 2
    forward = partial(F.conv2d, tx, tw, tb, stride, pad, 1, layer.groups)
    backward = partial(
        torch.ops.aten.convolution_backward,
        tgy, tx, tw, None, stride, pad, [1, 1], False, [0, 0], layer.groups,
        [True, True, False],
    )  # fmt: skip
    return forward, backward


def _fastnn_impls(layer, x, w, b, gy, algo):
    args = (layer.stride, layer.pad, 1, layer.groups)
    forward = partial(fastnn.conv2d, x, w, b, *args, algo=algo)
    backward = partial(
        fastnn.conv2d_backward, gy, x, w, *args, algo=algo, output_mask=(True, True, False)
    )
    return forward, backward


def _chosen(impls) -> dict[str, str]:
    """What "auto" runs for each pass of the layer ("forward", "input", "weight"), as
    recorded by the autotuner while the passes run once (tuned now, or from the cache)."""
    from fastnn import _autotune

    with _autotune.recording() as record:
        impls["fwd"]["auto"]()
        impls["bwd"]["auto"]()
    passes = {}
    for key, choice in record.choices.items():
        for part in key.split("|"):
            if part.startswith("pass="):
                passes[part[len("pass=") :]] = choice
    return passes


def run(args) -> None:
    import torch

    set_threads(args.threads)
    if args.no_tune:
        fastnn.autotune(False)
    else:
        cache = args.cache or tempfile.mkstemp(prefix="fastnn-tune-", suffix=".json")[1]
        fastnn.autotune(True, cache=cache)
    rng = np.random.default_rng(0)
    dtype = np.dtype(args.dtype)
    algos = args.algos.split(",")
    passes = args.passes.split(",")
    plan = TimingPlan(budget=args.budget, repeats=args.repeats, min_runs=3)
    only = args.only.split(",") if args.only else None
    print(
        f"{args.network} conv layers, batch {args.batch}, {dtype}, {args.threads} threads, "
        f"{cpu_model()}; median ms; x = torch / fastnn"
    )
    cols = ["layer", "n", "shape"]
    for p in passes:
        cols += [f"{p} torch"] + [f"{p} {a}" for a in algos] + [f"{p} x"]
        if "auto" in algos:
            cols.append(f"{p} chose")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    totals = {(p, who): 0.0 for p in passes for who in ["torch", *algos]}
    worst: dict[str, tuple[float, str]] = {}
    for layer in net_shapes.layers(args.network):
        if only and not any(o in layer.name for o in only):
            continue
        x = rng.standard_normal(layer.input_shape(args.batch)).astype(dtype)
        w = (rng.standard_normal(layer.weight_shape) / math.sqrt(layer.c * 9)).astype(dtype)
        b = rng.standard_normal(layer.k).astype(dtype)
        ho, wo = layer.out_hw
        gy = rng.standard_normal((args.batch, layer.k, ho, wo)).astype(dtype)
        t_fwd, t_bwd = _torch_impls(layer, x, w, b, gy)
        impls = {"fwd": {"torch": t_fwd}, "bwd": {"torch": t_bwd}}
        for a in algos:
            f_fwd, f_bwd = _fastnn_impls(layer, x, w, b, gy, a)
            impls["fwd"][a], impls["bwd"][a] = f_fwd, f_bwd
        chosen = _chosen(impls) if "auto" in algos else {}
        shape = f"{layer.c}x{layer.h}x{layer.w}->{layer.k} {layer.r}x{layer.s}/{layer.stride}"
        if layer.groups > 1:
            shape += f" g{layer.groups}"
        row = [layer.name, str(layer.count), shape]
        for p in passes:
            runnable = {k: f if k == "torch" else skip_on_value_error(f)
                        for k, f in impls[p].items()}  # fmt: skip
            with torch.no_grad():
                med = medians(measure(runnable, plan), f"{layer.name} {p}")
            row.append(f"{med['torch'] * 1e3:.2f}")
            for a in algos:
                row.append(f"{med[a] * 1e3:.2f}" if a in med else "-")
                totals[(p, a)] += layer.count * med.get(a, math.nan)
            totals[(p, "torch")] += layer.count * med["torch"]
            main = algos[0]
            ratio = med["torch"] / med[main]
            row.append(f"{ratio:.2f}")
            if ratio < worst.get(p, (math.inf, ""))[0]:
                worst[p] = (ratio, layer.name)
            if "auto" in algos:
                if p == "fwd":
                    row.append(chosen.get("forward", "prior"))
                else:
                    row.append(f"{chosen.get('input', 'prior')}/{chosen.get('weight', 'prior')}")
        print("| " + " | ".join(row) + " |", flush=True)
    print()
    for p in passes:
        line = [f"total {p}: torch {totals[(p, 'torch')] * 1e3:.1f} ms"]
        for a in algos:
            t = totals[(p, a)]
            line.append(f"{a} {t * 1e3:.1f} ms ({totals[(p, 'torch')] / t:.2f}x)")
        print("; ".join(line))
    if len(passes) > 1:
        both_t = sum(totals[(p, "torch")] for p in passes)
        both_f = sum(totals[(p, algos[0])] for p in passes)
        print(
            f"total fwd+bwd: torch {both_t * 1e3:.1f} ms, {algos[0]} {both_f * 1e3:.1f} ms "
            f"({both_t / both_f:.2f}x)"
        )
    for p, (ratio, name) in worst.items():
        print(f"slowest layer {p}: {name} {ratio:.2f}x")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("network", choices=net_shapes.network_names())
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--algos", default="auto", help="first one is compared with torch")
    parser.add_argument("--passes", default="fwd,bwd")
    parser.add_argument("--only", default="", help="comma-separated layer-name fragments")
    parser.add_argument("--budget", type=float, default=1.5, help="seconds per impl, at most")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cache", default="", help="autotune cache file (default: a temp file)")
    parser.add_argument("--no-tune", action="store_true", help="static prior, no timing")
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = net_shapes.DEFAULT_BATCH[args.network]
    run(args)
    return 0
