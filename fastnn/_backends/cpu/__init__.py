"""The ``cpu`` backend: Cython kernels (OpenMP, GIL released) for numpy arrays.

Ops without a CPU kernel fall back to the ``reference`` backend (see fastnn._dispatch).
"""

from __future__ import annotations

import importlib

#: The op modules of this backend; each registers its ops when imported.
_MODULES = (
    "activation",
    "dense",
    "softmax",
    "loss",
    "backprop",
    "pool",
    "regularization",
    "optim",
    "conv",
    "checks",
    "normalization",
)


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
    for name in _MODULES:
        importlib.import_module(f"{__name__}.{name}")
    from fastnn._backends.cpu import _parallel

    _parallel.calibrate()  # the kernels' thread thresholds, scaled to this machine
