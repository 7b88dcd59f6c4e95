"""Validation of dropout's arguments: the drop probability and the seed source."""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

__all__ = ["check_generator", "dropout_seed", "dropout_threshold"]

_UINT64 = 1 << 64


def dropout_threshold(op: str, p: object) -> tuple[float, int]:
    """``(p, threshold)``: an element is kept when the top 32 bits of its random word are
    ``>= threshold = floor(p * 2**32)``.  ``p`` must be in [0, 1)."""
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a real number in [0, 1), got {p!r}")
    value = float(p)
    if not 0.0 <= value < 1.0:  # NaN fails too
        raise ValueError(
            f"{op}: p must be in [0, 1) (p = 1 would drop everything and divide by 0), got p={p!r}"
        )
    return value, min(math.floor(value * 2.0**32), 2**32 - 1)


def check_generator(op: str, generator: object) -> None:
    """Raise TypeError unless ``generator`` is None, an int or a numpy Generator."""
    if generator is None or isinstance(generator, np.random.Generator):
        return
    if isinstance(generator, (bool, np.bool_)) or not _is_int(generator):
        raise TypeError(
            f"{op}: generator must be None, an int seed or a numpy.random.Generator, got "
            f"{type(generator).__name__}"
        )


def _is_int(value: object) -> bool:
    try:
        operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def dropout_seed(op: str, generator: object) -> int:
    """The 64-bit seed of one dropout call: fresh OS entropy for None, an int taken mod
    2**64, or one 64-bit draw from a ``numpy.random.Generator``."""
    check_generator(op, generator)
    if generator is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, _UINT64, dtype=np.uint64))
    return operator.index(generator) % _UINT64  # type: ignore[arg-type]
