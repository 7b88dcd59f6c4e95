"""``fastnn tune NAME``: measure and persist the algorithm choices of a network's
convolution layers (shape tables shipped with fastnn), so that no later process pays the
first-use tuning."""

from __future__ import annotations

import argparse

HELP = "pre-tune the convolution layers of a network (resnet18, resnet50, vgg11, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fastnn import net_shapes

    parser.add_argument(
        "network", choices=net_shapes.network_names(), help="the network whose layers to tune"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size (default: the network's usual)"
    )
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "float64"], help="element type"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads to tune for (default: fastnn's)"
    )
    parser.add_argument("--quiet", action="store_true", help="only the summary line")


def _short(key: str) -> str:
    """'cpu:conv2d|pass=forward|...' -> 'forward'."""
    parts = key.split("|")
    return parts[1].removeprefix("pass=") if len(parts) > 1 else key


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import fastnn
    from fastnn import _autotune, _isa, _machine, net_shapes
    from fastnn._tune import tune_network

    if args.threads is not None:
        fastnn.set_num_threads(args.threads)
    batch = args.batch if args.batch is not None else net_shapes.DEFAULT_BATCH[args.network]
    print(
        f"tuning {args.network} at batch {batch}, {args.dtype}, {fastnn.get_num_threads()} "
        f"threads, on {_machine.cpu_model()}; cache: {_autotune.cache_path()}"
    )
    levels = ", ".join(f"{f} {lv} ({how})" for f, (lv, how) in _isa.report().items())
    print(f"instruction sets: {levels}")

    def progress(layer: str, choices: dict[str, str], seconds: float) -> None:
        if args.quiet:
            return
        picked = ", ".join(f"{_short(k)}: {v}" for k, v in choices.items() if "|pass=" in k)
        print(f"  {layer:<24} {seconds:6.2f} s  {picked}")

    report = tune_network(args.network, batch, np.dtype(args.dtype), progress)
    print(report)
    return 0
