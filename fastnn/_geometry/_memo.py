"""Memoised geometry: a training loop calls the same layer with the same parameters over
and over, and validating them costs ~10 us of Python.  Only calls whose parameters are
plain ints, strs, bools, None or tuples of ints are memoised, keyed with their types so
that True never stands in for 1; anything else (lists, numpy ints) is validated afresh.
Geometries are frozen, so sharing one is safe; errors are never cached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

_G = TypeVar("_G")
_MEMO_LIMIT = 4096
_SCALARS = frozenset({int, str, bool, type(None)})


def memo_key(args: tuple) -> tuple | None:
    """``(args, their types)``, or None when an argument is not a plain scalar or a tuple
    of exact ints (the types keep True from standing in for 1 at the top level; inside a
    tuple only exact ints are accepted)."""
    kinds = tuple(map(type, args))
    for value, kind in zip(args, kinds):
        if kind is tuple:
            for v in value:
                if type(v) is not int:
                    return None
        elif kind not in _SCALARS:
            return None
    return (args, kinds)


def memoised(memo: dict, build, args: tuple):
    """``build(*args)``, served from ``memo`` when the arguments make a :func:`memo_key`."""
    key = memo_key(args)
    if key is None:
        return build(*args)
    geometry = memo.get(key)
    if geometry is None:
        geometry = build(*args)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = geometry
    return geometry


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
