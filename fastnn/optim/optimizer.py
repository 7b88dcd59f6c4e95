"""Optimizer: the base class of the first-order optimizers (parameter groups, state,
``step``, ``zero_grad``).

Subclasses name their hyperparameters and defaults (their ``__init__`` arguments, see
:meth:`Optimizer._options`), give ``_HYPER``, the hyperparameter dataclass of their update
op (``fastnn.SGDHyper`` ...; building it checks them), or override ``_hyper(group)`` where
the options are not its fields, and implement ``_update(param, group, state, hyper)`` with
one call of their fused update op (``fastnn.sgd_update`` ...), which runs on the
parameters' device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fastnn.nn._array import namespace, to_like, to_numpy
from fastnn.nn.parameter import Parameter

__all__ = ["Optimizer"]


class Optimizer:
    """Parameters are given as an iterable of :class:`Parameter` (``model.parameters()``)
    or as a list of groups, ``[{"params": [...], "lr": 0.1}, ...]``, whose options
    override the defaults for their parameters (as in ``torch.optim``).

    Per-parameter state (moment estimates, step counts) lives in ``self.state[param]``, on
    the parameter's device, created at the parameter's first update.
    """

    #: The hyperparameter dataclass of the update op, whose fields are options of the same
    #: names (None: the subclass overrides :meth:`_hyper`).
    _HYPER: type | None = None

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        # id(group) -> (the group's option values, their hyperparameter dataclass)
        self._hypers: dict[int, tuple[tuple, Any]] = {}
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
        """Validate a group's hyperparameters; raise ValueError/TypeError naming the
        optimizer and the field."""
        try:
            self._hyper(group)
        except (TypeError, ValueError) as exc:
            name = type(self).__name__
            message = str(exc)
            prefixed = message if message.startswith(name + ":") else f"{name}: {message}"
            raise type(exc)(prefixed) from None

    @staticmethod
    def _options(arguments: dict[str, Any]) -> dict[str, Any]:
        """The defaults of a subclass given the ``locals()`` of its ``__init__`` taken
        first thing: every argument but ``self`` and ``params``, in order."""
        skip = {"self", "params", "__class__"}  # __class__: the cell behind super()
        return {name: value for name, value in arguments.items() if name not in skip}

    def _hyper(self, group: dict[str, Any]) -> Any:
        """The group's options as its update op's hyperparameter dataclass: each field of
        ``_HYPER`` from the option of that name (subclasses may override)."""
        if self._HYPER is None:
            raise NotImplementedError
        return self._HYPER(**{f.name: group[f.name] for f in dataclasses.fields(self._HYPER)})

    def _update(
        self, param: Parameter, group: dict[str, Any], state: dict[str, Any], hyper: Any
    ) -> None:
        """Update one parameter in place; ``hyper`` is ``_hyper(group)``."""
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
            hyper = None
            for param in group["params"]:
                if param.grad is None or not param.requires_grad:
                    continue
                if hyper is None:
                    hyper = self._group_hyper(group)
                self._update(param, group, self.state.setdefault(param, {}), hyper)
        return loss

    def _group_hyper(self, group: dict[str, Any]) -> Any:
        """``_hyper(group)``, rebuilt (and so checked) only when the group's options have
        changed since the last step (a learning-rate schedule changes ``lr``)."""
        values = tuple(group[key] for key in self.defaults)
        cached = self._hypers.get(id(group))
        if cached is None or cached[0] != values:
            cached = (values, self._hyper(group))
            self._hypers[id(group)] = cached
        return cached[1]

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, to checkpoint and resume training (as in PyTorch):
        ``{"state": {index: {name: value}}, "param_groups": [{options, "params":
        [index, ...]}]}``, parameters numbered in group order.  Arrays are copies."""
        index = self._indices()
        state = {
            index[id(param)]: {k: v.copy() if hasattr(v, "shape") else v for k, v in s.items()}
            for param, s in self.state.items()
        }
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [index[id(p)] for p in g["params"]],
            }
            for g in self.param_groups
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and state saved by :meth:`state_dict` from an optimizer over
        parameters of the same shapes, in the same groups; arrays are converted to each
        parameter's device and dtype."""
        name = type(self).__name__
        groups = state_dict.get("param_groups") if isinstance(state_dict, dict) else None
        if groups is None or "state" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected 'state' and 'param_groups'")
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(
                f"{name}.load_state_dict: the saved groups hold "
                f"{[len(g['params']) for g in groups]} parameters, this optimizer's "
                f"{[len(g['params']) for g in self.param_groups]}"
            )
        params = [p for g in self.param_groups for p in g["params"]]
        for index, saved in state_dict["state"].items():
            param = params[int(index)]
            for key, value in saved.items():
                if hasattr(value, "shape") and tuple(value.shape) != param.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: state {key!r} of parameter {index} has "
                        f"shape {tuple(value.shape)}, the parameter {param.shape}"
                    )
        for group, saved in zip(self.param_groups, groups):
            options = {k: v for k, v in saved.items() if k != "params"}
            self._check_group({**group, **options})
            group.update(options)
        self.state = {}
        for index, saved in state_dict["state"].items():
            param = params[int(index)]
            self.state[param] = {
                key: to_like(np.array(to_numpy(value)), param.data)
                if hasattr(value, "shape")
                else value
                for key, value in saved.items()
            }

    def _indices(self) -> dict[int, int]:
        params = [p for g in self.param_groups for p in g["params"]]
        return {id(p): i for i, p in enumerate(params)}

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
