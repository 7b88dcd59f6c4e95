"""Optimizer: the base class of the first-order optimizers (parameter groups, state,
``step``, ``zero_grad``).

Subclasses name their hyperparameters and defaults, check them, and implement
``_update(param, group, state)`` with one call of their fused update op
(fastnn/optim/functional.py), which runs on the parameters' device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastnn.nn._array import namespace
from fastnn.nn.parameter import Parameter

__all__ = ["Optimizer"]


class Optimizer:
    """Parameters are given as an iterable of :class:`Parameter` (``model.parameters()``)
    or as a list of groups, ``[{"params": [...], "lr": 0.1}, ...]``, whose options
    override the defaults for their parameters (as in ``torch.optim``).

    Per-parameter state (moment estimates, step counts) lives in ``self.state[param]``, on
    the parameter's device, created at the parameter's first update.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Parameter, dict)):
            params = [params]
        items = list(params)
        if not items:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = items if isinstance(items[0], dict) else [{"params": items}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add parameters with their own options (missing options take the defaults)."""
        name = type(self).__name__
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for param in params:
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"{name}: expected fastnn.nn.Parameter objects, got {type(param).__name__}"
                )
        known = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or known & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears more than once")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{name}: unknown options {sorted(unknown)}")
        full = {**self.defaults, **group, "params": params}
        self._check_group(full)
        self.param_groups.append(full)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate a group's hyperparameters (subclasses); raise ValueError/TypeError."""

    def _update(self, param: Parameter, group: dict[str, Any], state: dict[str, Any]) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``grad = None``)."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient, in place.  ``closure`` (optional)
        recomputes the loss and the gradients first; its result is returned."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None or not param.requires_grad:
                    continue
                self._update(param, group, self.state.setdefault(param, {}))
        return loss

    @staticmethod
    def _zeros(param: Parameter) -> Any:
        """A zero state array like the parameter (its device, dtype, C order)."""
        return namespace(param.data).zeros(param.data.shape, dtype=param.data.dtype)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            options = ", ".join(f"{k}={v!r}" for k, v in group.items() if k != "params")
            lines.append(f"  group {index}: {len(group['params'])} parameters, {options}")
        return "\n".join(lines) + "\n)"
