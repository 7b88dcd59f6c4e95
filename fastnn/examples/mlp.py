"""The two-class XOR problem with a 2-4-1 perceptron, and its backpropagation by hand.

The course notes' network: a hidden layer of 4 tanh units and one sigmoid output, mean
squared error, gradient descent with momentum.  Before training, the gradient of one
sample's squared error is computed three ways and compared:

1. the notes' formulas written out with NumPy: ``delta2 = -2 (d - y) f2'(u2)``,
   ``delta1 = f1'(u1) * (W2^T delta2)``, ``dJ/dW = delta y_prev^T``, ``dJ/db = delta``;
2. fastnn's sensitivity ops (``output_sensitivity`` and ``mlp_backward``);
3. the layers' ``backward``.

Target: >= 95% accuracy on held-out points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import fastnn
from fastnn import init, nn, optim
from fastnn.examples import datasets
from fastnn.examples._training import Split, TrainConfig, fit, write_outputs

NAME = "mlp"
HELP = "a 2-4-1 perceptron on the two-class XOR problem, with backprop checked by hand"
DEFAULTS = {"epochs": 20, "batch_size": 16, "lr": 0.2}
TARGET = 0.95


def build_model(rng: init.RngLike = None, dtype: Any = np.float32) -> nn.Sequential:
    """2 inputs -> 4 tanh units -> 1 sigmoid output."""
    rng = init.as_generator(rng)
    return nn.Sequential(
        nn.Linear(2, 4, activation="tanh", rng=rng, dtype=dtype),
        nn.Linear(4, 1, activation="sigmoid", rng=rng, dtype=dtype),
    )


def hand_gradients(model: nn.Sequential, x: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
    """dJ/dW1, dJ/db1, dJ/dW2, dJ/db2 of ``J = (d - y)^2`` for one sample, by the notes'
    formulas (float64)."""
    w1, b1 = (p.data.astype(np.float64) for p in (model[0].weight, model[0].bias))
    w2, b2 = (p.data.astype(np.float64) for p in (model[1].weight, model[1].bias))
    x = x.astype(np.float64)
    u1 = w1 @ x + b1
    y1 = np.tanh(u1)
    u2 = w2 @ y1 + b2
    y2 = 1.0 / (1.0 + np.exp(-u2))
    delta2 = -2.0 * (d - y2) * y2 * (1.0 - y2)  # BP1 with f2' = y (1 - y)
    delta1 = (1.0 - y1**2) * (w2.T @ delta2)  # BP2 with f1' = 1 - tanh^2
    return [np.outer(delta1, x), delta1, np.outer(delta2, y1), delta2]  # BP3, BP4


def check_backprop(model: nn.Sequential, x: np.ndarray, d: np.ndarray) -> float:
    """Largest difference between the three ways of computing one sample's gradient."""
    by_hand = hand_gradients(model, x, d)
    sample, target = x[None].astype(np.float64), d[None].astype(np.float64)
    double = build_model(0, np.float64)
    double.load_state_dict(model.state_dict())
    # fastnn's sensitivity recursion (BP1-BP4 as ops)
    layers = [double[0], double[1]]
    u1 = fastnn.linear(sample, layers[0].weight.data, layers[0].bias.data)
    y1 = fastnn.tanh(u1)
    u2 = fastnn.linear(y1, layers[1].weight.data, layers[1].bias.data)
    y2 = fastnn.sigmoid(u2)
    delta = fastnn.output_sensitivity(y2, target, u2, "sigmoid", loss="mse", reduction="sum")
    grads = fastnn.mlp_backward(
        [sample, y1], [u1, u2], [p.weight.data for p in layers], delta, ["tanh", "sigmoid"]
    )
    by_ops = [grads[0][0], grads[0][1], grads[1][0], grads[1][1]]
    # the layers' backward
    criterion = nn.MSELoss(reduction="sum")
    criterion(double(sample), target)
    double.backward(criterion.backward())
    by_layers = [p.grad for p in double.parameters()]
    return max(
        float(np.max(np.abs(np.reshape(a, np.shape(h)) - h)))
        for h, others in zip(by_hand, zip(by_ops, by_layers))
        for a in others
    )


def _accuracy(outputs: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean((outputs > 0.5) == (targets > 0.5))) if len(targets) else np.nan


def run(config: TrainConfig) -> dict[str, Any]:
    """Check the backprop by hand, train, evaluate; returns the summary."""
    x, t = datasets.xor_clusters(600, config.rng(1))
    (x_train, t_train), (x_test, t_test) = datasets.split(x, t, 0.25, config.rng(3), config.subset)
    model = build_model(config.rng(0))
    difference = check_backprop(model, x_train[0], t_train[0])
    config.log(
        f"backprop by hand (course formulas) vs fastnn's sensitivity ops vs the layers' "
        f"backward, one sample: largest difference {difference:.1e}"
    )
    config.log(f"XOR clusters: {len(x_train)} training and {len(x_test)} test points")
    model.to(config.device)
    optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    history = fit(
        model,
        nn.MSELoss(),
        optimizer,
        Split(x_train, t_train).to(config.device),
        Split(x_test, t_test).to(config.device),
        config,
        ("accuracy", _accuracy),
    )
    final = history.test_metric[-1]
    summary = {
        "example": NAME,
        "backprop_check_max_difference": difference,
        "test_accuracy": round(final, 4),
        "target": f"test accuracy >= {TARGET}",
        "reached": bool(final >= TARGET),
    }
    return write_outputs(NAME, model, history, summary, config, "2-4-1 perceptron on XOR")
