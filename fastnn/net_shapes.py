"""The convolution layers of well-known networks, as shape tables that ship with fastnn.

``fastnn tune NAME`` pre-warms the algorithm choices of these layers, and
bench/scripts/model_convs.py times them against PyTorch.  The tables follow torchvision's
model definitions (ResNet v1.5: the stride of a bottleneck sits on its 3x3 layer; VGG
without batch norm; MobileNetV2 with width 1.0) at 224x224, and LeNet-5 at 32x32; they
hold every convolution layer, with identical layers merged into one row with a count.
torchvision is not needed to use them (tests/test_net_shapes.py checks them against
torchvision's definitions when it is installed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["NETWORKS", "ConvLayer", "layers", "network_names"]


@dataclass(frozen=True)
class ConvLayer:
    """One 2-D convolution layer of a network, without its batch size: input (C, H, W),
    weight (K, C // groups, R, S), square stride, padding and no dilation, ``count``
    times in the network."""

    name: str
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    count: int = 1

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output (height, width)."""
        return (
            (self.h + 2 * self.pad - self.r) // self.stride + 1,
            (self.w + 2 * self.pad - self.s) // self.stride + 1,
        )

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.c, self.h, self.w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c // self.groups, self.r, self.s)

    def flops(self, batch: int) -> int:
        """Forward multiply-adds x 2 for one call at ``batch``."""
        return (
            2 * batch * self.k * (self.c // self.groups) * self.r * self.s * math.prod(self.out_hw)
        )


def _conv(name, c, hw, k, kernel, stride=1, pad=None, groups=1) -> ConvLayer:
    pad = kernel // 2 if pad is None else pad
    return ConvLayer(name, c, hw, hw, k, kernel, kernel, stride, pad, groups)


def _merge(rows: list[ConvLayer]) -> tuple[ConvLayer, ...]:
    """Identical layers as one row with a count (first name kept, order of first use)."""
    merged: dict[tuple, ConvLayer] = {}
    for row in rows:
        key = (row.c, row.h, row.w, row.k, row.r, row.s, row.stride, row.pad, row.groups)
        if key in merged:
            first = merged[key]
            merged[key] = ConvLayer(**{**first.__dict__, "count": first.count + row.count})
        else:
            merged[key] = row
    return tuple(merged.values())


def _resnet18() -> list[ConvLayer]:
    rows = [_conv("conv1", 3, 224, 64, 7, 2, 3)]
    c, hw = 64, 56
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            tag = f"layer{stage}.{block}"
            rows.append(_conv(f"{tag}.conv1", c, hw, width, 3, stride))
            out = hw // stride
            rows.append(_conv(f"{tag}.conv2", width, out, width, 3))
            if stride != 1 or c != width:
                rows.append(_conv(f"{tag}.downsample", c, hw, width, 1, stride, 0))
            c, hw = width, out
    return rows


def _resnet50() -> list[ConvLayer]:
    rows = [_conv("conv1", 3, 224, 64, 7, 2, 3)]
    c, hw = 64, 56
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1
            tag = f"layer{stage}.{block}"
            out = hw // stride
            rows.append(_conv(f"{tag}.conv1", c, hw, width, 1, 1, 0))
            rows.append(_conv(f"{tag}.conv2", width, hw, width, 3, stride))
            rows.append(_conv(f"{tag}.conv3", width, out, 4 * width, 1, 1, 0))
            if block == 0:
                rows.append(_conv(f"{tag}.downsample", c, hw, 4 * width, 1, stride, 0))
            c, hw = 4 * width, out
    return rows


def _vgg11() -> list[ConvLayer]:
    rows, c, hw = [], 3, 224
    plan = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
    index = 0
    for item in plan:
        if item == "M":
            hw //= 2
            continue
        rows.append(_conv(f"features.{index}", c, hw, item, 3))
        c = item
        index += 1
    return rows


def _mobilenet_v2() -> list[ConvLayer]:
    rows = [_conv("features.0", 3, 224, 32, 3, 2)]
    c, hw, index = 32, 112, 1
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
    settings += ((6, 160, 3, 2), (6, 320, 1, 1))
    for expand, out, repeats, first_stride in settings:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            hidden = c * expand
            tag = f"features.{index}"
            if expand != 1:
                rows.append(_conv(f"{tag}.expand", c, hw, hidden, 1, 1, 0))
            rows.append(_conv(f"{tag}.depthwise", hidden, hw, hidden, 3, stride, 1, hidden))
            hw = (hw + 2 - 3) // stride + 1
            rows.append(_conv(f"{tag}.project", hidden, hw, out, 1, 1, 0))
            c, index = out, index + 1
    rows.append(_conv(f"features.{index}", c, hw, 1280, 1, 1, 0))
    return rows


def _squeezenet1_1() -> list[ConvLayer]:
    rows = [_conv("features.0", 3, 224, 64, 3, 2, 0)]
    c, hw = 64, 55  # after the first max pool (3x3, stride 2, ceil_mode)
    fires = ((3, 16, 64), (4, 16, 64), "M", (6, 32, 128), (7, 32, 128), "M")
    fires += ((9, 48, 192), (10, 48, 192), (11, 64, 256), (12, 64, 256))
    for item in fires:
        if item == "M":
            hw = (hw - 3 + 1) // 2 + 1  # ceil_mode
            continue
        index, squeeze, expand = item
        tag = f"features.{index}"
        rows.append(_conv(f"{tag}.squeeze", c, hw, squeeze, 1, 1, 0))
        rows.append(_conv(f"{tag}.expand1x1", squeeze, hw, expand, 1, 1, 0))
        rows.append(_conv(f"{tag}.expand3x3", squeeze, hw, expand, 3, 1, 1))
        c = 2 * expand
    rows.append(_conv("classifier.1", c, hw, 1000, 1, 1, 0))
    return rows


def _lenet() -> list[ConvLayer]:
    return [_conv("C1", 1, 32, 6, 5, 1, 0), _conv("C3", 6, 14, 16, 5, 1, 0)]


#: Network name -> its convolution layers (identical layers merged, with a count).
NETWORKS: dict[str, tuple[ConvLayer, ...]] = {
    "resnet18": _merge(_resnet18()),
    "resnet50": _merge(_resnet50()),
    "vgg11": _merge(_vgg11()),
    "mobilenet_v2": _merge(_mobilenet_v2()),
    "squeezenet1_1": _merge(_squeezenet1_1()),
    "lenet": _merge(_lenet()),
}

#: The batch size each table is usually timed at.
DEFAULT_BATCH = {
    "resnet18": 8,
    "resnet50": 8,
    "vgg11": 8,
    "mobilenet_v2": 8,
    "squeezenet1_1": 8,
    "lenet": 128,
}


def network_names() -> tuple[str, ...]:
    """The networks that have a shape table."""
    return tuple(NETWORKS)


def layers(name: str) -> tuple[ConvLayer, ...]:
    """The convolution layers of network ``name`` (see :func:`network_names`)."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(
            f"unknown network {name!r}; expected one of {', '.join(NETWORKS)}"
        ) from None
