"""torchvision's model definitions, importable where its compiled extension is not.

torchvision's ``__init__`` registers fake implementations for its compiled operators
(``torchvision::nms`` ...).  Where the extension does not load against the installed torch
(the CPU build pinned here), that registration raises, although the model files
(torchvision/models/*.py) need none of it.  :func:`torchvision_models` imports normally
and, only if that fails, again with the registrations stubbed out.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType

__all__ = ["torchvision_models"]

_REGISTRATIONS = "torchvision._meta_registrations"


def torchvision_models() -> ModuleType:
    """``torchvision.models`` (ImportError if torchvision is not installed)."""
    try:
        return importlib.import_module("torchvision.models")
    except RuntimeError:  # the operator registration of a mismatched extension
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules[_REGISTRATIONS] = types.ModuleType(_REGISTRATIONS)
        return importlib.import_module("torchvision.models")
