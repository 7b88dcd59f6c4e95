"""A small residual network with batch normalisation on scikit-learn's digits (16x16).

A 3x3 stem, then residual blocks ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``
(He et al.), the second block halving the resolution and doubling the channels with a
1x1-convolution shortcut; global average pooling and one linear layer classify.
Cross-entropy, SGD with Nesterov momentum and weight decay.

Target: >= 97% accuracy on the held-out 20%.
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
    write_outputs,
)

NAME = "resnet"
HELP = "a small ResNet with batch norm on scikit-learn's digits (16x16), SGD + Nesterov"
DEFAULTS = {"epochs": 8, "batch_size": 32, "lr": 0.05}
TARGET = 0.97


def residual_block(c_in: int, c_out: int, stride: int, rng, dtype) -> nn.Sequential:
    """conv-bn-relu-conv-bn plus a shortcut (identity, or 1x1 conv + bn when the shape
    changes), then relu."""

    def conv(a: int, b: int, k: int, s: int) -> nn.Conv2d:
        return nn.Conv2d(a, b, k, stride=s, padding=k // 2, bias=False, rng=rng, dtype=dtype)

    body = nn.Sequential(
        conv(c_in, c_out, 3, stride),
        nn.BatchNorm2d(c_out, dtype=dtype),
        nn.ReLU(),
        conv(c_out, c_out, 3, 1),
        nn.BatchNorm2d(c_out, dtype=dtype),
    )
    shortcut = None
    if stride != 1 or c_in != c_out:
        shortcut = nn.Sequential(conv(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out, dtype=dtype))
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def build_model(rng: init.RngLike = None, dtype: Any = np.float32) -> nn.Sequential:
    """Stem (16 channels, 16x16) -> block 16 -> block 32 (8x8) -> average pool -> 10."""
    rng = init.as_generator(rng)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False, rng=rng, dtype=dtype),
        nn.BatchNorm2d(16, dtype=dtype),
        nn.ReLU(),
        residual_block(16, 16, 1, rng, dtype),
        residual_block(16, 32, 2, rng, dtype),
        nn.AvgPool2d(8),
        nn.Flatten(),
        nn.Linear(32, 10, rng=rng, dtype=dtype),
    )


def run(config: TrainConfig) -> dict[str, Any]:
    """Train and evaluate; returns the summary."""
    train, test = digit_splits(config, 16)
    model = build_model(config.rng(0)).to(config.device)
    optimizer = optim.SGD(
        model.parameters(), lr=config.lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    history = fit_classifier(model, optimizer, train, test, config, cosine=True)
    parameters = model.num_parameters()
    summary = accuracy_summary(NAME, history.test_metric[-1], TARGET, parameters=parameters)
    return write_outputs(NAME, model, history, summary, config, "Small ResNet on digits")
