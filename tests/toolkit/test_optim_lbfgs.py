"""LBFGS (through SciPy) reaches the optimum of small full-batch problems."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn.nn as nn
import fastnn.optim as optim


def test_least_squares_reaches_normal_equations(rng):
    x = rng.standard_normal((40, 3))
    y = x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.05 * rng.standard_normal((40, 1))
    model = nn.Linear(3, 1, dtype=np.float64, rng=rng)
    criterion = nn.MSELoss()

    def closure():
        model.zero_grad()
        loss = criterion(model(x), y)
        model.backward(criterion.backward(), need_input_grad=False)
        return loss

    lbfgs = optim.LBFGS(model.parameters(), max_iter=200, tolerance_grad=1e-12)
    final = lbfgs.step(closure)
    design = np.hstack([x, np.ones((40, 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    np.testing.assert_allclose(model.weight.data.ravel(), solution[:3, 0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.bias.data, solution[3], rtol=1e-6, atol=1e-7)
    residual = design @ solution - y
    np.testing.assert_allclose(final, np.mean(residual**2), rtol=1e-9)
    assert lbfgs.result.success


def test_logistic_regression_float32(rng):
    x = rng.standard_normal((60, 2)).astype(np.float32)
    t = (x[:, :1] - x[:, 1:] + 0.5 * rng.standard_normal((60, 1)) > 0).astype(np.float32)
    model = nn.Sequential(nn.Linear(2, 1, rng=rng), nn.Sigmoid())
    criterion = nn.BCELoss()

    def closure():
        model.zero_grad()
        loss = criterion(model(x), t)
        model.backward(criterion.backward())
        return loss

    start = float(criterion(model(x), t))
    final = optim.LBFGS(model.parameters(), max_iter=50).step(closure)
    assert final < start
    assert model[0].weight.data.dtype == np.float32
    w = model[0].weight.data.ravel()
    assert w[0] > 0 > w[1]  # the separating direction (1, -1)


def test_lbfgs_argument_errors():
    param = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        optim.LBFGS([])
    with pytest.raises(ValueError, match="max_iter"):
        optim.LBFGS([param], max_iter=0)
    with pytest.raises(TypeError, match="Parameter"):
        optim.LBFGS([np.zeros(2)])
    with pytest.raises(TypeError, match="closure"):
        optim.LBFGS([param]).step(None)
