"""A stand-in for CuPy that runs the real CUDA C kernels on the CPU, and tests of it.

No GPU and no CuPy here, so the ``cupy`` backend is exercised against :func:`fake_cupy`:
a module with the few CuPy functions the backend calls, built on NumPy, whose
``RawModule`` compiles the kernel sources with g++ and tests/gpu/host_emulation.h
(CUDA threads as fibers, ``__syncthreads`` as a real barrier).  What this checks:

- the host code: shapes, chunking, layouts, launch configurations, and every kernel
  argument against the kernel's C signature (a Python int where CuPy needs np.int32, a
  float32 array for a double*, a non-contiguous array, a host array: all raise here);
- the kernels' arithmetic and indexing, on the CPU: every array reaches a kernel inside
  a guard zone, and a write outside the array fails the launch;
- block-level barriers (a barrier some threads skip fails the launch).

What it cannot check: NVRTC itself (tests/gpu/test_cuda_sources.py compiles every source
with nvcc instead), warp-level behaviour, races, GPU float rounding, CuPy's own
functions (cupy.matmul is numpy.matmul here) and streams.  bench/gpu_smoke.py checks
those on a GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CUDA_DIR = ROOT / "kernels" / "cuda"
#: The CPU emulation of the CUDA features the kernels use (test-only, not installed).
EMULATION_HEADER = Path(__file__).resolve().parent / "host_emulation.h"
CXX = shutil.which("g++") or shutil.which("c++")
CXX_FLAGS = ["-std=c++17", "-O0", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"]
CXX_FLAGS += ["-Wno-unused-parameter"]  # kernels share argument lists; some skip a size

requires_cxx = pytest.mark.skipif(
    CXX is None or not sys.platform.startswith("linux"),
    reason="the CUDA emulator needs g++ and Linux (ucontext fibers)",
)

#: A launch may run at most this many CUDA threads (the tests use tiny shapes).
MAX_EMULATED_THREADS = 1 << 21
#: Guard elements on each side of every array a kernel receives.
GUARD = 64


# ---------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------


class FakeArray(np.ndarray):
    """Device memory of the emulated CuPy: a NumPy array of its own type, so that the
    dispatcher sees a "cupy" array and a host array passed to a kernel is caught."""

    def get(self) -> np.ndarray:
        """The host copy (cupy.ndarray.get)."""
        return np.array(self, copy=True).view(np.ndarray)


def device(a: object, dtype: object = None) -> FakeArray:
    """A host array copied to the emulated device (cupy.asarray of a numpy array)."""
    return np.array(a, dtype=dtype, copy=True).view(FakeArray)


def _from_interface(obj: object) -> FakeArray:
    """Zero-copy view of an object with __cuda_array_interface__ (host memory here)."""
    cai = obj.__cuda_array_interface__  # type: ignore[attr-defined]
    dtype = np.dtype(cai["typestr"])
    shape = tuple(cai["shape"])
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=dtype).view(FakeArray)
    strides = cai.get("strides") or np.empty(shape, dtype=dtype).strides
    low = sum((n - 1) * s for n, s in zip(shape, strides) if s < 0)
    high = sum((n - 1) * s for n, s in zip(shape, strides) if s > 0) + dtype.itemsize
    buffer = (ctypes.c_char * (high - low)).from_address(cai["data"][0] + low)
    view = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=-low, strides=strides)
    return view.view(FakeArray)


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------

_CTYPE_OF_SCALAR = {
    np.int32: ("i32", ctypes.c_int32),
    np.int64: ("i64", ctypes.c_int64),
    np.float32: ("f32", ctypes.c_float),
    np.float64: ("f64", ctypes.c_double),
}
_CODE_OF_DTYPE = {
    np.dtype(np.int32): "i32*",
    np.dtype(np.int64): "i64*",
    np.dtype(np.float32): "f32*",
    np.dtype(np.float64): "f64*",
}


class LaunchError(RuntimeError):
    """A launch that CuPy would reject or a GPU would get wrong."""


def _triple(name: str, value: object) -> tuple[int, int, int]:
    if not isinstance(value, tuple) or not 1 <= len(value) <= 3:
        raise LaunchError(f"{name} must be a tuple of 1 to 3 ints, got {value!r}")
    dims = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise LaunchError(f"{name} entries must be positive ints, got {value!r}")
        dims.append(int(v))
    return tuple(dims + [1] * (3 - len(dims)))  # type: ignore[return-value]


class _Guarded:
    """One array argument copied into a buffer with guard zones on both sides."""

    def __init__(self, array: FakeArray):
        self.array = array
        flat = array.reshape(-1)
        fill = np.nan if array.dtype.kind == "f" else 0
        self.buffer = np.full(flat.size + 2 * GUARD, fill, dtype=array.dtype)
        self.buffer[GUARD : GUARD + flat.size] = flat
        self.guard = self.buffer.copy()
        self.slot = ctypes.c_void_p(self.buffer.ctypes.data + GUARD * array.dtype.itemsize)

    def finish(self, what: str) -> None:
        n = self.array.size
        before = self.guard.view(np.uint8)
        after = self.buffer.view(np.uint8)
        item = self.array.dtype.itemsize
        outside = np.concatenate([after[: GUARD * item], after[(GUARD + n) * item :]])
        expected = np.concatenate([before[: GUARD * item], before[(GUARD + n) * item :]])
        if not np.array_equal(outside, expected):
            raise LaunchError(f"{what} wrote outside its array of {n} elements")
        self.array.reshape(-1)[...] = self.buffer[GUARD : GUARD + n]


class EmulatedKernel:
    """cupy.RawKernel as RawModule.get_function returns it: call(grid, block, args)."""

    def __init__(self, library: ctypes.CDLL, index: int, name: str):
        self.name = name
        self._launch = getattr(library, f"fastnn_emu_launch_{index}")
        self._launch.restype = ctypes.c_int
        signature = getattr(library, f"fastnn_emu_signature_{index}")
        signature.restype = ctypes.c_char_p
        text = signature().decode()
        self.signature = tuple(text.split(",")) if text else ()
        self.launches: list[tuple] = []

    def __call__(self, grid, block, args, *, shared_mem: int = 0) -> None:
        g, b = _triple("grid", grid), _triple("block", block)
        if b[0] * b[1] * b[2] > 1024 or b[2] > 64:
            raise LaunchError(f"{self.name}: block {block} exceeds CUDA's limits")
        if g[1] > 65535 or g[2] > 65535 or g[0] > 2**31 - 1:
            raise LaunchError(f"{self.name}: grid {grid} exceeds CUDA's limits")
        if math.prod(g) * math.prod(b) > MAX_EMULATED_THREADS:
            raise LaunchError(f"{self.name}: {grid} x {block} is too many threads to emulate")
        if shared_mem:
            raise LaunchError(f"{self.name}: the kernels use static shared memory only")
        if not isinstance(args, tuple) or len(args) != len(self.signature):
            raise LaunchError(
                f"{self.name}: takes {len(self.signature)} arguments {self.signature}, got "
                f"{len(args) if isinstance(args, tuple) else type(args).__name__}"
            )
        self.launches.append((g, b))
        slots, keep, guarded = [], [], {}
        for position, (value, code) in enumerate(zip(args, self.signature)):
            where = f"{self.name} argument {position} ({code})"
            if code.endswith("*"):
                slot = self._pointer(value, code, where, guarded)
            else:
                slot = self._scalar(value, code, where)
            keep.append(slot)
            slots.append(ctypes.cast(ctypes.pointer(slot), ctypes.c_void_p))
        array = (ctypes.c_void_p * max(1, len(slots)))(*slots)
        error = ctypes.create_string_buffer(512)
        status = self._launch(
            (ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b), array, error, len(error)
        )
        if status:
            raise LaunchError(f"{self.name}: {error.value.decode()}")
        for guard in guarded.values():
            guard.finish(self.name)

    @staticmethod
    def _pointer(value, code: str, where: str, guarded: dict) -> ctypes.c_void_p:
        if not isinstance(value, FakeArray):
            raise LaunchError(f"{where}: needs a device array, got {type(value).__name__}")
        if not value.flags.c_contiguous:
            raise LaunchError(f"{where}: array of shape {value.shape} is not C-contiguous")
        if _CODE_OF_DTYPE.get(value.dtype) != code:
            raise LaunchError(f"{where}: got an array of dtype {value.dtype}")
        start = value.__array_interface__["data"][0]
        key = (start, value.nbytes)
        if key not in guarded:
            end = start + value.nbytes
            for other, nbytes in guarded:
                if value.nbytes and nbytes and start < other + nbytes and other < end:
                    raise LaunchError(f"{where}: overlaps another argument without being it")
            guarded[key] = _Guarded(value)
        return guarded[key].slot

    @staticmethod
    def _scalar(value, code: str, where: str):
        entry = _CTYPE_OF_SCALAR.get(type(value))
        if entry is None:
            raise LaunchError(
                f"{where}: pass a NumPy scalar of the parameter's type, got {value!r} "
                f"({type(value).__name__}); CuPy would pass a Python number as 64-bit"
            )
        if entry[0] != code:
            raise LaunchError(f"{where}: got a {type(value).__name__}")
        return entry[1](value)


def _stubs(names: list[str]) -> str:
    lines = []
    for k, name in enumerate(names):
        lines.append(
            f'extern "C" const char* fastnn_emu_signature_{k}() {{ static const std::string s '
            f"= fastnn_emu::signature(&{name}); return s.c_str(); }}"
        )
        lines.append(
            f'extern "C" int fastnn_emu_launch_{k}(const unsigned* g, const unsigned* b, '
            f"void** a, char* e, int n) {{ return fastnn_emu::launch(&{name}, g, b, a, e, n); }}"
        )
    return "\n".join(lines) + "\n"


def _cache_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"fastnn-cuda-emulator-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    return folder


def compile_library(code: str, names: list[str]) -> Path:
    """g++-compile ``code`` with the emulation header and launch stubs for ``names``;
    cached on disk by content."""
    header = EMULATION_HEADER.read_text()
    text = '#include "host_emulation.h"\n' + code + "\n" + _stubs(names)
    key = hashlib.sha256("\0".join([header, text, *CXX_FLAGS]).encode()).hexdigest()[:24]
    library = _cache_dir() / f"{key}.so"
    if not library.exists():  # private file names: pytest processes may share the cache
        source = _cache_dir() / f"{key}.{os.getpid()}.cpp"
        source.write_text(text)
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        include = [f"-I{EMULATION_HEADER.parent}", f"-I{CUDA_DIR}"]
        command = [CXX, *CXX_FLAGS, *include, str(source), "-o", str(partial)]
        result = subprocess.run(command, capture_output=True, text=True)
        source.unlink()
        if result.returncode:
            raise RuntimeError(f"g++ failed on the emulated source:\n{result.stderr[-6000:]}")
        os.replace(partial, library)
    return library


class EmulatedModule:
    """cupy.RawModule(code=..., options=..., name_expressions=...) compiled by g++."""

    #: code -> name expressions to compile along (both dtypes at once, see install()).
    extra_names: dict[str, list[str]] = {}
    created: list[EmulatedModule] = []

    def __init__(self, code: str, options: tuple = (), name_expressions=None, **kwargs):
        if kwargs:
            raise TypeError(f"RawModule: unexpected arguments {sorted(kwargs)}")
        if not isinstance(options, tuple) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"RawModule: options must be a tuple of str, got {options!r}")
        self.code, self.options = code, options
        self.names = list(name_expressions or [])
        every = list(dict.fromkeys(self.names + self.extra_names.get(code, [])))
        self._library = ctypes.CDLL(str(compile_library(code, every)))
        self._index = {name: k for k, name in enumerate(every)}
        self._kernels: dict[str, EmulatedKernel] = {}
        EmulatedModule.created.append(self)

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self.names:
            raise LaunchError(f"{name!r} is not one of this module's name_expressions")
        if name not in self._kernels:
            self._kernels[name] = EmulatedKernel(self._library, self._index[name], name)
        return self._kernels[name]


# ---------------------------------------------------------------------------------------
# The fake cupy module
# ---------------------------------------------------------------------------------------


def _wrap(function):
    def run(*args, **kwargs):
        return np.asarray(function(*args, **kwargs)).view(FakeArray)

    return run


def fake_cupy() -> types.ModuleType:
    """A module with the parts of CuPy the backend uses, on NumPy and the emulator."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "emulated"
    cupy.ndarray = FakeArray

    def asarray(a, dtype=None):
        if isinstance(a, FakeArray):
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        if hasattr(a, "__cuda_array_interface__"):
            return _from_interface(a)
        raise TypeError(f"cupy.asarray of a host object ({type(a).__name__}) in the backend")

    def ascontiguousarray(a, dtype=None):
        if not isinstance(a, FakeArray):
            raise TypeError(f"cupy.ascontiguousarray of {type(a).__name__}")
        return np.ascontiguousarray(a, dtype=dtype).view(FakeArray)

    def matmul(a, b):
        for x in (a, b):
            if not isinstance(x, FakeArray):
                raise TypeError(f"cupy.matmul of {type(x).__name__}")
        return np.matmul(a, b).view(FakeArray)

    def array(a, dtype=None):  # an explicit copy to the device (scripts, not the backend)
        return np.array(a, dtype=dtype, copy=True).view(FakeArray)

    def asnumpy(a):
        return np.array(a, copy=True).view(np.ndarray)

    cupy.array = array
    cupy.asnumpy = asnumpy
    cupy.asarray = asarray
    cupy.ascontiguousarray = ascontiguousarray
    cupy.matmul = matmul
    cupy.empty = _wrap(np.empty)
    cupy.zeros = _wrap(np.zeros)
    cupy.full = _wrap(np.full)
    cupy.RawModule = EmulatedModule
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device = lambda *a: types.SimpleNamespace(
        id=0, compute_capability="emulated", synchronize=lambda: None
    )
    cuda.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1, getDeviceProperties=lambda device: {"name": b"CuPy emulator"}
    )
    cupy.cuda = cuda
    return cupy


