"""Whole torch models with and without ``fastnn.torch.patch``: inference, training step,
and inference with ``fuse=True``.

    env -u OPENBLAS_CORETYPE fastnn bench --table torch-patch \\
        [--models resnet18,mobilenet_v2,vgg11,squeezenet1_1,resnet50] [--batch 8]
        [--size 224] [--threads 2] [--modes infer,train,fused] [--budget 6] [--repeats 9]
        [--shares] [--dtype float32] [--cache PATH]

Models are torchvision's own definitions (``pip install --no-deps torchvision==0.28.0``;
its compiled extension does not load against the CPU torch build, and the model files do
not need it: its meta registrations are stubbed out before the import), plus "lenet"
(LeNet-5, 32x32 input) which needs no torchvision.  Each model is deep-copied so both
versions start from the same weights; random inputs, seeded.

- infer: ``model.eval()`` forward under ``torch.no_grad()``, torch vs patched.
- train: ``model.train()``, zero_grad + forward + cross-entropy + backward.
- fused: eval forward of ``patch(model, fuse=True)`` against torch with its own batch norm
  folded (``torch.nn.utils.fusion.fuse_conv_bn_eval``), so the comparison is honest; the
  table also gives fused vs unfused torch.

Times are medians of fastnn.bench.timing's interleaved, seeded-order blocks (the same
timing as every fastnn benchmark); x = torch / fastnn (> 1: the patch is faster).  Before
timing, outputs (and, for training, every parameter's gradient, with dropout off since the
two libraries draw different masks) are compared; in float32 the gradients of deep
batch-normed nets differ by ~1e-2 between any two implementations (float64: ~1e-10), so in
float32 the train line also gives each library's distance from torch's float64 gradients
(the same step on a float64 copy of the model): a patched model within torch's own float32
error is as accurate as torch.
``--shares`` adds each model's forward time per layer type (torch vs patched, measured
with forward hooks on the leaf layers), to see where the time goes.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from collections import defaultdict

import fastnn
from fastnn._machine import cpu_model
from fastnn.bench.tables.common import set_threads, torch_lenet
from fastnn.bench.timing import TimingPlan, measure
from fastnn.bench.torchvision_models import torchvision_models

MODELS = ("resnet18", "mobilenet_v2", "vgg11", "squeezenet1_1", "resnet50")
#: The fewest samples of each implementation in one comparison.
MIN_SAMPLES = 7
PROG = "fastnn bench --table torch-patch"


def build(name: str, torch):
    """(model, input shape) for a model name."""
    if name == "lenet":
        return torch_lenet(torch), (1, 32, 32)
    return getattr(torchvision_models(), name)(), (3, None, None)


def torch_fold(model, torch):
    """torch's own inference fusion: every conv + batch norm pair folded with
    torch.nn.utils.fusion.fuse_conv_bn_eval (the batch norm becomes an Identity)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from fastnn.torch._fuse import TRIPLES

    for parent in list(model.modules()):
        pairs = []
        cls = type(parent)
        for conv, bn, _ in TRIPLES.get((cls.__module__, cls.__name__), ()):
            if bn is not None:
                pairs.append((conv, bn))
        if isinstance(parent, nn.Sequential):
            names = [n for n, _ in parent.named_children()]
            for a, b in zip(names, names[1:]):
                if isinstance(parent.get_submodule(a), nn.Conv2d) and isinstance(
                    parent.get_submodule(b), nn.BatchNorm2d
                ):
                    pairs.append((a, b))
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(parent, bn_name, nn.Identity())
    return model


def _relative(a, b) -> float:
    scale = float(b.abs().max()) or 1.0
    return float((a - b).abs().max()) / scale


def _grad_difference(patched, original) -> float:
    worst = 0.0
    floor = max(float(p.grad.abs().max()) for p in original.parameters() if p.grad is not None)
    for p, q in zip(patched.parameters(), original.parameters()):
        if q.grad is None:
            continue
        scale = max(float(q.grad.abs().max()), floor * 1e-3)
        worst = max(worst, float((p.grad - q.grad).abs().max()) / scale)
    return worst


