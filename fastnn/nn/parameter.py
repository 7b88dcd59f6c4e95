"""Parameter: a trainable array and the gradient that ``backward`` leaves for it."""

from __future__ import annotations

from typing import Any

from fastnn import array_kind

__all__ = ["Parameter"]


class Parameter:
    """A trainable array (``data``) and its gradient (``grad``).

    ``grad`` is None until a layer's ``backward`` fills it; a second backward before
    ``zero_grad()`` adds to it (as in PyTorch), so a layer used twice gets the sum of both
    gradients.  Optimizers update ``data`` in place, so references to the array (the
    optimizer's, a state dict's) stay valid.  With ``requires_grad=False`` the layers skip
    computing the gradient and optimizers leave the parameter alone (freezing).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if array_kind(data) not in ("numpy", "cupy"):
            raise TypeError(
                f"Parameter: data must be a numpy or cupy array, got {type(data).__name__}"
            )
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be a float array, got dtype {data.dtype}")
        self.data = data
        self.grad: Any = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def accumulate(self, grad: Any) -> None:
        """Add ``grad`` (a new array from a backward op) to ``self.grad``."""
        if grad is None or not self.requires_grad:
            return
        self.grad = grad if self.grad is None else self.grad + grad

    def __repr__(self) -> str:
        where = "cpu" if array_kind(self.data) == "numpy" else "cuda"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={where!r})"
