"""fastnn.nn's adaptive pooling layers (gradients by finite differences, against torch's
layers) and its Dropout running fastnn.dropout (reproducible per rng, the same mask as
the op for the seed drawn, backward through the mask)."""

from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import nn
from tests.toolkit.test_nn_layers import _check_layer
from tests.utils import assert_close, import_torch, requires_torch


@pytest.mark.parametrize("size", [1, (3, 2), (None, 4), (6, 7)])
def test_adaptive_avg_pool2d_gradient(rng, size):
    _check_layer(nn.AdaptiveAvgPool2d(size), rng.standard_normal((2, 3, 5, 4)), rng)


@pytest.mark.parametrize("size", [(3, 2), 1, (4, 5)])
def test_adaptive_max_pool2d_gradient(rng, size):
    _check_layer(nn.AdaptiveMaxPool2d(size), rng.standard_normal((2, 3, 5, 4)), rng)


def test_adaptive_avg_pool1d_gradient(rng):
    _check_layer(nn.AdaptiveAvgPool1d(3), rng.standard_normal((2, 3, 7)), rng)


@requires_torch
def test_adaptive_layers_match_torch(rng):
    torch = import_torch()
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    t = torch.tensor(x)
    pairs = [
        (nn.AdaptiveAvgPool2d((4, 3)), torch.nn.AdaptiveAvgPool2d((4, 3))),
        (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1)),
        (nn.AdaptiveMaxPool2d((2, 5)), torch.nn.AdaptiveMaxPool2d((2, 5))),
    ]
    for ours, theirs in pairs:
        assert_close(ours(x), theirs(t).numpy(), np.float32, what=repr(ours))
    assert_close(nn.AdaptiveAvgPool1d(4)(x[:, :, 0]),
                 torch.nn.AdaptiveAvgPool1d(4)(t[:, :, 0]).numpy(), np.float32)  # fmt: skip


def test_adaptive_layer_errors():
    for bad in (0, (2, 0), (1, 2, 3), 1.5):
        with pytest.raises((ValueError, TypeError), match="output_size"):
            nn.AdaptiveAvgPool2d(bad)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.AdaptiveMaxPool2d(2).backward(np.zeros((1, 1, 2, 2)))
    assert "output_size=(3, None)" in repr(nn.AdaptiveAvgPool2d((3, None)))


def test_dropout_uses_fastnn_stream(rng):
    x = rng.standard_normal((40, 50))
    layer = nn.Dropout(0.3, rng=np.random.default_rng(11))
    y = layer(x)
    seed = int(np.random.default_rng(11).integers(0, 2**64, dtype=np.uint64))
    want, mask = fastnn.dropout(x, 0.3, generator=seed)
    np.testing.assert_array_equal(y, want)
    g = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(layer.backward(g), fastnn.dropout_backward(g, mask, 0.3))
    layer.eval()
    assert layer(x) is x and layer.backward(g) is g


def test_dropout_p_one_zeroes_forward_and_backward(rng):
    x = rng.standard_normal((3, 4))
    layer = nn.Dropout(1.0)
    np.testing.assert_array_equal(layer(x), np.zeros_like(x))
    np.testing.assert_array_equal(layer.backward(x), np.zeros_like(x))
