"""Losses: MSELoss, BCELoss, CrossEntropyLoss.

``loss(input, target)`` returns the loss (a 0-d array, or per-element values with
``reduction="none"``) and remembers its arguments; ``loss.backward()`` returns the
gradient with respect to ``input``, ready for ``model.backward``.
"""

from __future__ import annotations

from typing import Any

import fastnn
from fastnn import validate
from fastnn.nn.module import Module

__all__ = ["BCELoss", "CrossEntropyLoss", "MSELoss"]


class _Loss(Module):
    _per_row = False  # one loss per row of the input (cross-entropy), not per element
    _forward_op: Any = None
    _backward_op: Any = None

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = validate.reduction_name(type(self).__name__, reduction)
        self._input: Any = None
        self._target: Any = None

    def forward(self, input: Any, target: Any) -> Any:
        loss = self._forward_op(input, target, self.reduction)
        self._input, self._target = input, target
        return loss

    def backward(self, grad: Any = None, *, need_input_grad: bool = True) -> Any:
        """d loss / d input, times ``grad`` (the gradient with respect to the loss: a
        number, or an array of the loss's shape for ``reduction="none"``; default 1)."""
        self._forward_ran(self._input)
        if not need_input_grad:
            return None
        reduction = "sum" if self.reduction == "none" else self.reduction
        result = self._backward_op(self._input, self._target, reduction)
        if grad is None:
            return result
        if hasattr(grad, "shape"):  # an array: match the dtype, and the rows for CE
            grad = grad.astype(result.dtype, copy=False)
            if self._per_row and self.reduction == "none" and grad.ndim == 1:
                grad = grad.reshape(-1, 1)
        return result * grad

    def _reset_cache(self) -> None:
        self._input = self._target = None

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error ``(input - target)^2``, averaged over every element."""

    _forward_op = staticmethod(fastnn.mse_loss)
    _backward_op = staticmethod(fastnn.mse_loss_backward)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against targets in
    [0, 1] (put a Sigmoid before it)."""

    _forward_op = staticmethod(fastnn.binary_cross_entropy)
    _backward_op = staticmethod(fastnn.binary_cross_entropy_backward)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C) against integer class indices (N,); softmax is
    included, so the model ends with a Linear layer."""

    _per_row = True
    _forward_op = staticmethod(fastnn.cross_entropy)
    _backward_op = staticmethod(fastnn.cross_entropy_backward)
