"""Blocks whose ``forward()`` does work no leaf module holds, given a forward on fastnn.

A class change swaps a leaf layer, but what a block does in its own ``forward()`` stays in
torch: ResNet's ``out += identity`` and the ReLU after it, MobileNetV2's residual sum and
its ``F.adaptive_avg_pool2d`` head, SqueezeNet's and VGG's convolutions and the ReLUs
after them.
:func:`patch_block` recognises torchvision's BasicBlock, Bottleneck, InvertedResidual,
Conv2dNormActivation, MobileNetV2, Fire, SqueezeNet and VGG by their
class (module and name) AND their structure (the attributes and child types their
forward uses), and gives the object a subclass of its own class whose forward computes
the same thing with fastnn: the residual add and the ReLU after it in one pass
(``fastnn.torch.add(..., activation="relu")``), and batch norm with the activation that
follows it in one pass (``BatchNorm2d.forward_activation``).  A block of another origin,
or one whose structure differs (a user's copy, an edited layer), is left alone.  A plain
``nn.Sequential`` (the class itself, not a subclass) in which a convolution or linear
layer is directly followed by an activation it can fuse runs each such pair as one call
(forward and backward: one autograd node and one pass over the output instead of two),
unless either layer has hooks, which the fused call would skip.

Like the drop-ins, the subclass adds nothing to the instance: parameters, buffers, hooks
and state_dict are untouched, and :func:`unpatch_block` restores the class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module_hooks

from fastnn.torch._bridge import runs_here

__all__ = [
    "BLOCKS",
    "conv_norm_act",
    "is_patched_block",
    "original_class",
    "patch_block",
    "unpatch_block",
]


def _activation_name(layer: nn.Module | None) -> str | None:
    """ "relu" / "relu6" for a ReLU / ReLU6 layer (drop-in or not), None for no layer."""
    if layer is None:
        return None
    if isinstance(layer, nn.ReLU6):  # ReLU6 is a Hardtanh, not a ReLU
        return "relu6"
    if isinstance(layer, nn.ReLU):
        return "relu"
    raise TypeError(f"not a ReLU/ReLU6 layer: {type(layer).__name__}")


def _activate(x: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation is None:
        return x
    if activation == "relu":
        return F.relu(x)
    return F.relu6(x)


def norm_act(bn: nn.Module, x: torch.Tensor, activation: str | None) -> torch.Tensor:
    """``activation(bn(x))``: one fused pass when ``bn`` is fastnn's BatchNorm drop-in and
    fastnn runs ``x``; otherwise the two layers one after the other (torch's ops)."""
    if getattr(bn, "folded", False):
        return x  # folded into the convolution before it, activation included
    fused = getattr(bn, "forward_activation", None)
    if fused is not None and activation is not None:
        return fused(x, activation)
    return _activate(bn(x), activation)


def conv_norm_act(
    conv: nn.Module, bn: nn.Module, x: torch.Tensor, activation: str | None
) -> torch.Tensor:
    """``activation(bn(conv(x)))`` with batch norm and the activation fused (see
    :func:`norm_act`), or one convolution call when ``fuse=True`` folded both into it."""
    return norm_act(bn, conv(x), activation)


def conv_act(conv: nn.Module, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``act(conv(x))`` for a ReLU/ReLU6 layer ``act``: the activation fused into fastnn's
    convolution (training too) when ``conv`` is fastnn's drop-in; the two layers one after
    the other otherwise, or when ``fuse=True`` already made ``act`` an identity."""
    fused = getattr(conv, "forward_activation", None)
    if fused is None or getattr(act, "folded", False):
        return act(conv(x))
    return fused(x, _activation_name(act))


#: The hook tables of a module, and of every module (torch.nn.modules.module), that a
#: fused pair's call would skip (read with getattr: a torch without one has none).
_LAYER_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
_GLOBAL_HOOKS = tuple(f"_global{name}" for name in _LAYER_HOOKS)


def _hooked(layer: nn.Module) -> bool:
    """Whether ``layer`` (or every module, globally) has hooks a fused call would skip."""
    return any(getattr(layer, name, None) for name in _LAYER_HOOKS) or any(
        getattr(_module_hooks, name, None) for name in _GLOBAL_HOOKS
    )


def _fusable(layer: nn.Module, act: nn.Module | None) -> str | None:
    """The activation ``act`` applies, when ``layer`` (fastnn's Conv1d/Conv2d/Linear
    drop-in) can run it in its own write-out and neither layer has hooks; else None."""
    name = _ACTIVATION_NAMES.get(type(act))
    if name is None or name not in getattr(layer, "FUSED_ACTIVATIONS", ()):
        return None
    if getattr(act, "folded", False) or _hooked(layer) or _hooked(act):
        return None
    return name


def _sequential_act(seq: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``seq(x)`` with every convolution or linear layer directly followed by an
    activation it can fuse (ReLU/ReLU6 for convolutions; ReLU, Sigmoid, Tanh for linear)
    run as one call, forward and backward (:func:`_fusable`)."""
    kids = list(seq._modules.values())
    i = 0
    while i < len(kids):
        layer = kids[i]
        name = _fusable(layer, kids[i + 1]) if i + 1 < len(kids) else None
        if name is not None:
            x = layer.forward_activation(x, name)
            i += 2
        else:
            x = layer(x)
            i += 1
    return x


def _sequential_shape(seq: nn.Module) -> bool:
    """A plain Sequential with a convolution or linear layer directly followed by an
    activation it could fuse (decided again at each call: the layers may change)."""
    kids = list(seq._modules.values())
    for layer, act in zip(kids, kids[1:]):
        name = _ACTIVATION_NAMES.get(type(act))
        if name is not None and name in _FUSABLE.get(type(layer), ()):
            return True
    return False


def _sequential_forward(self, x: torch.Tensor) -> torch.Tensor:
    return _sequential_act(self, x)


def residual_add(out: torch.Tensor, identity: torch.Tensor, activation: str | None):
    """``activation(out + identity)`` in one pass on fastnn (torch's ops for what fastnn
    cannot run)."""
    if runs_here(out) and out.dtype == identity.dtype and out.device == identity.device:
        from fastnn.torch._add import add

        return add(out, identity, activation=activation)
    return _activate(out + identity, activation)


# ---------------------------------------------------------------------------------------
# torchvision's blocks: recognition and forwards
# ---------------------------------------------------------------------------------------


def _is(layer: object, *classes: type) -> bool:
    return isinstance(layer, classes)


def _conv_bn_pairs(seq: nn.Module) -> bool:
    """A downsample branch: None, or Sequential(Conv2d, BatchNorm2d)."""
    if seq is None:
        return True
    kids = list(seq.children()) if type(seq) is nn.Sequential else []
    return len(kids) == 2 and _is(kids[0], nn.Conv2d) and _is(kids[1], nn.BatchNorm2d)


def _resnet_block_shape(block: nn.Module, convs: int) -> bool:
    names = [f"conv{i}" for i in range(1, convs + 1)]
    norms = [f"bn{i}" for i in range(1, convs + 1)]
    return (
        all(_is(getattr(block, n, None), nn.Conv2d) for n in names)
        and all(_is(getattr(block, n, None), nn.BatchNorm2d) for n in norms)
        and _is(getattr(block, "relu", None), nn.ReLU)
        and hasattr(block, "downsample")
        and _conv_bn_pairs(block.downsample)
        and not hasattr(block, f"conv{convs + 1}")
    )


def _basic_block_forward(self, x: torch.Tensor) -> torch.Tensor:
    out = conv_norm_act(self.conv1, self.bn1, x, "relu")
    out = conv_norm_act(self.conv2, self.bn2, out, None)
    identity = x if self.downsample is None else self.downsample(x)
    return residual_add(out, identity, "relu")


def _bottleneck_forward(self, x: torch.Tensor) -> torch.Tensor:
    out = conv_norm_act(self.conv1, self.bn1, x, "relu")
    out = conv_norm_act(self.conv2, self.bn2, out, "relu")
    out = conv_norm_act(self.conv3, self.bn3, out, None)
    identity = x if self.downsample is None else self.downsample(x)
    return residual_add(out, identity, "relu")


def _inverted_residual_shape(block: nn.Module) -> bool:
    return isinstance(getattr(block, "use_res_connect", None), bool) and _is(
        getattr(block, "conv", None), nn.Sequential
    )


def _inverted_residual_forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.use_res_connect:
        return residual_add(x, self.conv(x), None)
    return self.conv(x)


def _conv_norm_activation_shape(seq: nn.Module) -> bool:
    kids = list(seq.children())
    return (
        len(kids) in (2, 3)
        and _is(kids[0], nn.Conv2d)
        and _is(kids[1], nn.BatchNorm2d)
        and (len(kids) == 2 or type(kids[2]) in _ACTIVATION_TYPES)
    )


def _conv_norm_activation_forward(self, x: torch.Tensor) -> torch.Tensor:
    act = _activation_name(self[2]) if len(self) == 3 else None
    return conv_norm_act(self[0], self[1], x, act)


def _resnet_shape(model: nn.Module) -> bool:
    return (
        _is(getattr(model, "conv1", None), nn.Conv2d)
        and _is(getattr(model, "bn1", None), nn.BatchNorm2d)
        and _is(getattr(model, "relu", None), nn.ReLU)
        and all(hasattr(model, n) for n in ("maxpool", "layer1", "layer4", "avgpool", "fc"))
    )


def _resnet_forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.maxpool(conv_norm_act(self.conv1, self.bn1, x, "relu"))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(torch.flatten(self.avgpool(x), 1))


def _mobilenet_v2_shape(model: nn.Module) -> bool:
    return _is(getattr(model, "features", None), nn.Module) and _is(
        getattr(model, "classifier", None), nn.Module
    )


def _mobilenet_v2_forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.features(x)
    if runs_here(x):
        from fastnn.torch._adaptive_pool import adaptive_avg_pool2d

        x = adaptive_avg_pool2d(x, (1, 1))
    else:
        x = F.adaptive_avg_pool2d(x, (1, 1))
    return self.classifier(torch.flatten(x, 1))


_FIRE_CONVS = ("squeeze", "expand1x1", "expand3x3")


def _fire_shape(block: nn.Module) -> bool:
    return all(
        _is(getattr(block, name, None), nn.Conv2d)
        and type(getattr(block, f"{name}_activation", None)) in _ACTIVATION_TYPES
        for name in _FIRE_CONVS
    )


def _fire_forward(self, x: torch.Tensor) -> torch.Tensor:
    x = conv_act(self.squeeze, self.squeeze_activation, x)
    return torch.cat(
        [
            conv_act(self.expand1x1, self.expand1x1_activation, x),
            conv_act(self.expand3x3, self.expand3x3_activation, x),
        ],
        1,
    )


def _squeezenet_shape(model: nn.Module) -> bool:
    return _is(getattr(model, "features", None), nn.Sequential) and _is(
        getattr(model, "classifier", None), nn.Sequential
    )


def _squeezenet_forward(self, x: torch.Tensor) -> torch.Tensor:
    x = _sequential_act(self.features, x)
    return torch.flatten(_sequential_act(self.classifier, x), 1)


def _vgg_shape(model: nn.Module) -> bool:
    return (
        _squeezenet_shape(model)
        and _is(getattr(model, "avgpool", None), nn.Module)
        and not hasattr(model, "fc")
    )


def _vgg_forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.avgpool(_sequential_act(self.features, x))
    return self.classifier(torch.flatten(x, 1))


def _activation_types() -> frozenset[type]:
    from fastnn.torch._activation_modules import ReLU6
    from fastnn.torch._modules import ReLU

    return frozenset({nn.ReLU, nn.ReLU6, ReLU, ReLU6})


def _activation_names() -> dict[type, str]:
    """Activation layer class (torch's and fastnn's drop-ins) -> the activation's name."""
    from fastnn.torch._activation_modules import ReLU6
    from fastnn.torch._modules import ReLU, Sigmoid, Tanh

    return {nn.ReLU: "relu", ReLU: "relu", nn.ReLU6: "relu6", ReLU6: "relu6",
            nn.Sigmoid: "sigmoid", Sigmoid: "sigmoid", nn.Tanh: "tanh", Tanh: "tanh"}  # fmt: skip


def _fusable_layers() -> dict[type, frozenset[str]]:
    """Layer class (torch's and fastnn's drop-ins) -> the activations its drop-in fuses."""
    from fastnn.torch import _modules as m

    conv, dense = m.Conv2d.FUSED_ACTIVATIONS, m.Linear.FUSED_ACTIVATIONS
    return {nn.Conv1d: conv, m.Conv1d: conv, nn.Conv2d: conv, m.Conv2d: conv,
            nn.Linear: dense, m.Linear: dense}  # fmt: skip


_ACTIVATION_TYPES: frozenset[type] = frozenset()
_ACTIVATION_NAMES: dict[type, str] = {}
_FUSABLE: dict[type, frozenset[str]] = {}


@dataclass(frozen=True)
class Block:
    """One recognised torchvision block: where its class lives, the structure its forward
    relies on, the fastnn forward, and what that forward fuses (for the report)."""

    module: str
    name: str
    shape: Callable[[nn.Module], bool]
    forward: Callable
    fuses: str


BLOCKS = (
    Block(
        "torchvision.models.resnet", "BasicBlock", lambda b: _resnet_block_shape(b, 2),
        _basic_block_forward, "BN+ReLU fused; residual add + ReLU in one pass",
    ),
    Block(
        "torchvision.models.resnet", "Bottleneck", lambda b: _resnet_block_shape(b, 3),
        _bottleneck_forward, "BN+ReLU fused; residual add + ReLU in one pass",
    ),
    Block(
        "torchvision.models.mobilenetv2", "InvertedResidual", _inverted_residual_shape,
        _inverted_residual_forward, "residual add on fastnn",
    ),
    Block(
        "torchvision.ops.misc", "Conv2dNormActivation", _conv_norm_activation_shape,
        _conv_norm_activation_forward, "BN+activation fused",
    ),
    Block(
        "torchvision.models.resnet", "ResNet", _resnet_shape, _resnet_forward,
        "stem BN+ReLU fused",
    ),
    Block(
        "torchvision.models.mobilenetv2", "MobileNetV2", _mobilenet_v2_shape,
        _mobilenet_v2_forward, "global average pooling on fastnn",
    ),
    Block(
        "torchvision.models.squeezenet", "Fire", _fire_shape, _fire_forward,
        "conv+ReLU fused (training too)",
    ),
    Block(
        "torchvision.models.squeezenet", "SqueezeNet", _squeezenet_shape, _squeezenet_forward,
        "conv+ReLU fused in features and classifier (training too)",
    ),
    Block(
        "torchvision.models.vgg", "VGG", _vgg_shape, _vgg_forward,
        "conv+ReLU fused in features (training too)",
    ),
    Block(
        "torch.nn.modules.container", "Sequential", _sequential_shape, _sequential_forward,
        "conv/linear + activation fused (training too)",
    ),
)  # fmt: skip

_BY_CLASS = {(b.module, b.name): b for b in BLOCKS}
#: torchvision class -> its fastnn subclass, and back.
_SUBCLASSES: dict[type, type] = {}
_ORIGINAL: dict[type, type] = {}


def recognise(module: nn.Module) -> Block | None:
    """The :class:`Block` ``module`` is (class and structure), or None."""
    global _ACTIVATION_TYPES
    cls = type(module)
    block = _BY_CLASS.get((cls.__module__, cls.__name__))
    if block is None:
        return None
    if not _ACTIVATION_TYPES:
        _ACTIVATION_TYPES = _activation_types()
        _ACTIVATION_NAMES.update(_activation_names())
        _FUSABLE.update(_fusable_layers())
    return block if block.shape(module) else None


def patch_block(module: nn.Module) -> Block | None:
    """Give ``module`` the fastnn forward of the torchvision block it is (in place, by a
    class change); returns the block, or None when it is not one."""
    block = recognise(module)
    if block is None:
        return None
    cls = type(module)
    sub = _SUBCLASSES.get(cls)
    if sub is None:
        sub = type(cls.__name__, (cls,), {"forward": block.forward, "__module__": __name__})
        sub.__qualname__ = f"fastnn.{cls.__name__}"
        _SUBCLASSES[cls] = sub
        _ORIGINAL[sub] = cls
    module.__class__ = sub
    return block


def is_patched_block(module: nn.Module) -> bool:
    """Whether ``module`` carries a fastnn block forward."""
    return type(module) in _ORIGINAL


def unpatch_block(module: nn.Module) -> bool:
    """Restore a patched block's torchvision class; False when it is not one."""
    original = _ORIGINAL.get(type(module))
    if original is None:
        return False
    module.__class__ = original
    return True


def original_class(module: nn.Module) -> type:
    """The class ``module`` had before :func:`patch_block` (its own class otherwise)."""
    return _ORIGINAL.get(type(module), type(module))
