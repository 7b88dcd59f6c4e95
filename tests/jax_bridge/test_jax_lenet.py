"""The fastnn.jax LeNet-5 example: its loss curve follows XLA's step by step in float32."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

from fastnn.examples import jax_lenet  # noqa: E402


def test_loss_curves_agree_with_xla():
    ours, theirs = jax_lenet.compare(steps=8, batch=32)
    assert np.all(np.isfinite(ours)) and ours[-1] < ours[0]  # it trains
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_main_reports_agreement_and_step_times(capsys):
    assert jax_lenet.main(["--steps", "3", "--batch", "16", "--budget", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "largest relative difference per step" in out
    assert "time per step, batch 16" in out
