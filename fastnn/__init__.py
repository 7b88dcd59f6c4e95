"""fastnn: fast, correct neural-network kernels behind one API.

The same call runs on numpy arrays (the Cython ``cpu`` backend, or the plain-NumPy
``reference``) and on CuPy / Numba device arrays (the ``cupy`` and ``numba-cuda``
backends).  See docs/API.md for the contract; ``python -m fastnn info`` for what runs here.
"""

from fastnn._autotune import autotune
from fastnn._backends.cpu._outputs import empty_cache
from fastnn._dispatch import backends, use_backend
from fastnn._kinds import array_kind
from fastnn._threads import get_num_threads, set_num_threads
from fastnn._tune import tune
from fastnn._version import __version__
from fastnn.ops import *  # noqa: F403  (the public ops; their list is fastnn.ops.OPS)
from fastnn.ops import (
    OPS,
    UPDATES,
    AdadeltaHyper,
    AdagradHyper,
    AdamHyper,
    RMSpropHyper,
    SGDHyper,
)

__all__ = [
    *OPS,
    *UPDATES,
    "AdadeltaHyper",
    "AdagradHyper",
    "AdamHyper",
    "RMSpropHyper",
    "SGDHyper",
    "__version__",
    "array_kind",
    "autotune",
    "backends",
    "empty_cache",
    "get_num_threads",
    "set_num_threads",
    "tune",
    "use_backend",
]

#: Subpackages reachable as attributes (``fastnn.nn.Linear``) without importing them
#: at ``import fastnn``: the training toolkit.
_LAZY_SUBMODULES = ("nn", "optim", "init")


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"fastnn.{name}")
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