def layer_shares(model, x, torch, runs: int = 3) -> dict[str, float]:
    """Forward seconds per leaf layer type (best of ``runs`` forwards), via hooks."""
    totals: dict[str, float] = defaultdict(float)
    starts: dict[int, float] = {}
    handles = []
    for layer in model.modules():
        if next(layer.children(), None) is not None:
            continue

        def pre(mod, _inputs):
            starts[id(mod)] = time.perf_counter()

        def post(mod, _inputs, _output):
            totals[type(mod).__name__] += time.perf_counter() - starts.pop(id(mod))

        handles += [layer.register_forward_pre_hook(pre), layer.register_forward_hook(post)]
    best: dict[str, float] = {}
    try:
        with torch.no_grad():
            for _ in range(runs):
                totals.clear()
                model(x)
                if not best or sum(totals.values()) < sum(best.values()):
                    best = dict(totals)
    finally:
        for h in handles:
            h.remove()
    return best


def _print_shares(name: str, original, patched, x, torch) -> None:
    theirs, ours = layer_shares(original, x, torch), layer_shares(patched, x, torch)
    total_t, total_f = sum(theirs.values()), sum(ours.values())
    print(f"\n{name}: forward time per layer type (leaf layers; eval mode)")
    print("| layer type | torch ms | share | fastnn ms | share | x |")
    print("|---|---|---|---|---|---|")
    for kind in sorted(theirs, key=theirs.get, reverse=True):
        t, f = theirs[kind], ours.get(kind, math.nan)
        print(
            f"| {kind} | {t * 1e3:.2f} | {t / total_t:.0%} | {f * 1e3:.2f} | "
            f"{f / total_f:.0%} | {t / f:.2f} |"
        )
    print(f"| total (leaves) | {total_t * 1e3:.2f} | | {total_f * 1e3:.2f} | | |")


def _compare(label: str, theirs, ours, plan, note: str) -> tuple[float, float]:
    """Time torch's and the patched model's ``label`` pass together; print one line;
    return both medians (torch, patched)."""
    m = measure({"torch": theirs, "fastnn": ours}, plan)
    t, f = m["torch"].median, m["fastnn"].median
    print(
        f"  {label}: torch {t * 1e3:.1f} ms, patched {f * 1e3:.1f} ms ({t / f:.2f}x); {note}",
        flush=True,
    )
    return t, f


def run_model(name, args, torch, plan, results):
    import fastnn.torch as ft

    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model, shape = build(name, torch)
    c, h, w = shape
    size = args.size if h is None else h
    x = torch.randn(args.batch, c, size, size if w is None else w, generator=gen).to(dtype)
    model = model.to(dtype)
    patched = copy.deepcopy(model)
    report = ft.patch(patched)
    print(f"\n{name}: input {tuple(x.shape)}; {report.summary()}", flush=True)
    with torch.no_grad():
        classes = model.eval()(x).shape[1]
    target = torch.randint(0, classes, (args.batch,), generator=gen)

    def forward(m):
        def run():
            with torch.no_grad():
                return m(x)

        return run

    def step(m, inputs=x):
        def run():
            m.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(m(inputs), target)
            loss.backward()
            return loss

        return run

    row = {
        "model": name,
        "swapped": f"{len(report.swapped)}/{len(report.swapped) + len(report.left_alone)}",
    }
    if "infer" in args.modes:
        model.eval(), patched.eval()
        diff = _relative(forward(patched)(), forward(model)())
        note = f"output difference {diff:.1e}"
        row["infer"] = _compare("infer", forward(model), forward(patched), plan, note)
        if args.shares:
            _print_shares(name, model, patched, x, torch)
    if "train" in args.modes:
        model.train(), patched.train()
        a, b = copy.deepcopy(model), copy.deepcopy(patched)
        for layer in [*a.modules(), *b.modules()]:  # the libraries draw different masks
            if isinstance(layer, torch.nn.Dropout):
                layer.eval()
        exact = copy.deepcopy(a).double() if args.dtype == "float32" else None
        step(b)(), step(a)()
        diff = _grad_difference(b, a)
        note = f"largest gradient difference {diff:.1e} (relative, per tensor)"
        if exact is not None:  # how far float32 itself is from the exact gradients
            step(exact, x.double())()
            ours, theirs = _grad_difference(b, exact), _grad_difference(a, exact)
            note += f"; from torch float64: patched {ours:.1e}, torch float32 {theirs:.1e}"
        row["train"] = _compare("train step", step(model), step(patched), plan, note)
    if "fused" in args.modes:
        model.eval()
        fused = copy.deepcopy(model).eval()
        ft.patch(fused, fuse=True)
        folded = torch_fold(copy.deepcopy(model).eval(), torch)
        diff = _relative(forward(fused)(), forward(model)())
        m = measure(
            {"torch": forward(model), "torch folded": forward(folded), "fastnn": forward(fused)},
            plan,
        )
        row["fused"] = (m["torch folded"].median, m["fastnn"].median)
        row["fused_vs_unfolded"] = (m["torch"].median, m["fastnn"].median)
        t, tf, f = (m[k].median for k in ("torch", "torch folded", "fastnn"))
        print(
            f"  fused inference: torch {t * 1e3:.1f} ms, torch folded {tf * 1e3:.1f} ms, "
            f"fastnn fused {f * 1e3:.1f} ms ({tf / f:.2f}x torch folded, {t / f:.2f}x torch); "
            f"output difference {diff:.1e}",
            flush=True,
        )
    results.append(row)


