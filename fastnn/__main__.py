"""``python -m fastnn <command>`` (also the console script ``fastnn``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from fastnn._version import __version__
from fastnn.cli import HelpFormatter

#: subcommand -> module under fastnn.cli (imported only when that command runs)
COMMANDS = {
    "info": "fastnn.cli.info",
    "demo": "fastnn.cli.demo",
    "bench": "fastnn.cli.bench",
    "train": "fastnn.cli.train",
    "tune": "fastnn.cli.tune",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="fastnn: fast neural-network kernels for CPU and GPU",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(
            name, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        module.add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: sys.argv) and run the chosen command."""
    args = _parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