def _precompile() -> None:
    """Compile every kernel source (float and double together) two at a time."""
    from fastnn._backends.cupy import _sources

    jobs = []
    for file in _sources.KERNELS:
        names = _sources.expressions(file, "float") + _sources.expressions(file, "double")
        code = _sources.source_text(file)
        EmulatedModule.extra_names[code] = names
        jobs.append((code, names))
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda job: compile_library(*job), jobs))


def _owned(module: str) -> bool:
    """Modules that hold the (fake) cupy: cupy itself and the backend's op modules."""
    if module == "cupy" or module.startswith("cupy."):
        return True
    backend = "fastnn._backends.cupy."
    return module.startswith(backend) and module != backend + "_sources"


@contextlib.contextmanager
def installed() -> Iterator[types.ModuleType]:
    """Make the ``cupy`` backend run on the emulator: a fake ``cupy`` module, the
    backend marked available, FakeArray dispatched as a cupy array.  Everything is put
    back afterwards (registry, caches, imported backend modules)."""
    from fastnn import _dispatch, _kinds

    _precompile()
    saved_modules = {k: v for k, v in sys.modules.items() if _owned(k)}
    saved_registry = {op: dict(impls) for op, impls in _dispatch._REGISTRY.items()}
    saved_status = dict(_dispatch._STATUS)
    saved_loaded = set(_dispatch._LOADED)
    fake = fake_cupy()
    sys.modules["cupy"] = fake
    sys.modules["cupy.cuda"] = fake.cuda
    _dispatch._STATUS["cupy"] = (True, "CuPy emulated on the CPU (tests)")
    _kinds._KIND_BY_TYPE[FakeArray] = "cupy"
    _dispatch._DEFAULT_CACHE.clear()
    _dispatch._NAMED_CACHE.clear()
    try:
        yield fake
    finally:
        # Other backends loaded meanwhile (the reference the tests compare with) keep
        # their registrations: their modules stay imported, so loading them again would
        # not register anything.
        others = {
            op: {backend: f for backend, f in impls.items() if backend != "cupy"}
            for op, impls in _dispatch._REGISTRY.items()
        }
        others_loaded = _dispatch._LOADED - {"cupy"}
        for name in [k for k in sys.modules if _owned(k)]:
            del sys.modules[name]  # the fake cupy and backend modules bound to it
        sys.modules.update(saved_modules)
        _dispatch._REGISTRY.clear()
        _dispatch._REGISTRY.update(saved_registry)
        for op, impls in others.items():
            _dispatch._REGISTRY.setdefault(op, {}).update(impls)
        _dispatch._STATUS.clear()
        _dispatch._STATUS.update(saved_status)
        _dispatch._LOADED.clear()
        _dispatch._LOADED.update(saved_loaded | others_loaded)
        _kinds._KIND_BY_TYPE.pop(FakeArray, None)
        _dispatch._DEFAULT_CACHE.clear()
        _dispatch._NAMED_CACHE.clear()


