"""LeNet-5 on scikit-learn's handwritten digits, enlarged and padded to 32x32.

LeCun et al.'s network: C1 (6 maps, 5x5) -> S2 (2x2 pooling) -> C3 (16 maps, 5x5) -> S4
-> C5/F6 (120, 84 units) -> 10 outputs, here with ReLU and max pooling, trained with
cross-entropy and Adam.  Target: >= 97% accuracy on the held-out 20%.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fastnn import init, nn, optim
from fastnn.examples._training import (
    TrainConfig,
    accuracy_summary,
    digit_splits,
    fit_classifier,
    random_shift,
    write_outputs,
)

NAME = "lenet"
HELP = "LeNet-5 on scikit-learn's digits (32x32), cross-entropy, Adam"
DEFAULTS = {"epochs": 15, "batch_size": 32, "lr": 2e-3}
TARGET = 0.97


def build_model(rng: init.RngLike = None, dtype: Any = np.float32) -> nn.Sequential:
    """LeNet-5 for (N, 1, 32, 32) inputs and 10 classes."""
    rng = init.as_generator(rng)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, rng=rng, dtype=dtype),  # C1: 6 x 28 x 28
        nn.ReLU(),
        nn.MaxPool2d(2),  # S2: 6 x 14 x 14
        nn.Conv2d(6, 16, 5, rng=rng, dtype=dtype),  # C3: 16 x 10 x 10
        nn.ReLU(),
        nn.MaxPool2d(2),  # S4: 16 x 5 x 5
        nn.Flatten(),
        nn.Linear(400, 120, activation="relu", rng=rng, dtype=dtype),  # C5
        nn.Linear(120, 84, activation="relu", rng=rng, dtype=dtype),  # F6
        nn.Linear(84, 10, rng=rng, dtype=dtype),
    )


def run(config: TrainConfig) -> dict[str, Any]:
    """Train and evaluate; returns the summary (accuracy, files written)."""
    train, test = digit_splits(config, 32, border=4)
    model = build_model(config.rng(0)).to(config.device)
    optimizer = optim.Adam(model.parameters(), lr=config.lr)
    shift = random_shift(2)  # the digits sit in a 4-pixel frame
    history = fit_classifier(model, optimizer, train, test, config, cosine=True, augment=shift)
    summary = accuracy_summary(NAME, history.test_metric[-1], TARGET)
    return write_outputs(NAME, model, history, summary, config, "LeNet-5 on digits")
