"""The one option check the optimizers make themselves: the update hyperparameters are
checked by their dataclasses (``fastnn.AdamHyper`` ...); the options that start the
state or drive LBFGS are checked here."""

from __future__ import annotations

import math
import numbers

__all__ = ["check_nonnegative"]


def check_nonnegative(owner: str, name: str, value: object) -> float:
    """A finite real number >= 0 (not a bool): ``TypeError`` or ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    if number < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")
    return number
