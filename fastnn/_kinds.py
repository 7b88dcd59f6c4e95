"""Array kinds: which library's array a value is ("numpy", "cupy", "numba", "cuda"), without
importing any GPU package.  Imports nothing of fastnn, so every layer may use it."""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["KIND_NAMES", "array_kind"]

#: Human-readable names of the array kinds, for error messages.
KIND_NAMES = {
    "numpy": "numpy.ndarray",
    "cupy": "cupy.ndarray",
    "numba": "numba device array",
    "cuda": "CUDA array (__cuda_array_interface__)",
}


_KIND_BY_TYPE: dict[type, str] = {np.ndarray: "numpy"}


def array_kind(value: object) -> str | None:
    """Return the kind of array ``value`` is: "numpy", "cupy", "numba", "cuda" or None.

    CuPy and Numba are recognised by the module that defines the type (cupy's classes are
    only checked against ``sys.modules``), so this never imports a GPU package.  The answer
    is cached per type for the known array classes.
    """
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is not None:
        return kind
    return _classify(value)


def _classify(value: object) -> str | None:
    cls = type(value)
    if isinstance(value, (np.ndarray, np.generic)):  # numpy scalars count as 0-d arrays
        _KIND_BY_TYPE[cls] = "numpy"
        return "numpy"
    root = (getattr(cls, "__module__", "") or "").split(".", 1)[0]
    if root == "cupy":
        cupy = sys.modules.get("cupy")
        if cupy is not None and isinstance(value, cupy.ndarray):
            _KIND_BY_TYPE[cls] = "cupy"
            return "cupy"
    if root in ("numba", "numba_cuda") and hasattr(value, "shape") and hasattr(value, "dtype"):
        # DeviceNDArray, and the simulator's FakeCUDAArray (which has no
        # __cuda_array_interface__ of its own).
        _KIND_BY_TYPE[cls] = "numba"
        return "numba"
    try:
        has_cai = hasattr(value, "__cuda_array_interface__")
    except Exception:  # a property that raises something other than AttributeError
        has_cai = False
    return "cuda" if has_cai else None
