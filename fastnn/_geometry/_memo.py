"""Memoised geometry: a training loop calls the same layer with the same parameters over
and over, and validating them costs ~10 us of Python.  Only calls whose parameters are
plain ints, strs, bools, None or tuples of exact ints are memoised, keyed with a mask of
their bools so that True never stands in for 1; anything else (lists, numpy ints) is
validated afresh.  Geometries are frozen, so sharing one is safe; errors are never cached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from fastnn.kernels.cpu import memo as _compiled

_G = TypeVar("_G")
# memo_key and memoised are compiled (kernels/cpu/memo.pyx): deciding in Python whether the
# arguments can key a memo cost ~0.8 us per call, most of a small pooling call's budget.
memo_key = _compiled.memo_key
memoised = _compiled.memoised


def memoise(build: Callable[..., _G]) -> Callable[..., _G]:
    """``build`` served through :func:`memoised` from a memo of its own (calls with
    keyword arguments are built afresh)."""
    memo: dict = {}

    @functools.wraps(build)
    def cached(*args: object, **kwargs: object) -> _G:
        if kwargs:
            return build(*args, **kwargs)
        return memoised(memo, build, args)

    return cached
