"""fastnn: fast, correct neural-network kernels behind one API.

The same call runs on numpy arrays (the Cython ``cpu`` backend, or the plain-NumPy
``reference``) and on CuPy / Numba device arrays (the ``cupy`` and ``numba-cuda``
backends).  See shared/API.md for the contract; ``python -m fastnn info`` for what runs here.
"""

from fastnn._autotune import autotune
from fastnn._dispatch import backends, use_backend
from fastnn._threads import get_num_threads, set_num_threads
from fastnn._version import __version__
from fastnn.ops import *  # noqa: F403  (the public ops; their list is fastnn.ops.OPS)
from fastnn.ops import OPS

__all__ = [
    *OPS,
    "__version__",
    "autotune",
    "backends",
    "get_num_threads",
    "set_num_threads",
    "use_backend",
]
