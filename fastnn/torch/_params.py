"""Integer parameters in the form the registered custom ops take them (lists of ints).

Only the shape is normalised here (an int becomes ``nd`` copies); the values are checked
by fastnn's ops, whose errors name the argument.  Anything that is neither an int nor a
sequence is passed on unchanged so that those checks see it.  The eager path hands fastnn
tuples (:func:`eager`): fastnn memoises a layer's geometry only for parameters that can
key a dict, and a list cannot (each call would validate them afresh, ~20 us a layer).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

__all__ = ["conv_padding", "eager", "int_list"]


def int_list(value: object, nd: int) -> list[int]:
    """``value`` (an int or a sequence of ints) as a list: an int is repeated ``nd`` times."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    if isinstance(value, bool):
        return value  # type: ignore[return-value]  (fastnn rejects it with a clear message)
    try:
        return [operator.index(value)] * nd  # type: ignore[arg-type]
    except TypeError:
        return value  # type: ignore[return-value]  (fastnn rejects it with a clear message)


def conv_padding(value: object, nd: int) -> tuple[list[int], str]:
    """A conv padding as ``(ints, name)``: ``name`` is "same" or "valid" for those strings
    (the ints are then unused zeros), "" for numeric padding."""
    if isinstance(value, str):
        return [0] * nd, value
    return int_list(value, nd), ""


def eager(*values: object) -> tuple:
    """``values`` with each list made a tuple, as fastnn's eager ops take them (a tuple
    of ints keys fastnn's geometry memo; a list does not)."""
    return tuple(tuple(v) if type(v) is list else v for v in values)
