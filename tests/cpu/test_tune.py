"""fastnn.tune, ``fastnn tune NAME`` and the shipped shape tables: choices are measured
once, persisted, and a second process pays nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _autotune, net_shapes, nn
from fastnn._tune import tune_network


@pytest.fixture
def fresh_cache(tmp_path):
    cache = tmp_path / "tune.json"
    fastnn.autotune(True, cache=cache)
    yield cache
    fastnn.autotune(True)


def conv_step(rng):
    x = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)

    def step():
        fastnn.conv2d(x, w, None, 1, 1)
        return fastnn.conv2d_backward(gy, x, w, 1, 1)

    return step


def test_tune_measures_once_then_reuses(rng, fresh_cache):
    step = conv_step(rng)
    first = fastnn.tune(step)
    passes = sorted(k.split("|")[1] for k in first.choices if k.startswith("cpu:"))
    assert passes == ["pass=forward", "pass=input", "pass=weight"]
    assert first.measured >= 3 and first.seconds > 0 and isinstance(first.result, tuple)
    second = fastnn.tune(step)
    assert second.measured == 0 and second.choices == first.choices


def test_tune_turns_tuning_on_only_for_the_call(rng, fresh_cache):
    fastnn.autotune(False, cache=fresh_cache)
    report = fastnn.tune(conv_step(rng))
    assert report.measured >= 3
    assert not fastnn._autotune.autotune_enabled()


def test_tune_a_fastnn_model_runs_backward_and_keeps_gradients(rng, fresh_cache):
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, rng=0), nn.ReLU(), nn.Flatten())
    x = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
    before = [None if p.grad is None else p.grad.copy() for p in model.parameters()]
    report = fastnn.tune(model, x)
    passes = {k.split("|")[1] for k in report.choices if k.startswith("cpu:")}
    assert {"pass=forward", "pass=weight"} <= passes
    for p, grad in zip(model.parameters(), before):
        assert (p.grad is None and grad is None) or np.array_equal(p.grad, grad)


def test_tune_rejects_a_non_callable():
    with pytest.raises(TypeError, match="callable"):
        fastnn.tune(3)


def test_tune_network_and_a_second_process(fresh_cache):
    report = tune_network("lenet", batch=2)
    assert report.measured == 6  # 2 layers x 3 passes
    code = "from fastnn._tune import tune_network; print(tune_network('lenet', batch=2).measured)"
    env = {**os.environ, "FASTNN_AUTOTUNE_CACHE": str(fresh_cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_tune_network_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown network"):
        tune_network("alexnet")
    with pytest.raises(ValueError, match="batch"):
        tune_network("lenet", batch=0)


def test_cli_tune(fresh_cache):
    env = {**os.environ, "FASTNN_AUTOTUNE_CACHE": str(fresh_cache)}
    out = subprocess.run(
        [sys.executable, "-m", "fastnn", "tune", "lenet", "--batch", "2"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "C1" in out.stdout and "C3" in out.stdout and "6 measured now" in out.stdout
    assert _autotune._read(fresh_cache)


def test_shape_tables():
    """Every table is internally consistent: shapes chain (a layer's input channels were
    produced before), FLOPs as published (ResNet-18 1.8 GFLOP multiply-adds per image,
    ResNet-50 4.1, VGG-11 7.5 without its classifier, MobileNetV2 0.30, SqueezeNet 1.1
    0.35)."""
    macs = {
        name: sum(layer.count * layer.flops(1) for layer in net_shapes.layers(name)) / 2e9
        for name in ("resnet18", "resnet50", "vgg11", "mobilenet_v2", "squeezenet1_1")
    }
    assert macs["squeezenet1_1"] == pytest.approx(0.35, abs=0.005)
    assert macs["resnet18"] == pytest.approx(1.81, abs=0.02)
    assert macs["resnet50"] == pytest.approx(4.09, abs=0.03)
    assert macs["vgg11"] == pytest.approx(7.49, abs=0.02)  # 7.61 with the classifier
    assert macs["mobilenet_v2"] == pytest.approx(0.30, abs=0.01)
    depthwise = [layer for layer in net_shapes.layers("mobilenet_v2") if layer.groups > 1]
    assert depthwise and all(layer.groups == layer.c == layer.k for layer in depthwise)
    assert {(layer.h, layer.c) for layer in depthwise} >= {(7, 960), (14, 576)}


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg11", "mobilenet_v2", "squeezenet1_1"])
def test_shape_tables_match_torchvision(name):
    """Every convolution torchvision's model runs, in order of first use, is a row of the
    table (shapes taken from a forward pass on the meta device: no memory, no time)."""
    torch = pytest.importorskip("torch")
    from fastnn.bench.torchvision_models import torchvision_models

    with torch.device("meta"):
        model = getattr(torchvision_models(), name)()
        seen: list[tuple] = []

        def record(layer, inputs, _output):
            seen.append((
                layer.in_channels, inputs[0].shape[-1], layer.out_channels,
                layer.kernel_size[0], layer.stride[0], layer.padding[0], layer.groups,
            ))  # fmt: skip

        for layer in model.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.register_forward_hook(record)
        model(torch.empty(1, 3, 224, 224))
    table = [(r.c, r.h, r.k, r.r, r.stride, r.pad, r.groups) for r in net_shapes.layers(name)]
    assert list(dict.fromkeys(seen)) == table
    counts = {row: seen.count(row) for row in table}
    assert [counts[row] for row in table] == [r.count for r in net_shapes.layers(name)]
