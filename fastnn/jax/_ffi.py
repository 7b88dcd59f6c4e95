"""The XLA FFI route: fastnn's C kernels called by XLA itself, with no Python per call.

The handler (kernels/jax/fastnn_jax_ffi.cc, with the kernel entry points of
kernels/jax/fastnn_jax_kernels.c) is compiled on first use, against the FFI headers of the
jaxlib installed (``jax.ffi.include_dir()``), with the system's C and C++ compilers (``CC``,
``CXX``; the flags of fastnn's own build: -O3 -fopenmp), into a cache folder
(``FASTNN_JAX_CACHE``, default ``~/.cache/fastnn/jax``) under a name that hashes the sources,
the kernel headers, jaxlib's version and the compilers: a later process loads it in
milliseconds.  Building it at ``pip install`` time instead would tie fastnn's build to jax
(an optional extra) and to one jaxlib; compiling on first use keeps ``pip install -e .``
free of jax, and a new jaxlib simply builds a new copy.  Without a compiler (or on a
platform the handler does not build on) :func:`library` returns None and says why in
:func:`unavailable_reason`; the ops then take the callback routes.

Covered: relu / sigmoid / tanh (forward and backward), softmax / log_softmax along the last
axis (forward and backward), linear with its fused activation (forward and backward: one
gemm with the bias and activation in its epilogue; two gemms and a column sum back).
Convolution and pooling stay on the callback routes: their algorithm choice (autotuned
im2col / direct / Winograd plans, measured and cached by fastnn's Python layer) and their
thread teams live in Python and Cython, not in a C entry point a handler could call.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jaxlib

__all__ = ["build", "library", "unavailable_reason"]

#: The FFI targets the handler library exports (registered for platform "cpu").
TARGETS = (
    "fastnn_activation",
    "fastnn_activation_backward",
    "fastnn_softmax",
    "fastnn_softmax_backward",
    "fastnn_linear",
    "fastnn_linear_backward",
)

_reason: str | None = None


def _kernel_dir() -> Path:
    import fastnn.kernels

    return Path(next(iter(fastnn.kernels.__path__)))


def _cache_dir() -> Path:
    folder = os.environ.get("FASTNN_JAX_CACHE")
    if folder:
        return Path(folder)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastnn" / "jax"


def _compilers() -> tuple[str, str]:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    cxx = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    if not cc or not cxx:
        raise OSError("no C and C++ compiler found (set CC and CXX)")
    return cc, cxx


def _sources(kernels: Path) -> list[Path]:
    return [kernels / "jax" / "fastnn_jax_kernels.c", kernels / "jax" / "fastnn_jax_ffi.cc"]


def _key(kernels: Path, compilers: tuple[str, str]) -> str:
    digest = hashlib.sha256()
    for path in [*_sources(kernels), *sorted((kernels / "cpu").glob("*.h"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"{jaxlib.__version__}|{compilers}".encode())
    return digest.hexdigest()[:20]


def _compile(kernels: Path, compilers: tuple[str, str], target: Path) -> None:
    cc, cxx = compilers
    c_source, cc_source = _sources(kernels)
    flags = ["-O3", "-fPIC", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [Path(tmp) / "kernels.o", Path(tmp) / "ffi.o"]
        commands = [
            [cc, *flags, "-std=gnu11", f"-I{kernels / 'cpu'}", "-c", str(c_source),
             "-o", str(objects[0])],
            [cxx, *flags, "-std=c++17", "-Wno-return-type", f"-I{jax.ffi.include_dir()}",
             "-c", str(cc_source), "-o", str(objects[1])],
            [cxx, "-shared", "-fopenmp", *map(str, objects), "-o", str(Path(tmp) / "lib.so")],
        ]  # fmt: skip
        for command in commands:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise OSError(f"{' '.join(command[:2])} ... failed:\n{done.stderr[-2000:]}")
        os.replace(Path(tmp) / "lib.so", target)  # atomic: a racing process loads either


def build() -> Path:
    """Compile the handler library if this cache lacks it; return its path.  Raises
    OSError when it cannot be built (no compiler, a compile error)."""
    kernels = _kernel_dir()
    compilers = _compilers()
    target = _cache_dir() / f"libfastnn_jax_{_key(kernels, compilers)}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _compile(kernels, compilers, target)
    return target


@functools.cache
def library() -> ctypes.CDLL | None:
    """The handler library, built if needed and its targets registered with XLA; None
    (see :func:`unavailable_reason`) when it cannot be."""
    global _reason
    if os.environ.get("FASTNN_JAX_FFI", "1") == "0":
        _reason = "switched off by FASTNN_JAX_FFI=0"
        return None
    try:
        lib = ctypes.CDLL(str(build()))
    except OSError as error:
        _reason = f"the XLA FFI handler could not be built: {error}"
        return None
    for name in TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    return lib


def unavailable_reason() -> str | None:
    """Why :func:`library` returned None (None while it has not, or when it works)."""
    return _reason
