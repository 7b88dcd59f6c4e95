"""The ``reference`` backend: every op in plain NumPy, written from the textbook formulas.

It is the ground truth every other backend is tested against and the "reference
implementation" the benchmarks compare with: exact in float64 (float32 inputs are computed
in float64 and rounded once at the end), easy to read, never fast.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends import load_op_modules


def probe() -> str | None:
    """Always available: it needs only NumPy."""
    return None


def describe() -> str:
    return f"NumPy {np.__version__} textbook formulas, float64 accumulation"


def load() -> None:
    """Import the op modules; their decorators register every op."""
    load_op_modules(__name__)
