"""Torch tensors to fastnn arrays and back, without copies.

CPU tensors become numpy arrays and CUDA tensors CuPy arrays through DLPack: the array is
a view of the tensor's memory (strides kept, so non-contiguous tensors stay views), and a
result array becomes a tensor that owns nothing new.  A tensor that requires grad refuses
``__dlpack__``, so tensors are detached first (a detached tensor shares the memory).

Which dtypes and devices cross:

- dtypes float32 and float64 (fastnn's kernels); integer tensors only where an op takes
  indices (cross-entropy targets).  Anything else raises ``TypeError``.
- devices "cpu" and "cuda".  CUDA tensors need CuPy (the ``cuda`` extra); without it a
  ``RuntimeError`` says so.  Other devices raise ``RuntimeError``.

On CUDA the kernels run on the tensor's device and on torch's current stream (entered as
a CuPy external stream), so no synchronisation is needed between torch and fastnn.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from typing import Any

import numpy as np
import torch

__all__ = [
    "FLOAT_DTYPES",
    "apply_function",
    "device_scope",
    "has_cupy",
    "run_op",
    "runs_here",
    "to_array",
    "to_tensor",
]

#: The tensor dtypes fastnn's kernels compute in.
FLOAT_DTYPES = frozenset({torch.float32, torch.float64})

#: The integer dtypes accepted where an op takes class indices.
INDEX_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8})

_CPU_SCOPE = contextlib.nullcontext()


@functools.cache
def has_cupy() -> bool:
    """Whether CuPy can be imported (looked up once; CuPy is imported only when used)."""
    return importlib.util.find_spec("cupy") is not None


def _cupy() -> Any:
    if not has_cupy():
        raise RuntimeError(
            "fastnn.torch: CUDA tensors cross to fastnn's GPU kernels as CuPy arrays, and "
            "CuPy is not installed (pip install 'fastnn[cuda]'); move the tensors to the "
            "CPU or use torch.nn.functional"
        )
    return importlib.import_module("cupy")


def runs_here(tensor: torch.Tensor) -> bool:
    """True when fastnn can run on ``tensor``: a float32/float64 tensor on the CPU, or on a
    CUDA device when CuPy is installed.  The drop-in modules fall back to torch otherwise."""
    if tensor.dtype not in FLOAT_DTYPES:
        return False
    device = tensor.device.type
    return device == "cpu" or (device == "cuda" and has_cupy())


def _check(op: str, name: str, tensor: Any, indices: bool) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
    allowed = INDEX_DTYPES if indices else FLOAT_DTYPES
    if tensor.dtype not in allowed:
        wanted = "an integer (class index)" if indices else "a float32 or float64"
        raise TypeError(
            f"{op}: {name} must be {wanted} tensor, got dtype {tensor.dtype} (fastnn's "
            f"kernels compute in float32 and float64; use torch.nn.functional for others)"
        )
    if tensor.device.type not in ("cpu", "cuda"):
        raise RuntimeError(
            f"{op}: {name} is on device {tensor.device}; fastnn runs CPU and CUDA tensors"
        )


#: Tensor classes whose CPU instances cross by ``Tensor.numpy(force=True)``.
_PLAIN_TENSORS = frozenset({torch.Tensor, torch.nn.Parameter})


def to_array(op: str, name: str, tensor: torch.Tensor, *, indices: bool = False) -> Any:
    """A numpy (CPU) or CuPy (CUDA) view of ``tensor``'s memory, with its strides.

    ``op`` and ``name`` label the error raised for a tensor fastnn cannot run: a dtype other
    than float32/float64 (or an integer dtype when ``indices``) is a ``TypeError``.
    """
    if type(tensor) in _PLAIN_TENSORS and not indices and tensor.is_cpu:
        if tensor.dtype in FLOAT_DTYPES:
            # A view: numpy(force=True) detaches, and copies nothing for a CPU float tensor
            # (it would resolve conjugate/negative bits, which real tensors never carry).
            # About 1 us, against 3-4 us through __dlpack__.
            return tensor.numpy(force=True)
    _check(op, name, tensor, indices)  # the full check, off the common path
    tensor = tensor.detach()
    if tensor.device.type == "cpu":
        return np.from_dlpack(tensor)
    return _cupy().from_dlpack(tensor)


def optional_array(op: str, name: str, tensor: torch.Tensor | None) -> Any:
    """:func:`to_array` for an optional argument (a bias): None stays None."""
    return None if tensor is None else to_array(op, name, tensor)


def to_tensor(array: Any) -> torch.Tensor:
    """A tensor sharing the memory of fastnn's result ``array`` (numpy or CuPy)."""
    if type(array) is np.ndarray and min(array.strides, default=0) >= 0:
        if array.flags.writeable:
            return torch.from_numpy(array)  # a view; cheaper than DLPack's round trip
        return torch.from_numpy(array.copy())  # a view would let torch write read-only memory
    if isinstance(array, np.generic):  # a 0-d result returned as a numpy scalar
        return torch.from_numpy(np.array(array))
    return torch.from_dlpack(array)


