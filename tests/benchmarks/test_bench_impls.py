"""The benchmark's peer implementations compute what fastnn computes.

A benchmark that times a wrong peer is meaningless, so every peer implementation
(NumPy, SciPy, PyTorch) of every case of the "tiny" suite (odd sizes, stride, padding,
dilation, an empty batch) is run once and compared with fastnn's float64 reference
backend.  fastnn's own kernels are tested against the reference by their own test files.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.bench.case import REFERENCE, is_subject, prepare, to_numpy
from fastnn.bench.catalog import build_cases
from fastnn.bench.peers import detect
from tests.utils import assert_close

CASES = build_cases("tiny", detect())


def _flatten(result) -> list[np.ndarray]:
    """Every array in a (nested) result, in order, as float64."""
    if isinstance(result, (tuple, list)):
        return [a for part in result for a in _flatten(part)]
    return [np.asarray(result, dtype=np.float64)]


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_every_peer_matches_the_reference(case):
    data = case.data(np.random.default_rng(0))
    want = _flatten(to_numpy(prepare(_impl(case, REFERENCE), data, case.updates_inputs)()))
    peers = [i for i in case.impls if i.name != REFERENCE and not is_subject(i.name)]
    assert peers, f"{case.key} has no peer to compare with"
    for impl in peers:
        got = _flatten(to_numpy(prepare(impl, data, case.updates_inputs)()))
        assert len(got) == len(want), f"{impl.name}: {len(got)} outputs, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, np.float32, rtol=1e-4, what=f"{case.key} {impl.name} output {i}")


def _impl(case, name):
    return next(i for i in case.impls if i.name == name)


def test_tiny_suite_covers_every_family_and_the_empty_batch():
    from fastnn.bench.catalog import DEFAULT_FAMILIES

    assert {c.family for c in CASES} == set(DEFAULT_FAMILIES)
    assert any(c.params.get("input", (1,))[0] == 0 for c in CASES), "no N = 0 case"


SWEEP = build_cases("tiny", detect(), ["sweep"])


def test_sweep_is_run_only_when_named_and_covers_every_op_family():
    """The sweep re-runs each op family's own cases over a grid; it keeps fastnn's fast
    backends, torch, and NumPy for the products, and stays within its size caps."""
    from fastnn.bench import cases_sweep

    assert SWEEP and all(c.family == "sweep" for c in SWEEP)
    assert "sweep" not in {c.family for c in CASES}
    kinds = {c.shape.split(":")[0] for c in SWEEP}
    assert kinds == {"gemm", "linear", "activation", "loss", "pool", "conv2d", "sensitivity"}
    ops = {c.op for c in SWEEP}
    assert {"conv2d_backward", "max_pool2d_backward", "cross_entropy_backward"} <= ops
    for case in SWEEP:
        names = {i.name for i in case.impls}
        assert REFERENCE not in names and any(is_subject(n) for n in names), case.key
        assert ("numpy" in names) == case.shape.startswith(("gemm:", "linear:")), case.key
        assert case.bytes <= cases_sweep.MAX_BYTES and case.flops <= cases_sweep.MAX_FLOPS
    full = build_cases("full", detect(), ["sweep"])
    assert len(full) > 4 * len(SWEEP)
    assert {c.shape.split(":")[0] for c in full} >= kinds | {"conv1d"}


def test_training_step_updates_the_parameters_in_place():
    case = next(c for c in CASES if c.family == "train")
    data = case.data(np.random.default_rng(0))
    before = data["w1"].copy()
    from fastnn.bench.case import move

    assert case.updates_inputs
    moved = move(data, "numpy", copy=True)
    _impl(case, REFERENCE).call(moved)
    assert not np.array_equal(moved["w1"], before), "SGD did not change w1"
    assert np.array_equal(data["w1"], before), "the case's own arrays must stay untouched"
