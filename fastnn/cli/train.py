"""``fastnn train NAME``: train one of the example models and plot its learning curves.

Examples: lenet, mlp, logreg, spectra, resnet (see fastnn/examples/).  Each shows a
progress bar and one line per epoch, then writes ``NAME_curves.png``,
``NAME_history.json`` and the trained weights ``NAME.npz`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fastnn.examples import EXAMPLES

HELP = "train an example model (" + ", ".join(EXAMPLES) + ") and plot its learning curves"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=list(EXAMPLES), help="the example to train")
    parser.add_argument("--epochs", type=_positive, help="training epochs (example default)")
    parser.add_argument("--batch-size", type=_positive, help="mini-batch size (example default)")
    parser.add_argument("--lr", type=_positive_float, help="learning rate (example default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights, shuffling")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    parser.add_argument(
        "--out", type=Path, default=Path("fastnn-train"), help="folder for the figure and weights"
    )
    parser.add_argument(
        "--subset", type=_positive, help="use at most this many training and test samples"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fastnn import examples
    from fastnn.examples._training import TrainConfig

    example = examples.load(args.name)
    defaults = example.DEFAULTS
    config = TrainConfig(
        epochs=args.epochs or defaults["epochs"],
        batch_size=args.batch_size or defaults["batch_size"],
        lr=args.lr or defaults["lr"],
        seed=args.seed,
        device=args.device,
        out=args.out,
        subset=args.subset,
        progress=not args.no_progress,
    )
    print(
        f"fastnn train {args.name}: {config.epochs} epochs, batch size {config.batch_size}, "
        f"lr {config.lr}, seed {config.seed}, device {config.device}"
    )
    start = time.perf_counter()
    try:
        summary = example.run(config)
    except RuntimeError as exc:  # no GPU for --device cuda, scikit-learn missing, ...
        print(f"fastnn train: error: {exc}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - start:.1f} s")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    return 0
