"""Argument helpers shared by the fastnn.jax families: arrays, static parameters, checks."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

import fastnn
from fastnn import _args
from fastnn._threads import adaptive_teams
from fastnn.jax._kernel import stand_in

__all__ = ["arrays", "check_floats", "static", "team_sizes", "threads_attr"]


def static(value: Any) -> Any:
    """``value`` made hashable (lists become tuples, recursively), so that it can key the
    cache of jitted kernels; other values pass unchanged (fastnn's checks judge them)."""
    if isinstance(value, list | tuple):
        return tuple(static(v) for v in value)
    return value


def arrays(*values: Any) -> list[Any]:
    """Each value as a jax array (None stays None); no copy for jax arrays and tracers."""
    return [None if v is None else jnp.asarray(v) for v in values]


def threads_attr() -> np.int32:
    """The C handler's ``threads`` attribute, read at trace time: fastnn's thread count as
    a cap each call lowers while other processes keep the CPUs busy (fastnn's adaptive
    teams, decided in C per call), or its negative when adaptive teams are off (exactly
    that many)."""
    cap = fastnn.get_num_threads()
    return np.int32(cap if adaptive_teams() else -cap)


def team_sizes() -> list[int]:
    """The team sizes a call may run with (see :func:`threads_attr`), smallest first."""
    cap = fastnn.get_num_threads()
    return list(range(1, cap + 1)) if adaptive_teams() and cap > 1 else [cap]


def check_floats(op: str, named: dict[str, Any]) -> None:
    """fastnn's dtype checks (float32/float64, one dtype for all) on jax values, at trace
    time: the same TypeError as fastnn's ops."""
    stand_ins = {k: None if v is None else stand_in(v) for k, v in named.items()}
    _args.float_arrays(op, stand_ins, optional=tuple(named))
