"""Module: the base class of every layer and model.

A module computes ``forward(x)``, remembers what its gradient needs, and in
``backward(grad)`` turns the gradient of the loss with respect to its output into

- the gradients of its parameters, added to ``param.grad``, and
- the gradient with respect to its input, which it returns (or None when called with
  ``need_input_grad=False``, which lets the first layer of a model skip that work).

Parameters, sub-modules and buffers are found from the module's attributes, in the order
they were assigned: an attribute holding a :class:`Parameter` is a parameter, one holding a
:class:`Module` is a child, and :meth:`register_buffer` declares non-trained state (batch
norm's running statistics).  Names in :meth:`state_dict` are dotted paths such as
``"features.0.weight"``, the same as PyTorch's for the same model structure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from fastnn import array_kind
from fastnn.nn._array import check_device, device_of, to_device, to_like, to_numpy
from fastnn.nn.parameter import Parameter

__all__ = ["Module"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Module:
    """Base class of layers and models (see the module docstring)."""

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: list[str] = []

    # ------------------------------------------------------------------ computing

    def forward(self, *inputs: Any) -> Any:
        """Compute the output and remember what ``backward`` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def _forward_ran(self, saved: Any) -> None:
        """Raise the error of a backward called before its forward (``saved``, what the
        forward keeps for the backward, is still None)."""
        if saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        """Gradient of the loss with respect to the input of the last ``forward``, given the
        gradient with respect to its output; parameter gradients are added to
        ``param.grad``."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *inputs: Any) -> Any:
        return self.forward(*inputs)

    def register_grad_ready_hook(self, hook: Callable[[Module], None]) -> Callable[[], None]:
        """Call ``hook(self)`` each time this module's ``backward`` returns: its own
        parameters' gradients are then complete for that backward (fastnn.distributed
        starts a bucket's allreduce from here).  Returns a function that removes the hook.

        A module without hooks keeps its class's ``backward`` untouched (no cost); the
        first hook wraps ``backward`` on this instance only."""
        if not callable(hook):
            raise TypeError(f"register_grad_ready_hook: hook must be callable, got {hook!r}")
        hooks: list[Callable[[Module], None]] | None = self.__dict__.get("_grad_ready_hooks")
        if hooks is None:
            hooks = []
            unhooked = type(self).backward

            def backward(grad: Any, *, need_input_grad: bool = True) -> Any:
                result = unhooked(self, grad, need_input_grad=need_input_grad)
                for ready in tuple(hooks):
                    ready(self)
                return result

            self.__dict__["_grad_ready_hooks"] = hooks
            self.__dict__["backward"] = backward

        hooks.append(hook)

        def remove() -> None:
            if hook in hooks:
                hooks.remove(hook)
            if not hooks and self.__dict__.get("_grad_ready_hooks") is hooks:
                del self.__dict__["_grad_ready_hooks"], self.__dict__["backward"]

        return remove

    # ------------------------------------------------------------------ structure

    def register_buffer(self, name: str, value: Any) -> None:
        """Declare ``name`` as non-trained state saved in the state dict (an array on the
        module's device, or a Python int such as a step counter)."""
        setattr(self, name, value)
        if name not in self._buffer_names:
            self._buffer_names.append(name)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct sub-modules with their attribute names."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every sub-module, depth first, with their dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def _own_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield name, value

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted name; a shared parameter appears once."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, param in module._own_parameters():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self) -> list[Parameter]:
        """Every parameter, in the order of :meth:`named_parameters`."""
        return [param for _, param in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        for prefix, module in self.named_modules():
            for name in module._buffer_names:
                yield (f"{prefix}.{name}" if prefix else name), getattr(module, name)

    def num_parameters(self) -> int:
        """The number of trainable values."""
        return sum(param.size for param in self.parameters())

    # ------------------------------------------------------------------ modes

    def train(self, mode: bool = True) -> Module:
        """Training mode (batch statistics, active dropout) for this module and its
        children; ``train(False)`` is :meth:`eval`."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: batch norm uses its running statistics, dropout is off."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``)."""
        for param in self.parameters():
            param.grad = None

    # ------------------------------------------------------------------ devices, dtypes

    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move parameters and buffers to ``device`` ("cpu" or "cuda") and/or convert them
        to ``dtype`` (float32 or float64), in place; returns the module.

        "cuda" needs CuPy and a GPU; without them this raises RuntimeError with the reason
        ``fastnn.backends()`` gives.  Gradients are dropped; create optimizers after
        moving (their state lives where the parameters were).
        """
        if device is not None:
            device = check_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype not in _FLOAT_DTYPES:
                raise TypeError(f"to: dtype must be float32 or float64, got {dtype}")
        for module in self.modules():
            for _, param in module._own_parameters():
                param.data = _convert(param.data, device, dtype)
                param.grad = None
            for name in module._buffer_names:
                value = getattr(module, name)
                if array_kind(value) is not None:
                    float_dtype = dtype if value.dtype.kind == "f" else None
                    setattr(module, name, _convert(value, device, float_dtype))
            module._reset_cache()
        return self

    def _reset_cache(self) -> None:
        """Drop whatever forward remembered for backward (after moving the module)."""

    @property
    def device(self) -> str:
        """The device of the first parameter ("cpu" when there is none)."""
        for param in self.parameters():
            return device_of(param.data)
        return "cpu"

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Copies of every parameter and buffer, by dotted name, on the module's device.
        Integer buffers (batch norm's ``num_batches_tracked``) are 0-d int64 numpy arrays.
        A parameter shared by two layers appears under both names (as in PyTorch)."""
        state: dict[str, Any] = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, param in module._own_parameters():
                state[dot + name] = param.data.copy()
            for name in module._buffer_names:
                value = getattr(module, name)
                if array_kind(value) is None:
                    value = np.asarray(value, dtype=np.int64)
                state[dot + name] = value.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Module:
        """Copy values into the parameters and buffers, in place (optimizers keep working).

        Values may be numpy or cupy arrays, or anything ``numpy.asarray`` accepts (a CPU
        torch tensor, for instance); they are converted to each parameter's device and
        dtype.  With ``strict`` a missing or unexpected name raises ValueError; a shape
        mismatch always does.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a mapping, got {type(state).__name__}")
        targets = self._state_targets()
        if strict:
            missing = [name for name in targets if name not in state]
            unexpected = [name for name in state if name not in targets]
            if missing or unexpected:
                raise ValueError(
                    f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
                )
        for name, (module, attr) in targets.items():
            if name not in state:
                continue
            value = state[name]
            current = getattr(module, attr)
            current_array = current.data if isinstance(current, Parameter) else current
            if array_kind(current_array) is None:  # an integer counter
                setattr(module, attr, int(np.asarray(to_numpy(_host(value)))))
                continue
            value = _host(value)
            if tuple(value.shape) != tuple(current_array.shape):
                raise ValueError(
                    f"load_state_dict: {name} has shape {tuple(current_array.shape)} in the "
                    f"model but {tuple(value.shape)} in the state dict"
                )
            current_array[...] = to_like(value, current_array)
        return self

    def _state_targets(self) -> dict[str, tuple[Module, str]]:
        targets: dict[str, tuple[Module, str]] = {}
        for prefix, module in self.named_modules():
            dot = f"{prefix}." if prefix else ""
            for name, _ in module._own_parameters():
                targets[dot + name] = (module, name)
            for name in module._buffer_names:
                targets[dot + name] = (module, name)
        return targets

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict to an ``.npz`` file (arrays copied to the host)."""
        arrays = {name: to_numpy(value) for name, value in self.state_dict().items()}
        with open(path, "wb") as handle:  # np.savez would append ".npz" to a str path
            np.savez(handle, **arrays)

    def load(self, path: str | os.PathLike, strict: bool = True) -> Module:
        """Read a state dict written by :meth:`save` and load it."""
        with np.load(path, allow_pickle=False) as data:
            return self.load_state_dict({name: data[name] for name in data.files}, strict)

    # ------------------------------------------------------------------ printing

    def extra_repr(self) -> str:
        """The arguments shown between the parentheses of ``repr``."""
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


def _convert(x: Any, device: str | None, dtype: Any) -> Any:
    target = device if device is not None else device_of(x)
    return to_device(x, target, dtype)


def _host(value: Any) -> Any:
    """numpy/cupy arrays as they are; anything else (torch tensors, lists) via numpy."""
    if array_kind(value) is not None:
        return value
    if hasattr(value, "detach"):  # a torch tensor that requires grad
        value = value.detach()
    if hasattr(value, "cpu"):
        value = value.cpu()
    return np.asarray(value)
