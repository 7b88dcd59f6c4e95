"""One fastnn kernel call as a jax function: route, output shapes and the vmap rule.

A :class:`Kernel` wraps a host function (NumPy arrays in, NumPy arrays out) whose output
shapes follow from its input shapes.  Calling it inside a traced program runs the host
function through :func:`fastnn.jax._route.call` (or the C handler, when one is registered).
Under ``jax.vmap`` the mapped axis is folded into the op's batch axis where the op allows it
(one kernel call on ``(B * N, ...)``); otherwise the kernel runs once per mapped element
(``jax.lax.map``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fastnn.jax import _ffi, _route

__all__ = ["Kernel", "stand_in"]


def stand_in(value: Any) -> np.ndarray:
    """A NumPy array with ``value``'s shape and dtype that owns no memory (stride 0), for
    fastnn's shape and dtype checks at trace time."""
    return np.broadcast_to(np.zeros((), dtype=np.dtype(value.dtype)), tuple(value.shape))


def _ffi_ready() -> bool:
    """Whether the C handler can run this trace (built, registered, CPU backend); with the
    route set to "ffi" explicitly, a handler that cannot be built is an error."""
    if jax.default_backend() != "cpu":
        return False
    if _ffi.library() is not None:
        return True
    if _route.get_route() == "ffi":
        raise RuntimeError(f"fastnn.jax: route 'ffi' asked for, but {_ffi.unavailable_reason()}")
    return False


def _spec(shape: Sequence[int], dtype: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), np.dtype(dtype))


#: How a kernel treats an argument or result under vmap: "lead" when axis 0 is the op's batch
#: axis N (the mapped axis folds into it), "free" when any leading axes pass through the op
#: (elementwise ops, linear's input), "fixed" when the op needs it as it is (weights,
#: reductions over the batch).  One kernel mixes "lead" or "free" with "fixed", not both.
Fold = str


class Kernel:
    """A fastnn kernel as a jax function of its array arguments.

    ``host(*arrays) -> sequence of arrays`` runs on NumPy arrays; ``shapes(*shapes) ->
    sequence of (shape, dtype index)`` gives each result's shape and the index of the
    argument whose dtype it has.  ``folds`` gives each argument's fold kind, ``out_folds``
    each result's (see :data:`Fold`).  ``ffi`` (optional), ``ffi(specs, *args)``, runs the
    same computation by the C handler (``jax.ffi.ffi_call``) when it is available, or
    returns None where the handler does not cover the shapes it is given (then ``host``
    runs by a callback route).
    """

    def __init__(
        self,
        host: Callable[..., Sequence[np.ndarray]],
        shapes: Callable[..., Sequence[tuple[tuple[int, ...], int]]],
        folds: Sequence[Fold],
        out_folds: Sequence[Fold],
        ffi: Callable[..., Sequence[Any]] | None = None,
    ) -> None:
        self.host = host
        self.shapes = shapes
        self.folds = tuple(folds)
        self.out_folds = tuple(out_folds)
        self.ffi = ffi
        self._all_batched = (True,) * len(self.out_folds)
        self._run = jax.custom_batching.custom_vmap(self._call)
        self._run.def_vmap(self._vmap_rule)

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        return tuple(self._run(*args))

    def _call(self, *args: Any) -> tuple[Any, ...]:
        specs = [
            _spec(shape, args[which].dtype)
            for shape, which in self.shapes(*(tuple(a.shape) for a in args))
        ]
        if self.ffi is not None and _route.get_route() in ("auto", "ffi") and _ffi_ready():
            outs = self.ffi(specs, *args)
            if outs is not None:  # None: the handler does not cover this case
                return tuple(outs)
        return _route.call(self.host, specs, *args)

    def _foldable(self, in_batched: Sequence[bool]) -> str | None:
        """ "lead", "free" or None (run once per mapped element)."""
        kinds = {f for f, b in zip(self.folds, in_batched) if b}
        if "fixed" in kinds or "fixed" in self.out_folds:
            return None
        return "lead" if "lead" in self.folds else "free"

    def _vmap_rule(self, axis_size: int, in_batched: Sequence[bool], *args: Any):
        how = self._foldable(in_batched)
        if how is None:
            return self._sequential(axis_size, in_batched, args), self._all_batched
        full = [
            a if b or f == "fixed" else jnp.broadcast_to(a, (axis_size, *a.shape))
            for a, b, f in zip(args, in_batched, self.folds)
        ]
        if how == "free":
            return self(*full), self._all_batched
        lead = [f == "lead" for f in self.folds]
        if any(len(a.shape) < 2 for a, m in zip(full, lead) if m):
            return self._sequential(axis_size, in_batched, args), self._all_batched
        flat = [
            a.reshape(axis_size * a.shape[1], *a.shape[2:]) if m else a for a, m in zip(full, lead)
        ]
        outs = self(*flat)
        unfolded = (o.reshape(axis_size, o.shape[0] // axis_size, *o.shape[1:]) for o in outs)
        return tuple(unfolded), self._all_batched

    def _sequential(self, axis_size: int, in_batched: Sequence[bool], args: Sequence[Any]):
        mapped = [a for a, b in zip(args, in_batched) if b]

        def one(xs):
            it = iter(xs)
            return self(*[next(it) if b else a for a, b in zip(args, in_batched)])

        return tuple(jax.lax.map(one, mapped))
