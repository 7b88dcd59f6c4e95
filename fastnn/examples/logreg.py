"""Logistic regression as a one-neuron network trained with binary cross-entropy.

``p = sigmoid(w . x + b)``; for two Gaussian classes with a shared covariance the best
possible (Bayes) classifier has exactly this form, with known weights, so the example
reports how close training gets to them: first with mini-batch SGD (the learning
curves), then with full-batch L-BFGS (SciPy) from the same start.  The course notes'
gradient ``dE/dw = -(t - p) x`` is what BCE's backward through the sigmoid gives.

Target: test accuracy within 2 points of the Bayes classifier's on the same points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import init, nn, optim
from fastnn.examples import datasets
from fastnn.examples._training import Split, TrainConfig, fit, write_outputs
from fastnn.nn._array import to_numpy

NAME = "logreg"
HELP = "logistic regression with binary cross-entropy (SGD, then L-BFGS)"
DEFAULTS = {"epochs": 30, "batch_size": 32, "lr": 0.1}
MARGIN = 0.02


def build_model(rng: init.RngLike = None, dtype: Any = np.float32) -> nn.Sequential:
    """One sigmoid neuron on 2 inputs."""
    return nn.Sequential(nn.Linear(2, 1, rng=rng, dtype=dtype), nn.Sigmoid())


def _accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((outputs > 0.5) == (targets > 0.5))) if len(targets) else np.nan


def _weights(model: nn.Sequential) -> tuple[np.ndarray, float]:
    return to_numpy(model[0].weight.data).ravel(), float(to_numpy(model[0].bias.data)[0])


def _rounded(w: np.ndarray, b: float) -> list[float]:
    return [round(float(v), 4) for v in (*w, b)]


def run(config: TrainConfig) -> dict[str, Any]:
    """Train with SGD, refit with L-BFGS, compare with the Bayes weights."""
    x, t, (w_bayes, b_bayes) = datasets.gaussian_classes(2000, config.rng(1))
    (x_train, t_train), (x_test, t_test) = datasets.split(x, t, 0.25, config.rng(3), config.subset)
    config.log(f"two Gaussian classes: {len(x_train)} training and {len(x_test)} test points")
    model = build_model(config.rng(0)).to(config.device)
    start = model.state_dict()
    criterion = nn.BCELoss()
    train = Split(x_train, t_train).to(config.device)
    history = fit(
        model,
        criterion,
        optim.SGD(model.parameters(), lr=config.lr, momentum=0.9),
        train,
        Split(x_test, t_test).to(config.device),
        config,
        ("accuracy", _accuracy),
    )
    w_sgd, b_sgd = _weights(model)

    refit = build_model(0).to(config.device)
    refit.load_state_dict(start)

    def closure():
        refit.zero_grad()
        loss = criterion(refit(train.x), train.y)
        refit.backward(criterion.backward(), need_input_grad=False)
        return loss

    optim.LBFGS(refit.parameters(), max_iter=100).step(closure)
    w_lbfgs, b_lbfgs = _weights(refit)
    bayes_logit = (x_test @ w_bayes + b_bayes)[:, None]
    bayes = float(np.mean((bayes_logit > 0) == (t_test > 0.5)))
    sgd = history.test_metric[-1]
    lbfgs = _accuracy(to_numpy(refit.eval()(Split(x_test, t_test).to(config.device).x)), t_test)
    config.log(
        f"Bayes weights  w = {np.round(w_bayes, 3)}, b = {b_bayes:.3f}  accuracy {bayes:.4f}"
    )
    config.log(f"SGD            w = {np.round(w_sgd, 3)}, b = {b_sgd:.3f}  accuracy {sgd:.4f}")
    config.log(
        f"L-BFGS         w = {np.round(w_lbfgs, 3)}, b = {b_lbfgs:.3f}  accuracy {lbfgs:.4f}"
    )
    summary = {
        "example": NAME,
        "test_accuracy": round(sgd, 4),
        "test_accuracy_lbfgs": round(lbfgs, 4),
        "test_accuracy_bayes": round(bayes, 4),
        "weights_sgd": _rounded(w_sgd, b_sgd),
        "weights_lbfgs": _rounded(w_lbfgs, b_lbfgs),
        "weights_bayes": _rounded(w_bayes, b_bayes),
        "target": f"test accuracy within {MARGIN} of the Bayes classifier's",
        "reached": bool(sgd >= bayes - MARGIN and lbfgs >= bayes - MARGIN),
    }
    return write_outputs(NAME, model, history, summary, config, "Logistic regression (BCE)")