class _NoGradContext:
    """Stands in for autograd's ``ctx`` when a Function runs without recording a graph:
    saving is a no-op, and tensors marked dirty get their version bumped as autograd
    would (so in-place results still invalidate tensors saved elsewhere)."""

    needs_input_grad: tuple[bool, ...] = ()

    def save_for_backward(self, *tensors: Any) -> None:
        pass

    def mark_non_differentiable(self, *tensors: Any) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def mark_dirty(self, *tensors: torch.Tensor) -> None:
        for tensor in tensors:
            torch.autograd.graph.increment_version(tensor)


def apply_function(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)``, or, when no gradient can flow (grad mode off, or no
    tensor argument requires grad), ``function.forward`` directly: autograd's bookkeeping
    costs ~5-10 us a call, which inference of small layers notices."""
    if torch.is_grad_enabled():
        for arg in args:
            if type(arg) in _PLAIN_TENSORS or isinstance(arg, torch.Tensor):
                if arg.requires_grad:
                    return function.apply(*args)
    return function.forward(_NoGradContext(), *args)


def run_op(
    op: str,
    fn: Any,
    scope: torch.Tensor,
    tensors: dict[str, torch.Tensor | None],
    *args: Any,
    optional: tuple[str, ...] = (),
    indices: tuple[str, ...] = (),
    keywords: dict[str, torch.Tensor | None] | None = None,
    **kwargs: Any,
) -> Any:
    """``fn(*arrays, *args, **kwargs)`` under ``scope``'s :func:`device_scope`: ``arrays``
    are the :func:`to_array` views of ``tensors`` (in order; the keys name them in ``op``'s
    errors; those named in ``optional`` may be None), and each of ``keywords`` (None
    passes as None) goes in as the keyword of its name.  The tensors named in ``indices``
    hold integers.  The result comes back as a tensor, or a tuple of tensors (a None in
    it, an output not computed, stays None)."""
    with device_scope(scope):
        arrays = [
            optional_array(op, name, tensor)
            if name in optional
            else to_array(op, name, tensor, indices=name in indices)
            for name, tensor in tensors.items()
        ]
        for name, tensor in (keywords or {}).items():
            kwargs[name] = (
                None if tensor is None else to_array(op, name, tensor, indices=name in indices)
            )
        result = fn(*arrays, *args, **kwargs)
        if isinstance(result, tuple):
            return tuple(None if r is None else to_tensor(r) for r in result)
        return to_tensor(result)


def device_scope(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """Where fastnn should run for ``tensor``: nothing to do on the CPU; on CUDA the
    tensor's device and torch's current stream on it, entered in CuPy."""
    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cuda":
        return _CPU_SCOPE  # (not a tensor: to_array raises the TypeError)
    return _cuda_scope(tensor.device)


@contextlib.contextmanager
def _cuda_scope(device: torch.device):
    cupy = _cupy()
    stream = torch.cuda.current_stream(device)
    with cupy.cuda.Device(stream.device_index), cupy.cuda.ExternalStream(stream.cuda_stream):
        yield
