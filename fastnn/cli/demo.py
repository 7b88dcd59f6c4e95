"""``fastnn demo``: a tiny end-to-end run of the public API on the CPU.

Trains the course notes' XOR network (2-4-1, tanh then sigmoid) with the sensitivity
recursion (BP1 ``output_sensitivity``, BP2-BP4 ``mlp_backward``) and plain gradient
descent, then checks one convolution layer's forward and backward against the NumPy
reference backend.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

HELP = "train the XOR network with the sensitivity recursion and check a conv layer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=2000, help="gradient-descent steps")
    parser.add_argument("--lr", type=float, default=0.5, help="learning rate")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")


def train_xor(epochs: int, lr: float, seed: int) -> tuple[list[float], np.ndarray]:
    """Full-batch gradient descent on XOR; returns the loss history and final outputs."""
    import fastnn

    rng = np.random.default_rng(seed)
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    t = np.array([[0], [1], [1], [0]], dtype=np.float64)
    w1, b1 = rng.normal(0, 1, (4, 2)), np.zeros(4)
    w2, b2 = rng.normal(0, 1, (1, 4)), np.zeros(1)
    losses = []
    for _ in range(epochs):
        u1 = fastnn.linear(x, w1, b1)
        y1 = fastnn.tanh(u1)
        u2 = fastnn.linear(y1, w2, b2)
        y2 = fastnn.sigmoid(u2)
        losses.append(float(fastnn.mse_loss(y2, t)))
        delta = fastnn.output_sensitivity(y2, t, u2, "sigmoid", loss="mse")
        grads = fastnn.mlp_backward([x, y1], [u1, u2], [w1, w2], delta, ["tanh", "sigmoid"])
        for (param_w, param_b), (gw, gb) in zip(((w1, b1), (w2, b2)), grads):
            param_w -= lr * gw
            param_b -= lr * gb
    return losses, y2


def check_conv(seed: int) -> float:
    """Largest relative difference of a conv2d forward + backward, cpu vs reference."""
    import fastnn

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 3, 28, 28)).astype(np.float32)
    w = rng.standard_normal((16, 3, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    worst = 0.0
    results = {}
    for backend in ("cpu", "reference"):
        y = fastnn.conv2d(x, w, b, padding="same", backend=backend)
        grads = fastnn.conv2d_backward(np.ones_like(y), x, w, padding="same", backend=backend)
        results[backend] = (y, *grads)
    for got, want in zip(results["cpu"], results["reference"]):
        scale = np.abs(want).max() or 1.0
        worst = max(worst, float(np.abs(got - want).max() / scale))
    return worst


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    losses, outputs = train_xor(args.epochs, args.lr, args.seed)
    print(
        f"XOR 2-4-1 network, {args.epochs} steps of gradient descent "
        f"({time.perf_counter() - start:.2f} s):"
    )
    for step in sorted({0, len(losses) // 4, len(losses) // 2, len(losses) - 1}):
        print(f"  step {step:>5}  mse {losses[step]:.6f}")
    print("  outputs for (0,0) (0,1) (1,0) (1,1):", np.round(outputs.ravel(), 3).tolist())
    worst = check_conv(args.seed)
    print(f"conv2d forward + backward, cpu vs reference: max relative difference {worst:.2e}")
    solved = bool(np.all((outputs.ravel() > 0.5) == np.array([False, True, True, False])))
    print("XOR solved" if solved else "XOR not solved: try more --epochs or another --seed")
    return 0 if solved and worst < 1e-4 else 1
