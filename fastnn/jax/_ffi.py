"""The XLA FFI route: fastnn's C kernels called by XLA itself, with no Python per call.

The handler (kernels/jax/fastnn_jax_ffi.cc, with the kernel entry points of
kernels/jax/fastnn_jax_{kernels,pool,conv}.c) is compiled on first use (about a minute on
two cores; the sources compile in parallel), against the FFI headers of the jaxlib
installed (``jax.ffi.include_dir()``), with the C and C++ compilers (``CC``, ``CXX``, else
Python's own) and the flags of fastnn's Cython build (:func:`_flags`), into a cache folder
(``FASTNN_JAX_CACHE``, default ``~/.cache/fastnn/jax``) under a name that hashes the sources,
the kernel headers, jaxlib's version, the compilers and the flags: a later process loads it
in milliseconds.  Building it at ``pip install`` time instead would tie fastnn's build to jax
(an optional extra) and to one jaxlib; compiling on first use keeps ``pip install -e .``
free of jax, and a new jaxlib simply builds a new copy.  Without a compiler (or on a
platform the handler does not build on) :func:`library` returns None and says why in
:func:`unavailable_reason`; the ops then take the callback routes.

Covered: relu / sigmoid / tanh (forward and backward), softmax / log_softmax along the last
axis (forward and backward), linear with its fused activation (forward and backward: one
gemm with the bias and activation in its epilogue; two gemms and a column sum back), max
and average pooling 1-D / 2-D (forward and backward), and the convolution passes
(forward, input gradient, weight gradient; the bias gradient) on every CPU algorithm, each
with its plan settled at trace time (fastnn/_backends/cpu/conv_handoff.py): the
channel-blocked, Winograd and depthwise kernels compiled into the handler, the direct row
kernel and im2col + BLAS through the GIL-free C entry points of their Cython modules, whose
addresses :func:`library` hands to the handler once per process (never through an
attribute, so a compiled executable holds no address).  An im2col pass beside a BLAS whose
threads C cannot hold at one (conv_handoff.blas_controls) stays on the callback routes.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sysconfig
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
    "fastnn_max_pool",
    "fastnn_max_pool_backward",
    "fastnn_avg_pool",
    "fastnn_avg_pool_backward",
    "fastnn_conv_forward",
    "fastnn_conv_input_grad",
    "fastnn_conv_weight_grad",
    "fastnn_conv_weight_grad_and_bias",
    "fastnn_conv_bias_grad",
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
    python_cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    python_cxx = (sysconfig.get_config_var("CXX") or "c++").split()[0]
    cc = shutil.which(os.environ.get("CC", python_cc)) or shutil.which("gcc")
    cxx = shutil.which(os.environ.get("CXX", python_cxx)) or shutil.which("g++")
    if not cc or not cxx:
        raise OSError("no C and C++ compiler found (set CC and CXX)")
    return cc, cxx


def _flags() -> list[str]:
    """The flags of fastnn's Cython build (setup.py's on top of Python's CFLAGS), so that
    the handler's kernels round as the Cython modules' do: Python's -fwrapv, for one,
    changes how gcc vectorises some loops and with it where it fuses multiply-adds
    (Winograd's float64 results differed in the last bits without it)."""
    base = shlex.split(sysconfig.get_config_var("CFLAGS") or "")
    return [*base, "-fPIC", "-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
            "-Wno-unused-function", "-Wno-unreachable-code"]  # fmt: skip


def _sources(kernels: Path) -> list[Path]:
    """The C sources, then the C++ handler source (last)."""
    names = ("fastnn_jax_kernels.c", "fastnn_jax_pool.c", "fastnn_jax_conv.c",
             "fastnn_jax_team.c", "fastnn_jax_ffi.cc")  # fmt: skip
    return [kernels / "jax" / name for name in names]


def _key(kernels: Path, compilers: tuple[str, str]) -> str:
    digest = hashlib.sha256()
    for path in [*_sources(kernels), *sorted((kernels / "cpu").glob("*.h"))]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"{jaxlib.__version__}|{compilers}|{_flags()}".encode())
    return digest.hexdigest()[:20]


