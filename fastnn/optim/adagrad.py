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

    # the options of the update; initial_accumulator_value only starts the state
    _HYPER = fastnn.AdagradHyper

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
        super().__init__(params, self._options(locals()))

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(
            "Adagrad", "initial_accumulator_value", group["initial_accumulator_value"]
        )

    def _update(self, param, group, state, hyper: fastnn.AdagradHyper) -> None:
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = self._zeros(param)
            state["sum"][...] = group["initial_accumulator_value"]
        state["step"] += 1
        fastnn.adagrad_update(param.data, param.grad, state["sum"], hyper=hyper, step=state["step"])
