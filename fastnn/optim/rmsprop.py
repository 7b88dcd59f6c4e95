"""RMSprop: steps scaled by a running average of squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnn.optim import functional as F
from fastnn.optim._checks import check_flag, check_nonnegative
from fastnn.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """``v = alpha v + (1 - alpha) g^2``; ``param -= lr g / (sqrt(v) + eps)``.  ``centered``
    subtracts the squared running mean of g from v; ``momentum`` accumulates the scaled
    steps in a buffer (PyTorch's RMSprop)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            check_nonnegative("RMSprop", name, group[name])
        check_flag("RMSprop", "centered", group["centered"])
        check_flag("RMSprop", "maximize", group["maximize"])

    def _update(self, param, group, state) -> None:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros(param)
            if group["centered"]:
                state["grad_avg"] = self._zeros(param)
            if group["momentum"] > 0:
                state["momentum_buffer"] = self._zeros(param)
        state["step"] += 1
        F.rmsprop_update(
            param.data,
            param.grad,
            state["square_avg"],
            state.get("grad_avg"),
            state.get("momentum_buffer"),
            lr=group["lr"],
            alpha=group["alpha"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            momentum=group["momentum"],
            centered=group["centered"],
            maximize=group["maximize"],
        )
