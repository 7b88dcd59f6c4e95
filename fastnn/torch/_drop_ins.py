"""Every fastnn.torch drop-in layer, by the torch.nn class it replaces.

Exact classes only: a subclass of a torch layer may override its forward, so ``patch``
leaves it alone.  The drop-ins live with their family (_modules: convolution, linear,
pooling, the first activations; _norm_modules; _activation_modules; _extra_modules).
"""

from __future__ import annotations

from torch import nn

from fastnn.torch import _activation_modules as _act
from fastnn.torch import _extra_modules as _extra
from fastnn.torch import _modules
from fastnn.torch import _norm_modules as _norm

__all__ = ["DROP_INS"]

DROP_INS: dict[type[nn.Module], type[nn.Module]] = {
    **_modules.DROP_INS,
    nn.BatchNorm1d: _norm.BatchNorm1d,
    nn.BatchNorm2d: _norm.BatchNorm2d,
    nn.Hardtanh: _act.Hardtanh,
    nn.ReLU6: _act.ReLU6,
    nn.LeakyReLU: _act.LeakyReLU,
    nn.SiLU: _act.SiLU,
    nn.GELU: _act.GELU,
    nn.AdaptiveAvgPool1d: _extra.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d: _extra.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d: _extra.AdaptiveMaxPool2d,
    nn.Dropout: _extra.Dropout,
    nn.Flatten: _extra.Flatten,
}
