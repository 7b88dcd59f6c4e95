"""fastnn.torch.patch on torchvision's own models: every leaf layer swapped, the blocks
given fastnn forwards, outputs and float64 gradients equal to torch's, and fuse=True
(folded batch norm) matching the unfused model and undone exactly by unpatch."""

from __future__ import annotations

import copy

import pytest

from tests.utils import import_torch

torch = pytest.importorskip("torch")
import_torch()

from torch import nn  # noqa: E402

import fastnn.torch as ft  # noqa: E402
from fastnn.bench.torchvision_models import torchvision_models  # noqa: E402

models = torchvision_models()

#: model -> (blocks recognised by patch, by class name)
BLOCKS = {
    "resnet18": {"ResNet": 1, "BasicBlock": 8},
    "resnet50": {"ResNet": 1, "Bottleneck": 16},
    "mobilenet_v2": {"MobileNetV2": 1, "InvertedResidual": 17, "Conv2dNormActivation": 35},
    "vgg11": {"VGG": 1, "Sequential": 2},  # features and classifier: conv/linear + ReLU
    "squeezenet1_1": {"SqueezeNet": 1, "Fire": 8, "Sequential": 2},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _build(name: str, dtype=torch.float64, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(models, name)(**kwargs).to(dtype)
    # Non-trivial running statistics and affine parameters, so that folding is tested.
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("name", list(BLOCKS))
def test_every_leaf_layer_is_swapped(name):
    with torch.device("meta"):  # no memory for VGG's 100M parameters
        model = getattr(models, name)()
    leaves = sum(1 for m in model.modules() if next(m.children(), None) is None)
    report = ft.patch(model)
    assert report.left_alone == [], str(report)
    assert len(report.swapped) == leaves and report.coverage == 1.0
    found: dict[str, int] = {}
    for entry in report.blocks:
        found[entry.layer] = found.get(entry.layer, 0) + 1
    assert found == BLOCKS[name]
    assert "100% of leaf layers" in report.summary()
    assert ft.unpatch(model) == leaves + sum(BLOCKS[name].values())
    assert all(type(m).__module__.startswith(("torch.", "torchvision.")) for m in model.modules())


def _relative(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "squeezenet1_1"])
def test_patched_model_matches_torch_in_float64(name):
    model = _build(name, num_classes=10)
    patched = copy.deepcopy(model)
    ft.patch(patched)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    model.eval(), patched.eval()
    with torch.no_grad():
        assert _relative(patched(x), model(x)) <= 1e-10

    model.train(), patched.train()
    target = torch.tensor([1, 7])
    for m in (model, patched):
        for layer in m.modules():  # dropout masks differ between the libraries
            if isinstance(layer, nn.Dropout):
                layer.eval()
        m.zero_grad()
        nn.functional.cross_entropy(m(x), target).backward()
    floor = max(float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None)
    for (pname, p), q in zip(patched.named_parameters(), model.parameters()):
        if q.grad is None:
            assert p.grad is None, pname
            continue
        scale = max(float(q.grad.abs().max()), floor)
        assert float((p.grad - q.grad).abs().max()) / scale <= 1e-8, pname
    for a, b in zip(patched.buffers(), model.buffers()):
        assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, fused", [("squeezenet1_1", 26), ("vgg11", 8)])
def test_training_forward_fuses_every_conv_relu_pair(name, fused, monkeypatch):
    """SqueezeNet's and VGG's convolutions run with the ReLU after them in one fastnn call
    while training, not only with fuse=True."""
    import fastnn.torch._modules as drop_ins

    seen = []
    real = drop_ins.conv2d

    def spy(*args, activation=None, **kwargs):
        seen.append(activation)
        return real(*args, activation=activation, **kwargs)

    monkeypatch.setattr(drop_ins, "conv2d", spy)
    torch.manual_seed(0)
    model = getattr(models, name)(num_classes=10)
    if name == "vgg11":  # keep the test small: the features and a tiny classifier
        model.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 10))
    ft.patch(model)
    model.train()
    out = model(torch.randn(1, 3, 32, 32))
    out.sum().backward()
    assert seen.count("relu") == fused and len(seen) == fused


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1"])
def test_fused_inference_matches_and_unpatch_restores(name):
    model = _build(name, dtype=torch.float32, num_classes=10).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params_before = {k: id(v) for k, v in model.named_parameters()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    report = ft.patch(model, fuse=True)
    assert report.fused, str(report)
    with torch.no_grad():
        got = model(x)
    assert _relative(got, expected) <= 2e-5
    with pytest.raises(RuntimeError, match="unpatch"):
        model.train()
    assert not any(m.training for m in model.modules())
    ft.unpatch(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert {k: id(v) for k, v in model.named_parameters()} == params_before
    model.train()  # allowed again
    assert all(type(m).__module__.startswith(("torch.", "torchvision.")) for m in model.modules())


def test_fuse_needs_eval_mode():
    model = _build("resnet18", dtype=torch.float32, num_classes=10)
    with pytest.raises(ValueError, match="eval"):
        ft.patch(model, fuse=True)


def test_fused_conv_relu_without_batch_norm():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(inplace=True), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 5), nn.ReLU()).eval()  # fmt: skip
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        report = ft.patch(model, fuse=True)
        assert len(report.fused) == 2
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_lookalike_block_from_elsewhere_is_left_alone():
    class BasicBlock(nn.Module):  # same name and attributes, another module
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(4)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(4)
            self.downsample = None

        def forward(self, x):
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) - x)

    block = BasicBlock()
    report = ft.patch(block)
    assert report.blocks == []
    assert type(block) is BasicBlock


def test_torchvision_block_with_changed_structure_is_left_alone():
    block = models.resnet.BasicBlock(4, 4)
    block.bn2 = nn.GroupNorm(2, 4)  # its forward still works; the structure differs
    report = ft.patch(block)
    assert report.blocks == []
    assert type(block) is models.resnet.BasicBlock
