"""Gradient buckets: each parameter's ``.grad`` a view into a persistent flat array.

Parameters that train are grouped by device and dtype, in reverse model order (the order
backward produces their gradients), into flat buckets of about ``bucket_bytes`` (a larger
parameter gets a bucket of its own).  Once set up, a parameter's gradient is copied into
its view when it is complete (fastnn's layers return new gradient arrays, so this one
copy replaces ``Parameter.accumulate``'s binding) and ``param.grad`` becomes the view;
the bucket is then reduced in place and nothing is copied out: the optimizer reads the
views.

With ``overlap`` each module that owns parameters gets a gradient-ready hook
(:meth:`fastnn.nn.Module.register_grad_ready_hook`); when the last owner of a bucket's
parameters has finished its backward the bucket's non-blocking allreduce starts, and each
later hook pushes the started ones on.  :meth:`GradientBuckets.finish` starts what
backward did not reach (a parameter without a gradient contributes zeros), waits for all,
and averages.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastnn import array_kind
from fastnn.nn._array import namespace
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter

__all__ = ["BUCKET_BYTES", "GradientBuckets"]

#: The default bucket size (PyTorch DDP's default too).
BUCKET_BYTES = 25 * 2**20


class _Bucket:
    __slots__ = ("flat", "params", "views", "owners", "pending", "request", "started")

    def __init__(self, params: list[Parameter]) -> None:
        xp = namespace(params[0].data)
        total = sum(p.size for p in params)
        self.flat = xp.zeros(total, dtype=params[0].dtype)
        self.params = params
        self.views = []
        offset = 0
        for param in params:
            self.views.append(self.flat[offset : offset + param.size].reshape(param.shape))
            offset += param.size
        self.owners = 0  # (module, parameter) pairs whose hooks complete this bucket
        self.pending = 0
        self.request: Any = None
        self.started = False

    def fill(self) -> None:
        """Copy every gradient that is not its view yet into the view (zeros for none)."""
        for param, view in zip(self.params, self.views):
            _fill(param, view)


def _fill(param: Parameter, view: Any) -> None:
    grad = param.grad
    if grad is view:
        return
    if grad is None:
        view[...] = 0
    else:
        view[...] = grad
    param.grad = view


def _layout(params: list[Parameter], bucket_bytes: int) -> list[list[Parameter]]:
    groups: dict[tuple[str, str], list[Parameter]] = defaultdict(list)
    for param in reversed(params):
        groups[(array_kind(param.data) or "", param.dtype.str)].append(param)
    layout: list[list[Parameter]] = []
    for group in groups.values():
        current: list[Parameter] = []
        size = 0
        for param in group:
            nbytes = param.size * param.dtype.itemsize
            if current and size + nbytes > bucket_bytes:
                layout.append(current)
                current, size = [], 0
            current.append(param)
            size += nbytes
        if current:
            layout.append(current)
    return layout


class GradientBuckets:
    """The buckets of one model, reduced over one transport (see the module docstring)."""

    def __init__(
        self, model: Module, transport: Any, world: int, bucket_bytes: int, overlap: bool
    ) -> None:
        self.transport = transport
        self.world = world
        self.bucket_bytes = bucket_bytes
        self.overlap = overlap
        self.signature = _signature(model)
        params = [p for p in model.parameters() if p.requires_grad]
        self.buckets = [_Bucket(group) for group in _layout(params, bucket_bytes)]
        self._where = {
            id(p): (bucket, view)
            for bucket in self.buckets
            for p, view in zip(bucket.params, bucket.views)
        }
        self._removers: list[Any] = []
        self.armed = False
        #: buckets whose allreduce the last backward started (the rest started in finish)
        self.started_in_backward = 0
        if overlap:
            self._hook_modules(model)

    @property
    def nbytes(self) -> int:
        return sum(int(b.flat.nbytes) for b in self.buckets)

    def matches(self, model: Module, bucket_bytes: int, overlap: bool) -> bool:
        """Whether these buckets still fit the model (same parameters, shapes, dtypes,
        devices) and options."""
        return (
            bucket_bytes == self.bucket_bytes
            and overlap == self.overlap
            and _signature(model) == self.signature
        )

    def _hook_modules(self, model: Module) -> None:
        for module in model.modules():
            owned = [
                self._where[id(p)] + (p,)
                for _, p in module._own_parameters()
                if id(p) in self._where
            ]
            if not owned:
                continue
            for bucket, _, _ in owned:
                bucket.owners += 1
            self._removers.append(module.register_grad_ready_hook(self._hook(owned)))
        self._reset()

    def _hook(self, owned: list[tuple[_Bucket, Any, Parameter]]):
        def ready(module: Module) -> None:
            if not self.armed:
                return
            for bucket, view, param in owned:
                _fill(param, view)
                bucket.pending -= 1
                if bucket.pending == 0 and not bucket.started:
                    bucket.request = self.transport.start(bucket.flat)
                    bucket.started = True
            self.transport.progress(self._requests())

        return ready

    def _requests(self) -> list[Any]:
        return [b.request for b in self.buckets if b.request is not None]

    def _reset(self) -> None:
        for bucket in self.buckets:
            bucket.pending = bucket.owners
            bucket.request = None
            bucket.started = False

    def finish(self, average: bool) -> None:
        """Reduce every bucket (waiting for those backward started), then average."""
        self.started_in_backward = sum(b.started for b in self.buckets)
        for bucket in self.buckets:
            if not bucket.started:
                bucket.fill()
                if self.overlap:
                    bucket.request = self.transport.start(bucket.flat)
                else:
                    self.transport.allreduce(bucket.flat)
        self.transport.wait(self._requests())
        if average and self.world > 1:
            for bucket in self.buckets:
                bucket.flat /= self.world
        self._reset()
        self.armed = self.overlap

    def remove(self) -> None:
        """Take the hooks off the model's modules (the views stay valid gradients)."""
        for remove in self._removers:
            remove()
        self._removers = []
        self.armed = False


def _signature(model: Module) -> tuple:
    return tuple(
        (id(p), p.shape, p.dtype.str, array_kind(p.data), p.requires_grad)
        for p in model.parameters()
    )
