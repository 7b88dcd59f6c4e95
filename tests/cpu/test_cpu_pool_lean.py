"""The lean path of the CPU pooling forwards (fastnn/_backends/cpu/pool_lean.py): a call
like one the checked path ran (same dtype, window arguments and flag) runs the backend
without checking again.  It must give the checked path's results, and every argument the
checks would reject must still reach them."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import _args, _dispatch
from fastnn._backends.cpu import pool_lean
from tests.utils import layouts


@pytest.fixture
def forget():
    fastnn.max_pool1d(np.zeros((1, 1, 2)), 1)  # the cpu backend loaded: its lean paths
    pool_lean.forgets()
    yield
    pool_lean.forgets()


def _checked_calls(monkeypatch) -> list:
    """Make the checked path record its use (its first check is float_array)."""
    calls: list = []
    real = _args.float_array
    monkeypatch.setattr(_args, "float_array", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _random_pooling(rng, nd: int, kind: str):
    size = tuple(int(v) for v in rng.integers(1, 12, size=nd))
    kernel = tuple(int(min(s, v)) for s, v in zip(size, rng.integers(1, 4, size=nd)))
    stride = tuple(int(v) for v in rng.integers(1, 3, size=nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    ceil_mode = bool(rng.random() < 0.3)
    x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4)), *size))
    flag = bool(rng.random() < 0.5)
    if kind == "max":
        args = (kernel, stride, padding, 1, ceil_mode, flag)
    else:
        args = (kernel, stride, padding, ceil_mode, flag)
    return x, args


@pytest.mark.usefixtures("forget")
@pytest.mark.parametrize("nd", (1, 2))
@pytest.mark.parametrize("kind", ("max", "avg"))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_lean_results_equal_the_checked_paths(rng, monkeypatch, nd, kind, dtype):
    op = f"{kind}_pool{nd}d"
    public = getattr(fastnn, op)
    run = _dispatch.lean(op)
    for _ in range(10):
        x, args = _random_pooling(rng, nd, kind)
        x = x.astype(dtype)
        assert run(x, *args) is None  # not run yet
        want = public(x, *args)  # checked: noted
        calls = _checked_calls(monkeypatch)
        for name, xl in layouts(x):
            got = public(xl, *args)
            for g, w in zip(got if isinstance(got, tuple) else (got,),
                            want if isinstance(want, tuple) else (want,)):  # fmt: skip
                np.testing.assert_array_equal(g, w, err_msg=f"{op} {args} {name}")
        assert calls == []  # every layout ran lean
        monkeypatch.undo()
        reference = public(x, *args, backend="reference")
        first = want[0] if isinstance(want, tuple) else want
        np.testing.assert_allclose(first, reference[0] if isinstance(reference, tuple)
                                   else reference, rtol=1e-6, atol=1e-6)  # fmt: skip


@pytest.mark.usefixtures("forget")
def test_arguments_the_checks_reject_still_reach_them(rng, monkeypatch):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    fastnn.max_pool2d(x, 2, 2, 0, 1, False, False)
    fastnn.avg_pool2d(x, 2, 2, 0, False, True)
    run_max, run_avg = _dispatch.lean("max_pool2d"), _dispatch.lean("avg_pool2d")
    assert run_max(x, 2, 2, 0, 1, False, False) is not None
    # ints for bools, another dtype, a shape or window not run, a non-array: not lean
    assert run_max(x, 2, 2, 0, 1, False, 0) is None
    assert run_max(x, 2, 2, 0, 1, 0, False) is None
    assert run_avg(x, 2, 2, 0, False, 1) is None
    assert run_max(x.astype(np.float64), 2, 2, 0, 1, False, False) is None
    assert run_max(x[:1], 2, 2, 0, 1, False, False) is None
    assert run_max(x, 3, 2, 0, 1, False, False) is None
    assert run_max(x.tolist(), 2, 2, 0, 1, False, False) is None
    assert run_max(x, 2, 2, 5, 1, False, False) is None  # invalid padding: checked
    with pytest.raises(TypeError, match="return_indices"):
        fastnn.max_pool2d(x, 2, 2, 0, 1, False, 0)
    with pytest.raises(TypeError, match="count_include_pad"):
        fastnn.avg_pool2d(x, 2, 2, 0, False, 1)
    with pytest.raises(ValueError):
        fastnn.max_pool2d(x, 2, 2, 5)
    with pytest.raises(TypeError):
        fastnn.max_pool2d(x.astype(np.int32), 2, 2)
    calls = _checked_calls(monkeypatch)
    with fastnn.use_backend("reference"):  # another backend: its own checked path
        fastnn.max_pool2d(x, 2, 2, 0, 1, False, False)
    assert calls == [1]
