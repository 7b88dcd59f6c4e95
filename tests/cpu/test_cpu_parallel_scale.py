"""The measured scale of the CPU kernels' thread thresholds (fastnn/_backends/cpu/_parallel.py):
set in every kernel module, bounded, overridable; and the threaded code paths it opens on
small arrays give the one-thread results."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn._backends.cpu import _parallel
from tests.utils import assert_close


@pytest.fixture
def restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


@pytest.fixture
def restore_scale():
    before = _parallel.scale()
    yield
    _parallel.set_scale(before)


def test_break_even_is_where_a_second_thread_pays():
    # n elements at 1 ns each: two threads save n/2 ns, one fork-join costs 2 us
    assert _parallel.break_even(2e-6, 1e-9) == pytest.approx(4000)


def test_calibrate_stays_in_bounds(restore_scale):
    value = _parallel.calibrate()
    low, high = _parallel.SCALE_RANGE
    assert low <= value <= high
    assert _parallel.scale() == value


def test_environment_sets_the_scale(restore_scale, monkeypatch):
    monkeypatch.setenv("FASTNN_PARALLEL_SCALE", "2.5")
    assert _parallel.calibrate() == 2.5
    monkeypatch.setenv("FASTNN_PARALLEL_SCALE", "1000")
    assert _parallel.calibrate() == _parallel.SCALE_RANGE[1]


def test_set_scale_rejects_non_positive(restore_scale):
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            _parallel.set_scale(bad)


def _small_workload(rng):
    x = rng.standard_normal((3, 5, 9, 11)).astype(np.float32)
    w = rng.standard_normal((7, 99)).astype(np.float32)
    rows = rng.standard_normal((37, 99)).astype(np.float32)
    labels = rng.integers(0, 99, 37)
    return [
        lambda: fastnn.relu(x),
        lambda: fastnn.tanh(x),
        lambda: fastnn.activation_backward("sigmoid", x, fastnn.sigmoid(x)),
        lambda: fastnn.softmax(rows, 1),
        lambda: fastnn.log_softmax(x, 1),
        lambda: fastnn.cross_entropy(rows, labels),
        lambda: fastnn.max_pool2d(x, 2, return_indices=True)[0],
        lambda: fastnn.avg_pool2d(x, 3, 2, 1),
        lambda: fastnn.adaptive_avg_pool2d(x, (2, 3)),
        lambda: fastnn.linear(rows, w, activation="relu"),
        lambda: fastnn.add(x, x, activation="relu"),
        lambda: fastnn.batch_norm(
            x, np.zeros(5, np.float32), np.ones(5, np.float32), training=True
        ),
        lambda: fastnn.conv2d_backward(
            fastnn.conv2d(x, x[:4, :, :3, :3]), x, x[:4, :, :3, :3], output_mask=(True, True, True)
        ),
    ]


def test_threaded_paths_on_small_arrays_match_one_thread(restore_scale, restore_threads, rng):
    """A tiny scale opens an OpenMP region for every small call: the chunked paths of
    every family must give what one thread gives."""
    work = _small_workload(rng)
    fastnn.set_num_threads(1)
    serial = [call() for call in work]
    fastnn.set_num_threads(2)
    _parallel.set_scale(1e-6)
    for call, want in zip(work, serial):
        got = call()
        for g, s in zip(
            got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)
        ):
            if g is not None:
                assert_close(g, s, rtol=1e-5)


def test_a_busy_machine_keeps_the_priors(restore_scale, monkeypatch):
    monkeypatch.delenv("FASTNN_PARALLEL_SCALE", raising=False)
    monkeypatch.setattr(_parallel._threads, "_free_cpus", lambda: 0)
    assert _parallel.calibrate() == 1.0