# ---------------------------------------------------------------------------------------
# Tests of the emulator itself
# ---------------------------------------------------------------------------------------

_TOY = """
template <typename T>
__global__ void scale(const T* x, T* y, long long n, T factor) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) y[i] = x[i] * factor;
}
template <typename T>
__global__ void reverse_block(T* y) {  // needs the barrier between read and write
    __shared__ T tile[64];
    tile[threadIdx.x] = y[threadIdx.x];
    __syncthreads();
    y[threadIdx.x] = tile[blockDim.x - 1 - threadIdx.x];
}
template <typename T>
__global__ void bad_barrier(T* y) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    y[threadIdx.x] = T(1);
}
template <typename T>
__global__ void overrun(T* y, long long n) {
    if (threadIdx.x == 0) y[n] = T(1);
}
"""
_TOY_NAMES = ["scale<float>", "reverse_block<double>", "bad_barrier<float>", "overrun<float>"]


@pytest.fixture(scope="module")
def toy():
    if CXX is None or not sys.platform.startswith("linux"):
        pytest.skip("the CUDA emulator needs g++ and Linux (ucontext fibers)")
    return EmulatedModule(_TOY, ("--std=c++17",), _TOY_NAMES)


@requires_cxx
def test_runs_a_grid_stride_kernel_with_few_blocks(toy):
    x = device(np.arange(1000, dtype=np.float32))
    y = device(np.zeros(1000, dtype=np.float32))
    toy.get_function("scale<float>")((3,), (64,), (x, y, np.int64(1000), np.float32(2)))
    np.testing.assert_array_equal(y, 2 * np.arange(1000, dtype=np.float32))


