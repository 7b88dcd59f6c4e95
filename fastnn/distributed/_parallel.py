"""broadcast_parameters and allreduce_gradients for fastnn.nn models."""

from __future__ import annotations

import numbers
import weakref
from typing import Any

from fastnn import array_kind
from fastnn.distributed import _world
from fastnn.distributed._buckets import BUCKET_BYTES, GradientBuckets
from fastnn.nn.module import Module

__all__ = ["allreduce_gradients", "broadcast_parameters", "release_buckets"]

_BUCKETS: weakref.WeakKeyDictionary[Module, GradientBuckets] = weakref.WeakKeyDictionary()


def _check_model(op: str, model: object) -> Module:
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a fastnn.nn.Module, got {type(model).__name__}")
    return model


def _kinds(model: Module) -> set[str | None]:
    return {array_kind(p.data) for p in model.parameters()}


def broadcast_parameters(model: Module, root: int = 0, *, buffers: bool = True) -> None:
    """Copy rank ``root``'s parameters (and, with ``buffers``, batch norm's running
    statistics) into every other rank's model, in place.  Every rank must call it with a
    model of the same structure.  Nothing happens in a single-process world."""
    op = "broadcast_parameters"
    _check_model(op, model)
    size = _world.world_size()
    if isinstance(root, bool) or not isinstance(root, numbers.Integral):
        raise TypeError(f"{op}: root must be an int, got {root!r}")
    if not 0 <= root < size:
        raise ValueError(f"{op}: root must be in [0, {size}), got {root}")
    if size == 1:
        return
    arrays = [p.data for p in model.parameters()]
    if buffers:
        arrays += [value for _, value in model.named_buffers() if array_kind(value) is not None]
    if "cupy" in _kinds(model):
        from fastnn.distributed import nccl

        for array in arrays:
            nccl.broadcast(array, root)
        return
    comm = _world.comm()
    with _world.collective("Bcast of the parameters"):
        for array in arrays:
            comm.Bcast(array, root=root)


def allreduce_gradients(
    model: Module,
    average: bool = True,
    *,
    overlap: bool = False,
    bucket_bytes: int = BUCKET_BYTES,
) -> None:
    """Sum (``average``: then divide by the world size) every parameter's gradient over
    the ranks, in place; call it after ``backward`` and before ``optimizer.step()`` on
    every rank.

    The first call sets up flat buckets of about ``bucket_bytes`` per dtype, and from then
    on each ``param.grad`` is a view into one (a parameter without a gradient contributes
    zeros and gets a zero gradient).  One in-place Allreduce per bucket through MPI's
    buffer interface (numpy), or NCCL for CuPy arrays.  With ``overlap=True`` the next
    backwards start each bucket's Iallreduce as soon as its gradients are complete (a
    gradient-ready hook on the modules); this call then waits for them.  With overlap,
    call it after every backward (to accumulate gradients over several backwards, use
    overlap=False).  In a single-process world it returns at once."""
    op = "allreduce_gradients"
    _check_model(op, model)
    average = _flag(op, "average", average)
    overlap = _flag(op, "overlap", overlap)
    if isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, numbers.Integral):
        raise TypeError(f"{op}: bucket_bytes must be an int, got {bucket_bytes!r}")
    if bucket_bytes < 1:
        raise ValueError(f"{op}: bucket_bytes must be >= 1, got {bucket_bytes}")
    size = _world.world_size()
    if size == 1:
        return
    buckets = _BUCKETS.get(model)
    if buckets is None or not buckets.matches(model, int(bucket_bytes), overlap):
        if buckets is not None:
            buckets.remove()
        buckets = GradientBuckets(model, _transport(model), size, int(bucket_bytes), overlap)
        _BUCKETS[model] = buckets
    buckets.finish(average)


def buckets_of(model: Module) -> GradientBuckets | None:
    """The buckets :func:`allreduce_gradients` set up for ``model`` (None: none yet)."""
    return _BUCKETS.get(model)


def release_buckets(model: Module) -> None:
    """Forget ``model``'s buckets and take its gradient-ready hooks off (gradients stay)."""
    buckets = _BUCKETS.pop(_check_model("release_buckets", model), None)
    if buckets is not None:
        buckets.remove()


def _flag(op: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be True or False, got {value!r}")
    return value


def _transport(model: Module) -> Any:
    kinds = _kinds(model)
    if kinds == {"cupy"}:
        from fastnn.distributed import nccl

        return nccl.transport()
    if kinds <= {"numpy"}:
        from fastnn.distributed._transport import MpiTransport

        return MpiTransport(_world.comm())
    raise ValueError(
        f"allreduce_gradients: the model's parameters live on several kinds of arrays "
        f"({sorted(k or '?' for k in kinds)}); move the model to one device first"
    )
