"""Adadelta: steps whose size is the ratio of running RMS of updates and of gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastnn.optim import functional as F
from fastnn.optim._checks import check_flag, check_nonnegative, check_range
from fastnn.optim.optimizer import Optimizer

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """``v = rho v + (1 - rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``;
    ``u = rho u + (1 - rho) d^2``; ``param -= lr d`` (PyTorch's Adadelta; the course
    notes' method with ``lr = 1``)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        for name in ("lr", "eps", "weight_decay"):
            check_nonnegative("Adadelta", name, group[name])
        check_range("Adadelta", "rho", group["rho"], 0.0, 1.0, closed=True)
        check_flag("Adadelta", "maximize", group["maximize"])

    def _update(self, param, group, state) -> None:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros(param)
            state["acc_delta"] = self._zeros(param)
        state["step"] += 1
        F.adadelta_update(
            param.data,
            param.grad,
            state["square_avg"],
            state["acc_delta"],
            lr=group["lr"],
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
        )
