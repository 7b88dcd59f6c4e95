"""Argument helpers shared by the fastnn.jax families: arrays, static parameters, checks."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from fastnn import _args
from fastnn.jax._kernel import stand_in

__all__ = ["arrays", "check_floats", "static"]


def static(value: Any) -> Any:
    """``value`` made hashable (lists become tuples, recursively), so that it can key the
    cache of jitted kernels; other values pass unchanged (fastnn's checks judge them)."""
    if isinstance(value, list | tuple):
        return tuple(static(v) for v in value)
    return value


def arrays(*values: Any) -> list[Any]:
    """Each value as a jax array (None stays None); no copy for jax arrays and tracers."""
    return [None if v is None else jnp.asarray(v) for v in values]


def check_floats(op: str, named: dict[str, Any]) -> None:
    """fastnn's dtype checks (float32/float64, one dtype for all) on jax values, at trace
    time: the same TypeError as fastnn's ops."""
    stand_ins = {k: None if v is None else stand_in(v) for k, v in named.items()}
    _args.float_arrays(op, stand_ins, optional=tuple(named))