def _summary(results, modes) -> None:
    cols = [
        m for m in ("infer", "train", "fused", "fused_vs_unfolded") if any(m in r for r in results)
    ]
    print("\n| model | leaf layers swapped | " + " | ".join(f"{c} x" for c in cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    logs = defaultdict(list)
    for r in results:
        cells = []
        for c in cols:
            if c in r:
                t, f = r[c]
                cells.append(f"{t / f:.2f}x")
                logs[c].append(math.log(t / f))
            else:
                cells.append("-")
        print(f"| {r['model']} | {r['swapped']} | " + " | ".join(cells) + " |")
    geo = [f"{math.exp(sum(logs[c]) / len(logs[c])):.2f}x" if logs[c] else "-" for c in cols]
    print("| geomean | | " + " | ".join(geo) + " |")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and print the tables; returns the exit status."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--modes", default="infer,train,fused")
    parser.add_argument(
        "--budget",
        type=float,
        default=6.0,
        help="seconds per impl, at most, beyond the fewest samples (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=9, help="the most samples (default: %(default)s)"
    )
    parser.add_argument("--shares", action="store_true", help="forward time per layer type")
    parser.add_argument("--cache", default="", help="autotune cache file (default: a temp file)")
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")

    import torch

    set_threads(args.threads)
    # Tune into a fresh cache: the first (warm-up) call of each layer pays the tuning, and
    # the timed calls run what a second process would.
    cache = args.cache or tempfile.mkstemp(prefix="fastnn-tune-", suffix=".json")[1]
    fastnn.autotune(True, cache=cache)
    # At least MIN_SAMPLES per pass, however long a step: a training step of ResNet-50
    # takes ~2 s, and with 2 samples its ratio read 1.00-1.40x between runs of one build
    # on a 2-vCPU VM whose speed drifts by 20%; with 7-9 samples, 1.14-1.19x in three runs
    # (ResNet-18's still 1.10-1.37x: the drift reaches medians of 9 too).
    plan = TimingPlan(
        budget=args.budget, repeats=args.repeats, min_runs=min(MIN_SAMPLES, args.repeats)
    )
    print(
        f"torch {torch.__version__}, fastnn {fastnn.__version__}; {args.dtype}, batch "
        f"{args.batch}, {args.threads} thread(s), {cpu_model()}; medians; x = torch / fastnn"
    )
    results: list[dict] = []
    for name in args.models.split(","):
        run_model(name, args, torch, plan, results)
    _summary(results, args.modes)
    return 0
