"""Every benchmark case of a suite, in report order.  Building cases allocates nothing:
arrays are made by ``case.data`` when a case runs."""

from __future__ import annotations

from collections.abc import Iterable

from fastnn.bench import (
    cases_activation,
    cases_backprop,
    cases_conv,
    cases_dense,
    cases_dispatch,
    cases_loss,
    cases_pool,
    cases_sweep,
)
from fastnn.bench.building import Context
from fastnn.bench.case import FAMILIES, Case
from fastnn.bench.peers import Environment
from fastnn.bench.shapes import SUITES

__all__ = ["DEFAULT_FAMILIES", "FAMILIES", "build_cases"]

_BUILDERS = (
    cases_dispatch,
    cases_dense,
    cases_conv,
    cases_pool,
    cases_activation,
    cases_loss,
    cases_backprop,
    cases_sweep,
)

#: The families run when none are named: all but the sweep, which re-runs every op over
#: a grid of shapes (``--families sweep``, or bench/scripts/sweep.py).
DEFAULT_FAMILIES = tuple(f for f in FAMILIES if f != "sweep")

#: Longest estimated reference-backend call that each suite still times, in seconds.
_REFERENCE_MAX_SECONDS = {"tiny": 1.0, "quick": 0.5, "full": 5.0}


def build_cases(suite: str, env: Environment, families: Iterable[str] | None = None) -> list[Case]:
    """The cases of ``suite`` ("tiny", "quick" or "full") whose family is in
    ``families`` (default: :data:`DEFAULT_FAMILIES`), ordered as in :data:`FAMILIES`."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    wanted = set(DEFAULT_FAMILIES if families is None else families)
    unknown = wanted - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown families {sorted(unknown)}; expected some of {FAMILIES}")
    ctx = Context(suite, env, reference_max_seconds=_REFERENCE_MAX_SECONDS[suite])
    found = [case for builder in _BUILDERS for case in builder.cases(ctx)]
    found = [case for case in found if case.family in wanted]
    return sorted(found, key=lambda case: FAMILIES.index(case.family))
