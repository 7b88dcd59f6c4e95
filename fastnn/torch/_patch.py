"""``patch(model)``: run a torch model's layers on fastnn, in place, and say what changed.

A supported layer (an instance of exactly ``torch.nn.Conv2d``, ``Linear``, ...) gets the
matching drop-in class of ``fastnn.torch`` as its class: the object stays the same, so its
parameters, buffers, hooks, the optimizer's references to them and the model's
state_dict are untouched.  torchvision's blocks whose forward holds work of its own (the
residual add + ReLU, a functional pooling head) get a fastnn forward the same way
(fastnn.torch._blocks).  ``fuse=True`` then folds batch norm into the convolutions for
inference (fastnn.torch._fuse).  ``unpatch(model)`` undoes all of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fastnn.torch import _blocks, _fuse
from fastnn.torch._drop_ins import DROP_INS

__all__ = ["PatchEntry", "PatchReport", "patch", "unpatch"]

_TORCH_CLASS = {drop_in: layer for layer, drop_in in DROP_INS.items()}


@dataclass(frozen=True)
class PatchEntry:
    """One layer of the model: its qualified name ("" for the model itself), its class
    name, whether it now runs on fastnn, and the new class or why it was left alone.
    ``kind`` is "layer" (a leaf layer), "block" (a container given a fastnn forward) or
    "fused" (a layer fused for inference by ``fuse=True``)."""

    name: str
    layer: str
    swapped: bool
    detail: str
    kind: str = "layer"


@dataclass(frozen=True)
class PatchReport:
    """What :func:`patch` did, layer by layer; ``print(report)`` shows it as a table."""

    entries: tuple[PatchEntry, ...]

    @property
    def swapped(self) -> list[PatchEntry]:
        """The leaf layers that now run on fastnn."""
        return [e for e in self.entries if e.swapped and e.kind == "layer"]

    @property
    def left_alone(self) -> list[PatchEntry]:
        """The leaf layers left as they were, each with the reason."""
        return [e for e in self.entries if not e.swapped and e.kind == "layer"]

    @property
    def blocks(self) -> list[PatchEntry]:
        """The blocks (containers) whose forward now runs on fastnn."""
        return [e for e in self.entries if e.kind == "block"]

    @property
    def fused(self) -> list[PatchEntry]:
        """The layers fused for inference (``fuse=True``)."""
        return [e for e in self.entries if e.kind == "fused"]

    @property
    def coverage(self) -> float:
        """The share of leaf layers swapped to fastnn (1.0 when there are none)."""
        leaves = len(self.swapped) + len(self.left_alone)
        return len(self.swapped) / leaves if leaves else 1.0

    def summary(self) -> str:
        text = (
            f"fastnn.torch.patch: {len(self.swapped)} layer(s) swapped to fastnn, "
            f"{len(self.left_alone)} left alone ({self.coverage:.0%} of leaf layers)"
        )
        if self.blocks:
            text += f"; {len(self.blocks)} block(s) with a fastnn forward"
        if self.fused:
            text += f"; {len(self.fused)} layer(s) fused for inference"
        return text

    def __str__(self) -> str:
        rows = [("layer", "type", "fastnn", "detail")]
        rows += [
            (e.name or "(model)", e.layer, "yes" if e.swapped else "no", e.detail)
            for e in self.entries
            if e.kind == "layer"
        ]
        rows += [
            (e.name or "(model)", e.layer, e.kind, e.detail)
            for e in self.entries
            if e.kind != "layer"
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [self.summary()]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<PatchReport: {self.summary()}>"


def _leave_alone_reason(layer: nn.Module) -> str | None:
    """Why a layer that is not an exact supported torch class stays as it is; None for a
    container (its children are reported instead)."""
    cls = type(layer)
    if cls in _TORCH_CLASS:
        return "already a fastnn.torch layer"
    for torch_class in DROP_INS:
        if isinstance(layer, torch_class):
            return (
                f"subclass of torch.nn.{torch_class.__name__} (its forward may differ from torch's)"
            )
    if next(layer.children(), None) is not None or _blocks.is_patched_block(layer):
        return None
    return f"fastnn.torch has no drop-in for {_class_name(cls)}"


def _class_name(cls: type) -> str:
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def patch(model: nn.Module, *, fuse: bool = False) -> PatchReport:
    """Swap, in place, every layer of ``model`` (itself included) that fastnn can run for
    its ``fastnn.torch`` drop-in, and return a :class:`PatchReport` of every layer:
    swapped, or left alone and why (options fastnn lacks, such as ``padding_mode`` or
    ``divisor_override``; layer types without a drop-in).

    Swapped layers still fall back to torch, call by call, for inputs fastnn cannot run
    (other dtypes, devices).  Containers (Sequential, user modules with children) are
    walked, not listed, except torchvision's BasicBlock, Bottleneck, ResNet,
    InvertedResidual, Conv2dNormActivation and MobileNetV2, recognised by class and
    structure, whose forward is replaced by one on fastnn ops (residual add + ReLU in one
    pass, batch norm + activation in one pass), and plain ``nn.Sequential`` containers,
    whose convolution or linear layers directly followed by an activation they can fuse
    (ReLU/ReLU6; ReLU, Sigmoid, Tanh for linear) run each pair as one fastnn call, unless
    a hook is set on either; the report lists them as blocks.

    ``fuse=True`` (a model in eval mode only) then folds every batch norm into the
    convolution before it and runs the following ReLU/ReLU6 in the convolution's (or
    linear layer's) epilogue: one kernel call per conv + BN + activation.  Outputs match
    the unfused model within float32 rounding; the fused model cannot ``.train()`` (it
    raises, pointing to :func:`unpatch`, which restores the original weights exactly).
    Returns the report; the model itself is modified.
    """
    if fuse and any(m.training for m in model.modules()):
        raise ValueError(
            "fastnn.torch.patch(fuse=True) folds batch norm with its running statistics, "
            "for inference: call model.eval() first"
        )
    entries = []
    for name, layer in model.named_modules():
        block = _blocks.patch_block(layer)
        if block is not None:
            entries.append(PatchEntry(name, block.name, True, block.fuses, "block"))
        cls = type(layer)
        drop_in = DROP_INS.get(cls)
        if drop_in is not None:
            reason = drop_in.unsupported(layer)
            if reason is None:
                layer.__class__ = drop_in
                entries.append(
                    PatchEntry(name, cls.__name__, True, f"-> fastnn.torch.{cls.__name__}")
                )
            else:
                entries.append(PatchEntry(name, cls.__name__, False, reason))
            continue
        reason = _leave_alone_reason(layer)
        if reason is not None:
            entries.append(PatchEntry(name, cls.__name__, False, reason))
    if fuse:
        for name, detail in _fuse.fuse(model):
            entries.append(PatchEntry(name, "fused", True, detail, "fused"))
        _fuse.guard_training(model)
    return PatchReport(tuple(entries))


def unpatch(model: nn.Module) -> int:
    """Undo :func:`patch`: every ``fastnn.torch`` drop-in layer of ``model`` gets its torch
    class back, blocks their torchvision forward, and fused layers their original
    parameters (in place).  Returns the number of layers and blocks changed."""
    count = _fuse.unfuse(model)
    for layer in model.modules():
        count += _blocks.unpatch_block(layer)
    for layer in model.modules():
        torch_class = _TORCH_CLASS.get(type(layer))
        if torch_class is not None:
            layer.__class__ = torch_class
            count += 1
    return count
