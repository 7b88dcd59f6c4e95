"""``fastnn train NAME``: train one of the example models and plot its learning curves.

Examples: lenet, mlp, logreg, spectra, resnet (see fastnn/examples/).  Each shows a
progress bar (on a terminal) and one line per epoch, then writes ``NAME_curves.png``,
``NAME_history.json`` and the trained weights ``NAME.npz`` into ``--out``, and says whether
it reached its target (e.g. LeNet-5: test accuracy >= 0.97).  A miss exits 0 (a short
smoke run misses by design) unless ``--require-target`` is given: then it exits 1.
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


def _example_defaults(key: str) -> str:
    """'(default: lenet 15, mlp 20, ...)' for one of the examples' DEFAULTS keys."""
    from fastnn import examples

    values = ", ".join(f"{name} {examples.load(name).DEFAULTS[key]:g}" for name in EXAMPLES)
    return f"(default: {values})"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=list(EXAMPLES), help="the example to train")
    parser.add_argument(
        "--epochs", type=_positive, help=f"training epochs {_example_defaults('epochs')}"
    )
    parser.add_argument(
        "--batch-size", type=_positive, help=f"mini-batch size {_example_defaults('batch_size')}"
    )
    parser.add_argument(
        "--lr", type=_positive_float, help=f"learning rate {_example_defaults('lr')}"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights, shuffling")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    parser.add_argument(
        "--out", type=Path, default=Path("fastnn-train"), help="folder for the figure and weights"
    )
    parser.add_argument(
        "--subset",
        type=_positive,
        help="use at most this many training and test samples (default: all)",
    )
    parser.add_argument(
        "--require-target",
        action="store_true",
        help=(
            "exit 1 when the example misses its target (without it a miss is reported "
            "and the exit status is 0)"
        ),
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (there is none anyway when the output is not a terminal)",
    )


def _target_line(summary: dict) -> str | None:
    """One line saying whether the run reached the example's target (None: it has none)."""
    if "reached" not in summary or "target" not in summary:
        return None
    scores = ", ".join(
        f"{key} {value}"
        for key, value in summary.items()
        if key.startswith("test_") and isinstance(value, float)
    )
    got = f" (got {scores})" if scores else ""
    if summary["reached"]:
        return f"target reached: {summary['target']}{got}"
    return (
        f"TARGET MISSED: {summary['target']} not reached{got}; more --epochs or the "
        "example's default settings may reach it"
    )


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
    line = _target_line(summary)
    if line:
        print(line)
    if args.require_target and not summary.get("reached", True):
        print(f"fastnn train {args.name}: target missed (--require-target)", file=sys.stderr)
        return 1
    return 0
