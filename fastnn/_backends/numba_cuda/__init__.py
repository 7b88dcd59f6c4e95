"""The ``numba-cuda`` backend: ``@cuda.jit`` kernels (kernels/numba_cuda/) for GPU arrays.

Also runs under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba is
imported), which is how its kernels are tested on machines without a GPU (tests/cudasim;
tests/cudasim/ptx_check.py also compiles every kernel for a real GPU, without one).

Op modules, one per file of fastnn/ops/ (plus ``softmax``, ``checks`` and ``optim``), each
registering its ops with ``fastnn._dispatch.register``; helpers start with ``_``:
``_device`` (arrays in and out, streams, the :func:`device_arrays` wrapper), ``_launch``
(launch-size arithmetic), ``_gemm`` (the GEMM driver), ``_reduce`` (reduction launches).
Each kernel module under kernels/numba_cuda/ builds its kernels per dtype, lazily, at first use.
"""

from __future__ import annotations

import os
from importlib import metadata

from fastnn._backends import load_op_modules

MIN_VERSION = (0, 30, 4)


def simulated() -> bool:
    """True when numba runs CUDA kernels in its simulator instead of on a GPU."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _version() -> tuple[int, ...] | None:
    try:
        text = metadata.version("numba-cuda")
    except metadata.PackageNotFoundError:
        return None
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def probe() -> str | None:
    """None when numba-cuda can launch kernels here (or simulate them), else why not."""
    version = _version()
    if version is None:
        return "numba-cuda is not installed (pip install 'fastnn[cuda]')"
    if version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        return f"numba-cuda {'.'.join(map(str, version))} is too old; fastnn needs >= {need}"
    try:
        from numba import cuda
    except Exception as exc:
        return f"numba.cuda does not import: {type(exc).__name__}: {exc}"
    if simulated():
        return None
    try:
        if cuda.is_available():
            cuda.get_current_device()
            return None
        from numba.cuda.cudadrv.driver import driver

        error = getattr(driver, "initialization_error", None)
    except Exception as exc:
        error = exc
    message = " ".join(str(error or "").split()) or "no CUDA GPU was found"
    return f"no usable CUDA GPU or driver: {message}"


def describe() -> str:
    from numba import cuda

    if simulated():
        return f"numba-cuda {metadata.version('numba-cuda')} (CUDA simulator)"
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    return f"numba-cuda {metadata.version('numba-cuda')} on {name}"


def load() -> None:
    load_op_modules(__name__)
