"""Adagrad: per-element step sizes shrinking with the sum of past squared gradients."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastnn
from fastnn.optim._checks import check_nonnegative
from fastnn.optim.optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """``s += g^2``; ``param -= lr_t * g / (sqrt(s) + eps)`` with
    ``lr_t = lr / (1 + (t - 1) * lr_decay)``; ``s`` starts at
    ``initial_accumulator_value`` (PyTorch's Adagrad)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(
            "Adagrad", "initial_accumulator_value", group["initial_accumulator_value"]
        )

    def _hyper(self, group: dict[str, Any]) -> fastnn.AdagradHyper:
        # the hyperparameters of the update; initial_accumulator_value only starts the state
        return fastnn.AdagradHyper(
            lr=group["lr"], lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=group["maximize"],
        )  # fmt: skip

    def _update(self, param, group, state, hyper: fastnn.AdagradHyper) -> None:
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = self._zeros(param)
            state["sum"][...] = group["initial_accumulator_value"]
        state["step"] += 1
        fastnn.adagrad_update(param.data, param.grad, state["sum"], hyper=hyper, step=state["step"])
