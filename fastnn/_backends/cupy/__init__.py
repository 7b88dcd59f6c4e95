"""The ``cupy`` backend: cuBLAS through CuPy and CUDA C kernels (kernels/cuda/*.cu) loaded
with ``cupy.RawModule``.  CuPy 14 has no cuDNN: convolution and pooling are our kernels."""

from __future__ import annotations

from fastnn._backends import load_op_modules


def probe() -> str | None:
    """None when CuPy imports and sees a GPU, else why not."""
    try:
        import cupy
    except ImportError as exc:
        return f"cupy is not installed (pip install 'fastnn[cuda]'): {exc}"
    except Exception as exc:
        return f"cupy does not import: {type(exc).__name__}: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        message = " ".join(str(exc).split())
        return f"no usable CUDA GPU or driver: {message}"
    if count < 1:
        return "no CUDA GPU is available"
    return None


def describe() -> str:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"CuPy {cupy.__version__} on {name}"


def load() -> None:
    load_op_modules(__name__)
