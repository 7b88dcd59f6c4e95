"""Inference fusion for ``patch(model, fuse=True)``: batch norm folded into the convolution
before it, and the activation after it run in the convolution's (or linear layer's)
epilogue.

Where a convolution, its batch norm and its activation sit:

- in an ``nn.Sequential`` (or a subclass: torchvision's Conv2dNormActivation), as
  consecutive children: Conv, BatchNorm[, ReLU/ReLU6], or Conv/Linear followed directly by
  ReLU/ReLU6 (VGG, SqueezeNet's classifier);
- in a torchvision block, as named attributes (BasicBlock's conv1/bn1, ..., ResNet's stem,
  SqueezeNet's Fire: squeeze + squeeze_activation, ...), listed in :data:`TRIPLES`.  The
  block's own forward (fastnn._blocks) skips a folded batch norm; a Fire block's forward is
  torch's own and calls its activation modules, which become identities.

Folding (in float64, then cast): ``w' = w * gamma / sqrt(var + eps)`` per output channel,
``b' = beta + (b - mean) * gamma / sqrt(var + eps)``.  The folded batch norm and the
absorbed activation layers become identities.  The original parameter objects are kept
(weakly, per layer) so that :func:`unfuse` restores the model exactly.  A fused layer is
inference-only: ``.train()`` raises, pointing to ``fastnn.torch.unpatch``.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from fastnn.torch._activation_modules import ReLU6
from fastnn.torch._blocks import original_class
from fastnn.torch._conv import conv1d, conv2d
from fastnn.torch._dense import linear
from fastnn.torch._modules import Conv1d, Conv2d, Linear, ReLU, runs_with
from fastnn.torch._norm_modules import BatchNorm1d, BatchNorm2d

__all__ = ["TRIPLES", "fuse", "guard_training", "is_fused", "unfuse"]

TRAIN_ERROR = (
    "{name} was fused for inference by fastnn.torch.patch(model, fuse=True) (batch norm "
    "folded into the convolution's weights); it cannot train. Call "
    "fastnn.torch.unpatch(model) to restore the original layers, then .train()"
)

#: Attribute triples (conv, batch norm or None, activation or None) of torchvision blocks
#: that their forward applies in this order, by (module, class name).
TRIPLES: dict[tuple[str, str], tuple[tuple[str, str | None, str | None], ...]] = {
    ("torchvision.models.resnet", "BasicBlock"): (("conv1", "bn1", None), ("conv2", "bn2", None)),
    ("torchvision.models.resnet", "Bottleneck"): (
        ("conv1", "bn1", None), ("conv2", "bn2", None), ("conv3", "bn3", None),
    ),
    ("torchvision.models.resnet", "ResNet"): (("conv1", "bn1", None),),
    ("torchvision.models.squeezenet", "Fire"): (
        ("squeeze", None, "squeeze_activation"),
        ("expand1x1", None, "expand1x1_activation"),
        ("expand3x3", None, "expand3x3_activation"),
    ),
}  # fmt: skip

#: The activation a block's forward applies after conv + bn (its shared ``relu`` layer is
#: used elsewhere too, so it stays a layer; the fused convolution applies it instead).
_BLOCK_ACTIVATION = {
    ("BasicBlock", "conv1"): "relu",
    ("Bottleneck", "conv1"): "relu",
    ("Bottleneck", "conv2"): "relu",
    ("ResNet", "conv1"): "relu",
}


class _InferenceOnly:
    """``.train()`` raises: the layer was fused for inference."""

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError(TRAIN_ERROR.format(name=type(self).__name__))
        return super().train(False)


class _Identity(_InferenceOnly):
    """A batch norm folded into its convolution, or an activation run in its epilogue."""

    folded = True

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input


class FoldedBatchNorm1d(_Identity, BatchNorm1d):
    """A BatchNorm1d folded into the layer before it (an identity)."""


class FoldedBatchNorm2d(_Identity, BatchNorm2d):
    """A BatchNorm2d folded into the convolution before it (an identity)."""


class FusedReLU(_Identity, ReLU):
    """A ReLU run in the epilogue of the layer before it (an identity)."""


class FusedReLU6(_Identity, ReLU6):
    """A ReLU6 run in the epilogue of the layer before it (an identity)."""


_ACTIVATE = {None: lambda x: x, "relu": F.relu, "relu6": F.relu6}


class _FusedConv(_InferenceOnly):
    activation: str | None = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_with(input, self.weight):  # torch's kernels, same folded weights
            return _ACTIVATE[self.activation](self._conv_forward(input, self.weight, self.bias))
        fn = conv2d if isinstance(self, nn.Conv2d) else conv1d
        return fn(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation,
            self.groups, algo=self.algo, activation=self.activation,
        )  # fmt: skip


class _FusedLinear(_InferenceOnly):
    activation: str | None = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not runs_with(input, self.weight):
            return _ACTIVATE[self.activation](F.linear(input, self.weight, self.bias))
        return linear(input, self.weight, self.bias, activation=self.activation)


_FUSED_CLASSES: dict[tuple[type, str | None], type] = {}
_TORCH_OF = {
    FoldedBatchNorm1d: nn.BatchNorm1d,
    FoldedBatchNorm2d: nn.BatchNorm2d,
    FusedReLU: nn.ReLU,
    FusedReLU6: nn.ReLU6,
}


def _fused_class(layer: nn.Module, activation: str | None) -> type:
    base = {nn.Conv1d: Conv1d, nn.Conv2d: Conv2d, nn.Linear: Linear}[_torch_class(layer)]
    key = (base, activation)
    cls = _FUSED_CLASSES.get(key)
    if cls is None:
        mixin = _FusedLinear if base is Linear else _FusedConv
        suffix = {None: "", "relu": "ReLU", "relu6": "ReLU6"}[activation]
        cls = type(f"Fused{base.__name__}{suffix}", (mixin, base), {"activation": activation})
        cls.__module__ = __name__
        _FUSED_CLASSES[key] = cls
        _TORCH_OF[cls] = _torch_class(layer)
    return cls


def _torch_class(layer: nn.Module) -> type:
    for torch_class in (nn.Conv1d, nn.Conv2d, nn.Linear):
        if isinstance(layer, torch_class):
            return torch_class
    raise TypeError(type(layer).__name__)


#: layer -> its parameters before folding (weight, bias), for unfuse.
_ORIGINAL_PARAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def is_fused(layer: nn.Module) -> bool:
    """Whether ``layer`` is one of the fused / folded inference layers."""
    return type(layer) in _TORCH_OF


def _foldable_bn(conv: nn.Module, bn: nn.Module | None) -> bool:
    if bn is None:
        return True
    expected = BatchNorm2d if isinstance(conv, nn.Conv2d) else BatchNorm1d
    return (
        type(bn) is expected
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.weight.shape[0]
    )


def _fusable(conv: nn.Module, bn: nn.Module | None, act: nn.Module | None) -> bool:
    if type(conv) not in (Conv1d, Conv2d, Linear) or not _foldable_bn(conv, bn):
        return False
    if isinstance(conv, Linear) and bn is not None:
        return False
    return act is None or type(act) in (ReLU, ReLU6)


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.Module | None) -> None:
    weight, bias = conv.weight, conv.bias
    _ORIGINAL_PARAMS[conv] = (weight, bias)
    if bn is None:
        return
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bias is not None:
        shift = shift + bias.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    shape = (-1,) + (1,) * (weight.dim() - 1)
    conv.weight = nn.Parameter((weight.double() * scale.view(shape)).to(weight.dtype))
    conv.bias = nn.Parameter(shift.to(weight.dtype))


def _fuse_one(conv, bn, act_layer, activation: str | None) -> str:
    """Fold ``bn`` into ``conv`` and run ``activation`` in its epilogue."""
    if act_layer is not None:
        activation = "relu6" if isinstance(act_layer, nn.ReLU6) else "relu"
    _fold(conv, bn)
    conv.__class__ = _fused_class(conv, activation)
    parts = [type(conv).__name__]
    if bn is not None:
        bn.__class__ = FoldedBatchNorm2d if isinstance(bn, nn.BatchNorm2d) else FoldedBatchNorm1d
        parts.append("BN folded")
    if act_layer is not None:
        act_layer.__class__ = FusedReLU6 if activation == "relu6" else FusedReLU
    if activation is not None:
        parts.append(f"{activation} in epilogue")
    return ", ".join(parts)


def _uses(model: nn.Module) -> dict[int, int]:
    counts: dict[int, int] = {}
    for layer in model.modules(remove_duplicate=False):
        counts[id(layer)] = counts.get(id(layer), 0) + 1
    return counts


def fuse(model: nn.Module) -> list[tuple[str, str]]:
    """Fold and fuse every conv [+ batch norm] [+ ReLU/ReLU6] run of ``model`` (already
    patched) in place; returns ``(layer name, what was fused)`` per fused layer."""
    uses = _uses(model)
    names = {id(m): n for n, m in model.named_modules()}
    done: list[tuple[str, str]] = []

    def once(layer: nn.Module | None) -> bool:
        return layer is None or uses.get(id(layer), 0) == 1

    for parent in list(model.modules()):
        cls = original_class(parent)
        triples = TRIPLES.get((cls.__module__, cls.__name__), ())
        for conv_name, bn_name, act_name in triples:
            conv = getattr(parent, conv_name)
            bn = getattr(parent, bn_name) if bn_name else None
            act = getattr(parent, act_name) if act_name else None
            if not (once(conv) and once(bn) and once(act) and _fusable(conv, bn, act)):
                continue
            activation = _BLOCK_ACTIVATION.get((cls.__name__, conv_name))
            done.append((names[id(conv)], _fuse_one(conv, bn, act, activation)))
        if isinstance(parent, nn.Sequential):
            kids = list(parent.children())
            i = 0
            while i < len(kids):
                conv = kids[i]
                bn = kids[i + 1] if i + 1 < len(kids) and _is_bn(kids[i + 1]) else None
                j = i + 1 + (bn is not None)
                act = kids[j] if j < len(kids) and type(kids[j]) in (ReLU, ReLU6) else None
                if (bn is not None or act is not None) and _fusable(conv, bn, act):
                    if once(conv) and once(bn) and once(act) and not is_fused(conv):
                        done.append((names[id(conv)], _fuse_one(conv, bn, act, None)))
                        i = j + (act is not None)
                        continue
                i += 1
    return done


def _is_bn(layer: nn.Module) -> bool:
    return type(layer) in (BatchNorm1d, BatchNorm2d)


_GUARDED: dict[type, type] = {}
_UNGUARDED: dict[type, type] = {}


def _guarded_train(self, mode: bool = True):
    if mode:
        raise RuntimeError(TRAIN_ERROR.format(name=_UNGUARDED[type(self)].__name__))
    return super(type(self), self).train(False)


def guard_training(model: nn.Module) -> None:
    """Make ``model.train()`` raise before it changes any layer's mode (the fused layers
    raise too, for calls on a part of the model)."""
    cls = type(model)
    if cls in _UNGUARDED or not any(is_fused(m) for m in model.modules()):
        return
    sub = _GUARDED.get(cls)
    if sub is None:
        sub = type(cls.__name__, (cls,), {"train": _guarded_train, "__module__": cls.__module__})
        sub.__qualname__ = cls.__qualname__
        _GUARDED[cls] = sub
        _UNGUARDED[sub] = cls
    model.__class__ = sub


def unfuse(model: nn.Module) -> int:
    """Undo :func:`fuse` (and :func:`guard_training`): original parameters and torch
    classes back; returns the number of layers restored."""
    count = 0
    original = _UNGUARDED.get(type(model))
    if original is not None:
        model.__class__ = original
    for layer in model.modules():
        torch_class = _TORCH_OF.get(type(layer))
        if torch_class is None:
            continue
        original = _ORIGINAL_PARAMS.pop(layer, None)
        if original is not None:
            layer.weight, layer.bias = original
        layer.__class__ = torch_class
        count += 1
    return count
