"""The lean path of the CPU convolutions (fastnn/_backends/cpu/conv_lean.py): a call that
repeats a checked call's arrays and parameters runs the algorithms chosen then without
checking again.  It must give the checked path's results, skip it only where every check
would pass again, and let every bad argument reach the checked path's errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import _args, _autotune
from fastnn._backends.cpu import _conv_plan, conv_lean
from fastnn._geometry import conv_geometry
from tests.cpu.test_cpu_conv import random_case
from tests.utils import assert_close, layouts

MASKS = [m for m in itertools.product((False, True), repeat=3) if any(m)]


def _ops(nd: int):
    if nd == 1:
        return fastnn.conv1d, fastnn.conv1d_backward
    return fastnn.conv2d, fastnn.conv2d_backward


@pytest.fixture
def forget():
    conv_lean.forgets()
    yield
    conv_lean.forgets()


def _no_checks(monkeypatch) -> list:
    """Make the checked path record its use (its first check is float_arrays)."""
    calls: list = []
    real = _args.float_arrays

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(_args, "float_arrays", counted)
    return calls


@pytest.mark.parametrize("nd", (1, 2))
def test_repeated_calls_take_the_lean_path_with_the_checked_results(
    forget, monkeypatch, rng, nd, dtype
):
    """Random layers in every input layout, with and without bias and activation, every
    output mask: the second call runs lean (no check) and equals the reference."""
    conv, backward = _ops(nd)
    calls = _no_checks(monkeypatch)
    for _ in range(6):
        case = random_case(rng, nd)
        x0, w, b = case.arrays(rng, dtype)
        for (layout, x), activation in zip(layouts(x0), (None, "relu", None, "relu6")):
            kw = {"activation": activation}
            want = conv(x, w, b, *case.params, backend="reference", **kw)
            first = conv(x, w, b, *case.params, **kw)
            calls.clear()
            again = conv(x, w, b, *case.params, **kw)
            assert calls == [], f"{case} {layout}: the repeat was checked again"
            assert_close(first, want, dtype, what=f"{case} {layout}")
            assert_close(again, want, dtype, what=f"{case} {layout} (lean)")
            gy = rng.standard_normal(want.shape).astype(dtype)
            for mask in MASKS:
                ref = backward(gy, x, w, *case.params, output_mask=mask, backend="reference")
                backward(gy, x, w, *case.params, output_mask=mask)
                calls.clear()
                got = backward(gy, x, w, *case.params, output_mask=mask)
                assert calls == [], f"{case} {layout} {mask}: the repeat was checked again"
                for g, r, m in zip(got, ref, mask):
                    assert (g is None) != m
                    if m:
                        assert g.dtype == dtype and g.flags.c_contiguous
                        assert_close(g, r, dtype, what=f"{case} {layout} {mask} (lean)")


def test_bad_arguments_still_reach_the_checked_errors(forget, rng):
    """After a layer is remembered, a call that differs in anything a check reads is
    checked again and raises what the checked path raises."""
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = fastnn.conv2d(x, w, b, padding=1)
    gy = np.ones_like(y)
    fastnn.conv2d(x, w, b, padding=1)
    fastnn.conv2d_backward(gy, x, w, padding=1)
    fastnn.conv2d_backward(gy, x, w, padding=1)
    with pytest.raises(TypeError):
        fastnn.conv2d(x.astype(np.int32), w, b, padding=1)
    with pytest.raises(TypeError):
        fastnn.conv2d(x, w.astype(np.float64), b, padding=1)
    with pytest.raises(ValueError):
        fastnn.conv2d(x, w, np.ones(5, np.float32), padding=1)
    with pytest.raises(ValueError):
        fastnn.conv2d(x, w, b, padding=1, activation="tanh")
    with pytest.raises(ValueError):
        fastnn.conv2d(x, w, b, padding=-1)
    with pytest.raises(ValueError):
        fastnn.conv2d(x, w, b, padding=1, algo="nonsense")
    with pytest.raises(TypeError):
        fastnn.conv2d(x.tolist(), w, b, padding=1)
    with pytest.raises(TypeError):  # an int is not a bool, though 1 == True in a dict key
        fastnn.conv2d_backward(gy, x, w, padding=1, output_mask=(1, 1, 1))
    with pytest.raises(ValueError):
        fastnn.conv2d_backward(gy[:, :3], x, w, padding=1)
    with pytest.raises(TypeError):
        fastnn.conv2d_backward(gy.astype(np.float64), x, w, padding=1)
    # unhashable parameters are checked (and accepted) as before
    assert_close(fastnn.conv2d(x, w, b, padding=[1, 1]), y, np.float32)


def test_a_new_setting_or_a_recording_takes_the_checked_path(forget, monkeypatch, rng):
    """Another thread cap or autotune generation is another key, and while choices are
    being recorded every call is checked (and its choice noted)."""
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    fastnn.conv2d(x, w)
    calls = _no_checks(monkeypatch)
    fastnn.conv2d(x, w)
    assert calls == []
    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(1 if threads > 1 else 2)
    try:
        fastnn.conv2d(x, w)
        assert calls == ["conv2d"]
    finally:
        fastnn.set_num_threads(threads)
    calls.clear()
    with _autotune.recording() as record:
        fastnn.conv2d(x, w)
        fastnn.conv2d(x, w)
    assert calls == ["conv2d", "conv2d"]
    assert any("conv2d" in key for key in record.choices) or not _autotune.autotune_enabled()
    calls.clear()
    fastnn.conv2d(x, w)
    assert calls == []
    with fastnn.use_backend("reference"):
        fastnn.conv2d(x, w)
    assert calls == ["conv2d"]


def test_geometry_hash_matches_its_equality():
    """The cached hash of a geometry agrees with equality: equal geometries built apart
    hash alike, and a geometry differing in any parameter is another key."""
    a = conv_geometry("conv2d", 2, (2, 4, 9, 9), (6, 2, 3, 3), 1, 1, 1, 2)
    b = conv_geometry("conv2d", 2, (2, 4, 9, 9), (6, 2, 3, 3), (1, 1), [1, 1], 1, 2)
    assert a == b and hash(a) == hash(b)
    for other in (
        conv_geometry("conv2d", 2, (2, 4, 9, 9), (6, 2, 3, 3), 2, 1, 1, 2),
        conv_geometry("conv2d", 2, (2, 4, 9, 9), (6, 2, 3, 3), 1, 0, 1, 2),
        conv_geometry("conv2d", 2, (3, 4, 9, 9), (6, 2, 3, 3), 1, 1, 1, 2),
    ):
        assert other != a
        assert len({a: 0, other: 1}) == 2


def test_block_plans_follow_forced_chunking_and_constants(monkeypatch):
    """The memoised block plans answer again when the forced chunking or a block constant
    changes (tests monkeypatch them)."""
    shape = conv_geometry("conv2d", 2, (4, 8, 30, 30), (8, 8, 3, 3), 1, 1, 1, 1).plane
    shape = tuple(shape)
    auto = _conv_plan.im2col_tile(shape, 2)
    with _conv_plan.chunking(tile=7):
        assert _conv_plan.im2col_tile(shape, 2) == (7, 1)
    assert _conv_plan.im2col_tile(shape, 2) == auto
    monkeypatch.setattr(_conv_plan, "PACKED_ELEMENTS", 64)
    assert _conv_plan.direct_rows(shape, 1) == 1
    monkeypatch.setattr(_conv_plan, "PACKED_ELEMENTS", 1 << 16)
    assert _conv_plan.direct_rows(shape, 1) > 1
