"""Adam, AMSGrad and AdamW."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import fastnn
from fastnn.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adaptive moment estimation: running means of g and g^2 with bias correction,
    ``param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.
    ``amsgrad`` uses the running maximum of v; ``weight_decay`` is L2 (added to g) unless
    ``decoupled_weight_decay`` (AdamW: ``param *= 1 - lr * weight_decay``).  PyTorch's Adam;
    one fused kernel per parameter and step."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        super().__init__(params, self._options(locals()))

    def _hyper(self, group: dict[str, Any]) -> fastnn.AdamHyper:
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            name = type(self).__name__
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        return fastnn.AdamHyper(
            lr=group["lr"], beta1=betas[0], beta2=betas[1], eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
            decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"],
        )  # fmt: skip

    def _update(self, param, group, state, hyper: fastnn.AdamHyper) -> None:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros(param)
            state["exp_avg_sq"] = self._zeros(param)
            if hyper.amsgrad:
                state["max_exp_avg_sq"] = self._zeros(param)
        state["step"] += 1
        fastnn.adam_update(
            param.data, param.grad, state["exp_avg"], state["exp_avg_sq"],
            state.get("max_exp_avg_sq"), hyper=hyper, step=state["step"],
        )  # fmt: skip


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01), as ``torch.optim.AdamW``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )
