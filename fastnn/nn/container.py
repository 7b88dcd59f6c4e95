"""Sequential (layers one after another) and Residual (``body(x) + shortcut(x)``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastnn.nn.module import Module

__all__ = ["Residual", "Sequential"]


def _check_module(container: str, value: object) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{container}: expected a Module, got {type(value).__name__}")
    return value


class Sequential(Module):
    """Apply layers in order; ``backward`` runs them in reverse.  Layers are named "0",
    "1", ... in the state dict, as in PyTorch's ``nn.Sequential``.

    A layer remembers its last forward for its backward, so one layer object may appear
    only once per forward pass; to share weights, give two layers the same Parameter
    (``second.weight = first.weight``): their gradients add up in it."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self._layers: list[Module] = []
        for layer in layers:
            self.append(layer)

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end; returns the Sequential."""
        _check_module("Sequential", layer)
        if any(layer is existing for existing in self._layers):
            raise ValueError(
                "Sequential: the same layer object appears twice; create a second layer "
                "and share its Parameters instead"
            )
        self._layers.append(layer)
        return self

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for index, layer in enumerate(self._layers):
            yield str(index), layer

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def forward(self, x: Any) -> Any:
        for layer in self._layers:
            x = layer.forward(x)
        return x

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        last = len(self._layers) - 1
        for index in range(last, -1, -1):
            grad = self._layers[index].backward(grad, need_input_grad=need_input_grad or index > 0)
        return grad


class Residual(Module):
    """``y = body(x) + shortcut(x)``; the shortcut is the identity unless given (e.g. a
    1x1 convolution with batch norm when the body changes the shape).  The gradient flows
    through both branches and adds up at the input."""

    def __init__(self, body: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        self.body = _check_module("Residual", body)
        self.shortcut = None if shortcut is None else _check_module("Residual", shortcut)

    def forward(self, x: Any) -> Any:
        y = self.body.forward(x)
        skip = x if self.shortcut is None else self.shortcut.forward(x)
        if tuple(y.shape) != tuple(skip.shape):
            raise ValueError(
                f"Residual: the body's output shape {tuple(y.shape)} differs from the "
                f"shortcut's {tuple(skip.shape)}; give a shortcut that matches"
            )
        return y + skip

    def backward(self, grad: Any, *, need_input_grad: bool = True) -> Any:
        grad_body = self.body.backward(grad, need_input_grad=need_input_grad)
        if self.shortcut is None:
            grad_skip = grad
        else:
            grad_skip = self.shortcut.backward(grad, need_input_grad=need_input_grad)
        return grad_body + grad_skip if need_input_grad else None
