"""``fastnn train NAME``: train one of the example models and plot its learning curves.

Examples: lenet, mlp, logreg, spectra, resnet, pinn, spectrogram (see fastnn/examples/).
An example with options of its own (pinn's ``--inverse``, spectrogram's ``--window``...)
declares them in its module: ``add_arguments(group)`` and ``OPTIONS``.  Each shows a
progress bar (on a terminal) and one line per epoch, then writes ``NAME_curves.png``,
``NAME_history.json`` and the trained weights ``NAME.npz`` into ``--out``, and says whether
it reached its target (e.g. LeNet-5: test accuracy >= 0.97).  A miss exits 0 (a short
smoke run misses by design) unless ``--require-target`` is given: then it exits 1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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
    parser.add_argument(
        "--nproc",
        type=_positive,
        default=1,
        help=(
            "data-parallel processes: relaunch under the bundled mpiexec -n N (as is when "
            "already started by mpiexec/srun), cores // N threads each unless "
            "OMP_NUM_THREADS is set; --batch-size stays the global batch"
        ),
    )
    from fastnn import examples

    for name in EXAMPLES:  # options of one example (their defaults are None: not given)
        hook = getattr(examples.load(name), "add_arguments", None)
        if hook is not None:
            hook(parser.add_argument_group(f"options of {name}"))


def _example_options(args: argparse.Namespace) -> dict:
    """The options of example ``args.name`` given on the command line, as keyword
    arguments of its ``run``; ValueError for an option of another example."""
    from fastnn import examples

    own = getattr(examples.load(args.name), "OPTIONS", {})
    options = {}
    for name in EXAMPLES:
        for key in getattr(examples.load(name), "OPTIONS", {}):
            value = getattr(args, key, None)
            if value is not None and key not in own:
                flag = "--" + key.replace("_", "-")
                raise ValueError(f"{flag} is an option of {name}, not of {args.name}")
            if value is not None:
                options[key] = value
    return options


def _option_flags(options: dict) -> list[str]:
    """``options`` (from :func:`_example_options`) as command-line arguments again."""
    argv = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return argv


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


def _relaunch(args: argparse.Namespace) -> int:
    """Run this command again under ``mpiexec -n args.nproc``; its exit status."""
    from fastnn.distributed.launch import mpiexec_command
    from fastnn.distributed.training import threads_per_process

    argv = [args.name, "--seed", str(args.seed), "--device", args.device, "--out", str(args.out)]
    for flag, value in (
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--lr", args.lr),
        ("--subset", args.subset),
    ):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--require-target"] * args.require_target + ["--no-progress"] * args.no_progress
    argv += ["--nproc", str(args.nproc)] + _option_flags(_example_options(args))
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(threads_per_process(args.nproc)))
    command = mpiexec_command(args.nproc, [sys.executable, "-m", "fastnn", "train", *argv])
    print(f"fastnn train: {' '.join(command)} (OMP_NUM_THREADS={env['OMP_NUM_THREADS']})")
    sys.stdout.flush()
    return subprocess.call(command, env=env)


def run(args: argparse.Namespace) -> int:
    from fastnn import examples
    from fastnn.distributed import launched_by_mpi
    from fastnn.examples._training import TrainConfig

    try:
        options = _example_options(args)
    except ValueError as exc:
        print(f"fastnn train: error: {exc}", file=sys.stderr)
        return 2
    parallel = None
    if args.nproc > 1 or launched_by_mpi():
        if not launched_by_mpi():
            try:
                return _relaunch(args)
            except RuntimeError as exc:  # no mpiexec
                print(f"fastnn train: error: {exc}", file=sys.stderr)
                return 2
        from fastnn.distributed.training import DataParallel

        parallel = DataParallel()
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
        progress=not args.no_progress and parallel is None,  # a bar would show rank 0's share
    )
    say = print if parallel is None else parallel.log
    config.log = say
    config.parallel = parallel
    ranks = "" if parallel is None else f", {parallel.size} processes"
    if parallel is not None and args.nproc not in (1, parallel.size):
        say(f"(--nproc {args.nproc} ignored: this MPI job has {parallel.size} processes)")
    say(
        f"fastnn train {args.name}: {config.epochs} epochs, batch size {config.batch_size}, "
        f"lr {config.lr}, seed {config.seed}, device {config.device}{ranks}"
    )
    start = time.perf_counter()
    try:
        summary = example.run(config, **options)
    except RuntimeError as exc:  # no GPU for --device cuda, scikit-learn missing, ...
        if parallel is not None and parallel.size > 1:
            raise  # the MPI job's exception hook prints it and aborts every rank
        print(f"fastnn train: error: {exc}", file=sys.stderr)
        return 2
    if parallel is not None:
        summary = parallel.annotate(summary)
        if not parallel.is_main:
            return 0
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
