"""The lean path of conv1d / conv2d and their backward on NumPy arrays.

A small convolution's kernels take a few microseconds, and the checked path around them
(argument checks, the algorithm's memo key, the pass closures) took 20-40 us more: a
1 x 1 x 5 x 5 layer ran 2-3x slower than torch for that alone.  The checked path
remembers here, per layer, the algorithm each pass ran; a later call whose arrays
(exact ndarray type, shape, strides, dtype) and parameters equal those of a remembered
call, under the same thread cap and autotune generation, runs those algorithms without
checking again.  Anything else -- another array type, unhashable parameters, a shape
the geometry rejects, a choice being recorded -- returns None, and the call takes the
checked path, which raises what it raises there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastnn import _autotune, _geometry
from fastnn._threads import get_num_threads

__all__ = ["backward_key", "forgets", "forward_key", "make_backward", "make_forward", "remember"]

#: layer key (see :func:`forward_key`, :func:`backward_key`) -> what the passes ran.
_MEMO: dict[tuple, Any] = {}
#: Keys kept at most; past it the memo starts over (a model has tens of layers).
LIMIT = 4096


def _bias_key(b: Any) -> tuple | None:
    return None if b is None else (b.shape, b.strides, b.dtype)


def _plain(*arrays: Any) -> bool:
    """Whether every array is an ndarray itself (no subclass; None counts as plain)."""
    return all(a is None or type(a) is np.ndarray for a in arrays)


def _forward_key(geom, x, w, b, algo: str, activation) -> tuple:
    return ("forward", geom, x.strides, x.dtype, w.strides, w.dtype, _bias_key(b), algo,
            activation, get_num_threads(), _autotune.generation())  # fmt: skip


def _backward_key(geom, gy, x, w, algo: str, mask: tuple) -> tuple:
    return ("backward", geom, gy.shape, gy.strides, gy.dtype, x.strides, x.dtype, w.strides,
            w.dtype, algo, mask, get_num_threads(), _autotune.generation())  # fmt: skip


def forward_key(geom, x, w, b, algo: str, activation) -> tuple | None:
    """The memo key of a forward call, None unless its arrays are NumPy arrays."""
    return _forward_key(geom, x, w, b, algo, activation) if _plain(x, w, b) else None


def backward_key(geom, gy, x, w, algo: str, mask: tuple) -> tuple | None:
    """The memo key of a backward call, None unless its arrays are NumPy arrays."""
    return _backward_key(geom, gy, x, w, algo, mask) if _plain(gy, x, w) else None


def remember(key: tuple | None, ran: Any) -> None:
    """Note what a checked call of ``key`` ran (nothing for a None key).  Calls made
    while choices are recorded note them too, so that the memo follows what the
    recording's checked calls chose; the lean path itself stands aside while recording."""
    if key is None:
        return
    if len(_MEMO) >= LIMIT:
        _MEMO.clear()
    _MEMO[key] = ran


def forgets() -> None:
    """Forget every layer (tests)."""
    _MEMO.clear()


def make_forward(op: str, nd: int, run: Callable[..., Any]) -> Callable[..., Any]:
    """The lean path of ``op``'s forward: ``run(x, w, b, geom, algo, activation, name)``
    is the backend's forward with the remembered algorithm ``name``."""

    def lean(x, w, b, stride, padding, dilation, groups, algo, activation):
        if type(x) is not np.ndarray or type(w) is not np.ndarray:
            return None
        if b is not None and type(b) is not np.ndarray:
            return None
        try:
            geom = _geometry.conv_geometry(op, nd, x.shape, w.shape, stride, padding,
                                           dilation, groups)  # fmt: skip
            name = _MEMO.get(_forward_key(geom, x, w, b, algo, activation))
        except (TypeError, ValueError):  # unhashable or invalid: the checked path says why
            return None
        if name is None or _autotune.is_recording():
            return None
        return run(x, w, b, geom, algo, activation, name=name)

    return lean


def make_backward(op: str, nd: int, run: Callable[..., Any]) -> Callable[..., Any]:
    """The lean path of ``op`` (a backward): ``run(gy, x, w, geom, algo, mask, names)``
    is the backend's backward with the remembered algorithms ``names``."""

    def lean(gy, x, w, stride, padding, dilation, groups, algo, output_mask):
        if type(gy) is not np.ndarray or type(x) is not np.ndarray or type(w) is not np.ndarray:
            return None
        if type(output_mask) is not tuple:
            return None
        try:
            geom = _geometry.conv_geometry(op, nd, x.shape, w.shape, stride, padding,
                                           dilation, groups)  # fmt: skip
            names = _MEMO.get(_backward_key(geom, gy, x, w, algo, output_mask))
        except (TypeError, ValueError):
            return None
        if names is None or _autotune.is_recording():
            return None
        # the key compares the mask by equality, under which 1 == True: only bools pass
        if not all(v is True or v is False for v in output_mask):
            return None
        return run(gy, x, w, geom, algo, output_mask, names=names)

    return lean
