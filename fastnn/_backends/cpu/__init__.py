"""The ``cpu`` backend: Cython kernels (OpenMP, GIL released) for numpy arrays.

Ops without a CPU kernel fall back to the ``reference`` backend (see fastnn._dispatch).
"""

from __future__ import annotations

import importlib

from fastnn._backends import load_op_modules


def probe() -> str | None:
    """None when the compiled kernels import, else why they do not."""
    try:
        importlib.import_module("fastnn.kernels.cpu.activation")
    except ImportError as exc:
        return (
            f"the compiled Cython kernels are missing ({exc}); install fastnn with pip "
            "(pip install . or pip install -e .) so that they are built"
        )
    return None


def describe() -> str:
    from fastnn._threads import get_num_threads

    return f"Cython kernels, OpenMP, {get_num_threads()} threads"


def load() -> None:
    load_op_modules(__name__)
    from fastnn._backends.cpu import _parallel

    _parallel.calibrate()  # the kernels' thread thresholds, scaled to this machine
    from fastnn import _isa

    _isa.level("elementwise")  # the elementwise loops' instruction set, measured once per CPU
