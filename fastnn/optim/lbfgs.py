"""L-BFGS through ``scipy.optimize.minimize`` for small full-batch problems.

The parameters are gathered into one float64 vector on the host; SciPy's L-BFGS-B runs
its quasi-Newton iterations and line searches, asking for the loss and gradient at each
trial point through the closure.  Every evaluation copies the vector into the
parameters (and back to their device) and the gradients out, so this suits models
whose full-batch loss fits in one call: logistic regression, small MLPs, PINNs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fastnn.nn._array import to_like, to_numpy
from fastnn.nn.parameter import Parameter
from fastnn.optim._checks import check_nonnegative

__all__ = ["LBFGS"]


class LBFGS:
    """Limited-memory BFGS, run by SciPy.

    ``step(closure)`` minimises for up to ``max_iter`` iterations (``max_eval`` loss
    evaluations, default ``1.25 * max_iter``), keeping ``history_size`` correction pairs;
    it stops early when the largest gradient entry is below ``tolerance_grad`` or the
    relative change of the loss below ``tolerance_change``.  The closure must clear the
    gradients, compute the loss, run backward and return the loss::

        def closure():
            model.zero_grad()
            loss = criterion(model(x), y)
            model.backward(criterion.backward())
            return loss

    ``step`` returns the final loss; SciPy's full result is in ``self.result``.
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        max_iter: int = 100,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 10,
    ) -> None:
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("LBFGS: got an empty parameter list")
        for param in self.params:
            if not isinstance(param, Parameter):
                raise TypeError(f"LBFGS: expected Parameter objects, got {type(param).__name__}")
        self.max_iter = _positive_int("max_iter", max_iter)
        self.max_eval = (
            _positive_int("max_eval", max_eval) if max_eval is not None else self.max_iter * 5 // 4
        )
        self.history_size = _positive_int("history_size", history_size)
        self.tolerance_grad = check_nonnegative("LBFGS", "tolerance_grad", tolerance_grad)
        self.tolerance_change = check_nonnegative("LBFGS", "tolerance_change", tolerance_change)
        self.result: Any = None

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    def _vector(self) -> np.ndarray:
        return np.concatenate([to_numpy(p.data).ravel().astype(np.float64) for p in self.params])

    def _assign(self, vector: np.ndarray) -> None:
        offset = 0
        for param in self.params:
            size = param.size
            values = vector[offset : offset + size].reshape(param.shape)
            param.data[...] = to_like(values, param.data)
            offset += size

    def _gradient(self) -> np.ndarray:
        parts = []
        for param in self.params:
            if param.grad is None:
                parts.append(np.zeros(param.size))
            else:
                parts.append(to_numpy(param.grad).ravel().astype(np.float64))
        return np.concatenate(parts)

    def step(self, closure: Callable[[], Any]) -> float:
        """Minimise the closure's loss; returns the final loss."""
        from scipy.optimize import minimize

        if not callable(closure):
            raise TypeError("LBFGS.step needs a closure that returns the loss")

        def evaluate(vector: np.ndarray) -> tuple[float, np.ndarray]:
            self._assign(vector)
            loss = float(to_numpy(closure()))
            return loss, self._gradient()

        self.result = minimize(
            evaluate,
            self._vector(),
            jac=True,
            method="L-BFGS-B",
            options={
                "maxiter": self.max_iter,
                "maxfun": self.max_eval,
                "maxcor": self.history_size,
                "gtol": self.tolerance_grad,
                "ftol": self.tolerance_change,
            },
        )
        self._assign(self.result.x)
        return float(self.result.fun)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"LBFGS: {name} must be a positive int, got {value!r}")
    return int(value)