@requires_cxx
def test_barrier_separates_the_phases_of_a_block(toy):
    y = device(np.arange(64, dtype=np.float64))
    toy.get_function("reverse_block<double>")((1,), (64,), (y,))
    np.testing.assert_array_equal(y, np.arange(64)[::-1])


@requires_cxx
def test_divergent_barrier_fails_the_launch(toy):
    y = device(np.zeros(32, dtype=np.float32))
    with pytest.raises(LaunchError, match="__syncthreads"):
        toy.get_function("bad_barrier<float>")((1,), (32,), (y,))


@requires_cxx
def test_write_past_the_end_fails_the_launch(toy):
    y = device(np.zeros(10, dtype=np.float32))
    with pytest.raises(LaunchError, match="outside"):
        toy.get_function("overrun<float>")((1,), (32,), (y, np.int64(10)))


@requires_cxx
@pytest.mark.parametrize(
    "args, message",
    [
        (lambda x, y: (x, y, 1000, np.float32(2)), "NumPy scalar"),
        (lambda x, y: (x, y, np.int32(1000), np.float32(2)), "int32"),
        (lambda x, y: (x, y, np.int64(1000), np.float64(2)), "float64"),
        (lambda x, y: (x, y.astype(np.float64), np.int64(1000), np.float32(2)), "dtype"),
        (lambda x, y: (x[::2], y, np.int64(500), np.float32(2)), "C-contiguous"),
        (lambda x, y: (np.asarray(x).view(np.ndarray), y, np.int64(1), np.float32(2)), "device"),
        (lambda x, y: (x, y, np.int64(1000)), "arguments"),
        (lambda x, y: (x, x[1:], np.int64(999), np.float32(2)), "overlaps"),
    ],
)
def test_rejects_what_cupy_would_misread(toy, args, message):
    x = device(np.arange(1000, dtype=np.float32))
    y = device(np.zeros(1000, dtype=np.float32))
    with pytest.raises(LaunchError, match=message):
        toy.get_function("scale<float>")((1,), (64,), args(x, y))


@requires_cxx
def test_rejects_bad_launch_shapes(toy):
    kern = toy.get_function("scale<float>")
    x = device(np.zeros(4, dtype=np.float32))
    args = (x, x, np.int64(4), np.float32(1))
    for grid, block in [((1,), (2048,)), ((0,), (32,)), ((1,), (1.5,)), (1, (32,))]:
        with pytest.raises(LaunchError):
            kern(grid, block, args)
    with pytest.raises(LaunchError, match="name_expressions"):
        toy.get_function("scale<double>")


def test_interface_objects_are_wrapped_without_a_copy():
    host = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::-1]

    class Foreign:
        __cuda_array_interface__ = {
            "shape": host.shape,
            "typestr": host.dtype.str,
            "data": (host.__array_interface__["data"][0], False),
            "strides": host.strides,
            "version": 3,
        }

    view = fake_cupy().asarray(Foreign())
    np.testing.assert_array_equal(view, host)
    host[0, 0] = 100.0
    assert view[0, 0] == 100.0
