"""Torch models with and without ``fastnn.torch.patch``: forward + backward time.

    env -u OPENBLAS_CORETYPE python bench/scripts/torch_patch.py [--device cpu|cuda]
        [--threads 2] [--rounds 5] [--min-seconds 0.3] [--dtype float32]
        [--models lenet,resnet-block] [--lenet-batch 128] [--block-batch 16]

Two models, each deep-copied so that both versions start from the same weights:

- LeNet-5 (32x32 input, batch 128): conv-relu-pool twice, three linear layers; the loss
  is torch's cross-entropy.
- A ResNet basic block (64 channels, 56x56, batch 16): conv3x3-BN-ReLU-conv3x3-BN, plus
  the identity, ReLU; the "loss" is the mean of the output.  Batch norm stays in torch
  (fastnn has no drop-in for it); the convolutions and ReLUs run on fastnn.

A step is forward, loss, backward, gradients cleared.  Rounds alternate torch and the
patched copy (each timed over ``--min-seconds``) so that machine noise hits both alike;
the table shows medians and the ratio torch / patched (> 1: the patch is faster).  Before
timing, one step of each is compared (loss and gradients).  ``--device cuda`` runs on the
GPU when there is one (the patched layers need CuPy there, or they fall back to torch).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits

import fastnn
from fastnn._dispatch import resolve

OPS = [
    "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward", "relu",
    "activation_backward", "linear", "linear_backward",
]  # fmt: skip


def lenet(nn):
    """LeNet-5 as in bench/scripts/lenet_step.py (32x32 single-channel input)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )  # fmt: skip


def basic_block(torch, channels: int = 64):
    """ResNet's basic block with an identity shortcut."""
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.relu2 = nn.ReLU()

        def forward(self, x):
            out = self.relu1(self.bn1(self.conv1(x)))
            return self.relu2(self.bn2(self.conv2(out)) + x)

    return BasicBlock()


def per_call(fn: Callable[[], object], min_seconds: float, sync: Callable[[], None]) -> float:
    """Seconds per call, averaged over as many calls as fit in ``min_seconds``."""
    fn()
    sync()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        sync()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls


def make_step(model, x, loss_fn):
    """forward + loss + backward, gradients cleared first; returns the loss tensor."""

    def step():
        model.zero_grad(set_to_none=True)
        loss = loss_fn(model(x))
        loss.backward()
        return loss

    return step


def compare(original, patched, step_original, step_patched) -> str:
    """One step of each from the same weights: loss and largest gradient difference."""
    a, b = step_original().item(), step_patched().item()
    worst = max(
        float((p.grad - q.grad).abs().max() / (q.grad.abs().max() + 1e-30))
        for p, q in zip(patched.parameters(), original.parameters())
    )
    return (
        f"loss {b:.6g} (patched) vs {a:.6g} (torch); largest gradient difference "
        f"{worst:.1e} (relative to the gradient's largest entry)"
    )


def run_model(name, model, x, loss_fn, args, sync):
    import fastnn.torch as ft

    patched = copy.deepcopy(model)
    report = ft.patch(patched)
    swapped = ", ".join(f"{e.name}:{e.layer}" for e in report.swapped)
    print(f"\n{name}: input {tuple(x.shape)}, swapped {len(report.swapped)} layer(s) ({swapped})")
    step_original = make_step(model, x, loss_fn)
    step_patched = make_step(patched, x, loss_fn)
    print("  check: " + compare(model, patched, step_original, step_patched))
    times: dict[str, list[float]] = {"torch": [], "patched": []}
    for _ in range(args.rounds):
        times["torch"].append(per_call(step_original, args.min_seconds, sync))
        times["patched"].append(per_call(step_patched, args.min_seconds, sync))
    theirs, ours = (statistics.median(times[k]) for k in ("torch", "patched"))
    ratios = [t / p for t, p in zip(times["torch"], times["patched"])]
    print(f"  {'torch':<16}{theirs * 1e3:9.2f} ms")
    print(f"  {'fastnn patched':<16}{ours * 1e3:9.2f} ms")
    print(
        f"  torch / patched = {theirs / ours:.2f}x  (per-round {min(ratios):.2f}-{max(ratios):.2f})"
    )
    return name, theirs, ours


def _backend(op: str) -> str:
    module = resolve(op, "numpy").__module__
    return module.split(".")[2] if module.startswith("fastnn.backends.") else module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--models", default="lenet,resnet-block")
    parser.add_argument("--lenet-batch", type=int, default=128)
    parser.add_argument("--block-batch", type=int, default=16)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    fastnn.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    print(
        f"torch {torch.__version__}, fastnn {fastnn.__version__}; {args.device}, {args.dtype}, "
        f"{args.threads} thread(s), median of {args.rounds} rounds"
    )
    if device.type == "cpu":
        print("fastnn kernels in place: " + ", ".join(f"{op}={_backend(op)}" for op in OPS))
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    results = []
    with threadpool_limits(args.threads):
        for name in args.models.split(","):
            if name == "lenet":
                model = lenet(torch.nn).to(device, dtype)
                x = torch.randn(args.lenet_batch, 1, 32, 32, generator=generator)
                y = torch.randint(0, 10, (args.lenet_batch,), generator=generator).to(device)

                def loss_fn(out, y=y):
                    return torch.nn.functional.cross_entropy(out, y)

            elif name == "resnet-block":
                model = basic_block(torch).to(device, dtype)
                x = torch.randn(args.block_batch, 64, 56, 56, generator=generator)
                loss_fn = torch.Tensor.mean
            else:
                parser.error(f"unknown model {name!r}; expected lenet or resnet-block")
            x = x.to(device, dtype)
            results.append(run_model(name, model, x, loss_fn, args, sync))

    print("\n| model | torch (ms) | fastnn patched (ms) | torch / patched |")
    print("|---|---|---|---|")
    for name, theirs, ours in results:
        print(f"| {name} | {theirs * 1e3:.2f} | {ours * 1e3:.2f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