def _compile(kernels: Path, compilers: tuple[str, str], target: Path) -> None:
    cc, cxx = compilers
    *c_sources, cc_source = _sources(kernels)
    flags = _flags()
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        objects = [Path(tmp) / f"{source.stem}.o" for source in [*c_sources, cc_source]]
        compiles = [
            [cc, *flags, f"-I{kernels / 'cpu'}", "-c", str(source), "-o", str(obj)]
            for source, obj in zip(c_sources, objects)
        ]
        compiles.append(
            [cxx, *flags, "-std=c++17", "-Wno-return-type", f"-I{jax.ffi.include_dir()}",
             "-c", str(cc_source), "-o", str(objects[-1])]
        )  # fmt: skip
        _run_all(compiles)  # at once: the sources are independent
        _run_all([[cxx, "-shared", "-fopenmp", *map(str, objects), "-o", f"{tmp}/lib.so"]])
        os.replace(Path(tmp) / "lib.so", target)  # atomic: a racing process loads either


def _run_all(commands: list[list[str]]) -> None:
    """Run the commands side by side; OSError with the first failure's messages."""
    running = [
        (c, subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for c in commands
    ]
    failures = []
    for command, process in running:
        _, err = process.communicate()
        if process.returncode != 0:
            failures.append(f"{' '.join(command[:2])} ... failed:\n{err[-2000:]}")
    if failures:
        raise OSError(failures[0])


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
    _hand_over_entries(lib)
    _follow_calibrations(lib)
    for name in TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    return lib


def _hand_over_entries(lib: ctypes.CDLL) -> None:
    """Give the handler the C entry points of the direct row kernel and im2col, and the
    BLAS thread-count functions (conv_handoff.c_entries), before any call can need them."""
    from fastnn._backends.cpu.conv_handoff import c_entries

    setter = lib.fnn_jax_conv_set_entries
    setter.argtypes = [ctypes.c_void_p] * 4
    setter.restype = None
    setter(*(ctypes.c_void_p(address or None) for address in c_entries()))


def _follow_calibrations(lib: ctypes.CDLL) -> None:
    """Give the handler library's copies of the CPU backend's measured thresholds (the
    parallel scale of the pooling kernels' thread thresholds; the GEMM's flops per
    thread, short-k, tile speed, few-row prefetch and column-tile width) the values this
    process measured, now and after every new measurement, and its elementwise loops the
    instruction-set level fastnn._isa chose."""
    from fastnn import _isa
    from fastnn._backends.cpu import _gemm, _parallel

    set_level = lib.fnn_jax_set_elementwise_level
    set_level.argtypes, set_level.restype = [ctypes.c_int], None
    set_level(_isa.level_code("elementwise"))
    _isa.LEVEL_HOOKS.append(
        lambda family, code: set_level(code) if family == "elementwise" else None
    )

    set_scale = lib.fnn_jax_pool_set_parallel_scale
    set_scale.argtypes, set_scale.restype = [ctypes.c_double], None
    set_gemm = lib.fnn_jax_gemm_set_calibration
    set_gemm.argtypes = [ctypes.c_double, ctypes.c_ssize_t, ctypes.c_double] + [
        ctypes.c_ssize_t
    ] * 2
    set_gemm.restype = None
    if not _gemm._calibrated:
        _gemm.calibrate()  # puts itself off while the machine is busy: the priors then
    set_scale(_parallel.scale())
    set_gemm(*_gemm.calibration())
    _parallel.SCALE_HOOKS.append(set_scale)
    _gemm.CALIBRATION_HOOKS.append(set_gemm)


def unavailable_reason() -> str | None:
    """Why :func:`library` returned None (None while it has not, or when it works)."""
    return _reason
