"""``patch(model)``: run a torch model's layers on fastnn, in place, and say what changed.

A supported layer (an instance of exactly ``torch.nn.Conv2d``, ``Linear``, ...) gets the
matching drop-in class of ``fastnn.torch`` as its class: the object stays the same, so its
parameters, buffers, hooks, the optimizer's references to them and the model's
state_dict are untouched.  ``unpatch(model)`` swaps the classes back.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fastnn.torch._modules import DROP_INS

__all__ = ["PatchEntry", "PatchReport", "patch", "unpatch"]

_TORCH_CLASS = {drop_in: layer for layer, drop_in in DROP_INS.items()}


@dataclass(frozen=True)
class PatchEntry:
    """One layer of the model: its qualified name ("" for the model itself), its class
    name, whether it now runs on fastnn, and the new class or why it was left alone."""

    name: str
    layer: str
    swapped: bool
    detail: str


@dataclass(frozen=True)
class PatchReport:
    """What :func:`patch` did, layer by layer; ``print(report)`` shows it as a table."""

    entries: tuple[PatchEntry, ...]

    @property
    def swapped(self) -> list[PatchEntry]:
        """The layers that now run on fastnn."""
        return [e for e in self.entries if e.swapped]

    @property
    def left_alone(self) -> list[PatchEntry]:
        """The layers left as they were, each with the reason."""
        return [e for e in self.entries if not e.swapped]

    def summary(self) -> str:
        return (
            f"fastnn.torch.patch: {len(self.swapped)} layer(s) swapped to fastnn, "
            f"{len(self.left_alone)} left alone"
        )

    def __str__(self) -> str:
        rows = [("layer", "type", "fastnn", "detail")]
        rows += [
            (e.name or "(model)", e.layer, "yes" if e.swapped else "no", e.detail)
            for e in self.entries
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
    if next(layer.children(), None) is not None:
        return None
    return f"fastnn.torch has no drop-in for {_class_name(cls)}"


def _class_name(cls: type) -> str:
    if getattr(nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def patch(model: nn.Module) -> PatchReport:
    """Swap, in place, every layer of ``model`` (itself included) that fastnn can run for
    its ``fastnn.torch`` drop-in, and return a :class:`PatchReport` of every layer:
    swapped, or left alone and why (options fastnn lacks, such as ``padding_mode`` or
    ``divisor_override``; layer types without a drop-in, such as BatchNorm2d).

    Swapped layers still fall back to torch, call by call, for inputs fastnn cannot run
    (other dtypes, devices).  Containers (Sequential, user modules with children) are
    walked, not listed.  Returns the report; the model itself is modified.
    """
    entries = []
    for name, layer in model.named_modules():
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
    return PatchReport(tuple(entries))


def unpatch(model: nn.Module) -> int:
    """Undo :func:`patch`: every ``fastnn.torch`` drop-in layer of ``model`` gets its torch
    class back (in place).  Returns the number of layers changed."""
    count = 0
    for layer in model.modules():
        torch_class = _TORCH_CLASS.get(type(layer))
        if torch_class is not None:
            layer.__class__ = torch_class
            count += 1
    return count
