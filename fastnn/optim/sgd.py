"""SGD with momentum, Nesterov momentum and weight decay (PyTorch's formulas)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnn.optim import functional as F
from fastnn.optim._checks import check_flag, check_nonnegative, check_range
from fastnn.optim.optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent: ``param -= lr * d``, where ``d`` is the gradient, or
    with ``momentum`` the velocity ``b = momentum * b + (1 - dampening) * g`` (``b = g`` at
    the first step), or with ``nesterov`` the look-ahead ``g + momentum * b``.
    ``weight_decay`` adds ``weight_decay * param`` to the gradient (L2 regularisation);
    ``maximize`` ascends instead.  One fused kernel per parameter and step."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        check_nonnegative("SGD", "lr", group["lr"])
        momentum = check_nonnegative("SGD", "momentum", group["momentum"])
        dampening = check_range("SGD", "dampening", group["dampening"], 0.0, 1.0, closed=True)
        check_nonnegative("SGD", "weight_decay", group["weight_decay"])
        check_flag("SGD", "maximize", group["maximize"])
        if check_flag("SGD", "nesterov", group["nesterov"]) and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening = 0")

    def _update(self, param, group, state) -> None:
        first = False
        if group["momentum"] > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = self._zeros(param)
            first = True
        F.sgd_update(
            param.data,
            param.grad,
            state.get("momentum_buffer"),
            lr=group["lr"],
            momentum=group["momentum"],
            dampening=group["dampening"],
            weight_decay=group["weight_decay"],
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            first_step=first,
        )
