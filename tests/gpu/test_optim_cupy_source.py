"""The CuPy optimizer kernels' C++ code, run on the CPU against the NumPy reference.

CuPy cannot run here (no GPU), but an ElementwiseKernel's operation is plain C++ applied
to one element.  A stand-in ``cupy`` module compiles each kernel's operation with the
host C++ compiler into a loop over the elements (inputs by value, outputs by reference,
scalars broadcast, exactly as ElementwiseKernel binds them) and runs it on numpy arrays.
So the formulas, the option variants and the argument order of
fastnn/backends/cupy/optim.py are checked without a GPU; only CuPy's own launch
machinery is not.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from fastnn import _dispatch
from fastnn.backends.reference import optim as reference

COMPILER = shutil.which("g++") or shutil.which("c++")

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C++ compiler")

C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


class _ElementwiseKernel:
    """Compiles ``operation`` for the host and applies it element by element."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str, *, cache):
        self.inputs = [p.split()[-1] for p in in_params.split(",")]
        self.outputs = [p.split()[-1] for p in out_params.split(",")]
        self.operation = operation
        self.name = name
        self._cache = cache

    def _library(self, dtype: np.dtype, array_inputs: tuple[bool, ...]):
        parameters = [f"T {n}" for n in self.inputs] + [f"T& {n}" for n in self.outputs]
        source = [
            # CUDA's float and double sqrt, without parsing <cmath> (compiles 5x faster)
            "static inline float sqrt(float x) { return __builtin_sqrtf(x); }",
            "static inline double sqrt(double x) { return __builtin_sqrt(x); }",
            f"template <typename T> static inline void op({', '.join(parameters)}) {{",
            self.operation,
            "}",
        ]
        for ctype in C_TYPES.values():  # one library for both dtypes: half the compiles
            arguments, call = [], []
            for name, is_array in zip(self.inputs, array_inputs):
                arguments.append(f"const {ctype}* {name}" if is_array else f"{ctype} {name}")
                call.append(f"{name}[i]" if is_array else name)
            arguments += [f"{ctype}* {n}" for n in self.outputs]
            call += [f"{n}[i]" for n in self.outputs]
            source += [
                f'extern "C" void run_{ctype}(long n, {", ".join(arguments)}) {{',
                f"  for (long i = 0; i < n; ++i) op<{ctype}>({', '.join(call)});",
                "}",
            ]
        text = "\n".join(source) + "\n"
        key = hashlib.sha1(text.encode()).hexdigest()[:16]
        if key not in self._cache["libraries"]:
            folder = self._cache["folder"]
            (folder / f"{key}.cpp").write_text(text)
            subprocess.run(
                [COMPILER, "-O0", "-shared", "-fPIC", "-o", f"{key}.so", f"{key}.cpp"],
                cwd=folder,
                check=True,
                capture_output=True,
            )
            self._cache["libraries"][key] = ctypes.CDLL(str(folder / f"{key}.so"))
        return getattr(self._cache["libraries"][key], f"run_{C_TYPES[dtype]}")

    def __call__(self, *args):
        inputs, outputs = args[: len(self.inputs)], args[len(self.inputs) :]
        assert len(outputs) == len(self.outputs), f"{self.name}: output count"
        dtype = outputs[0].dtype
        size = outputs[0].size
        for out in outputs:
            assert out.dtype == dtype and out.shape == outputs[0].shape and out.flags.c_contiguous
        array_inputs = tuple(np.ndim(a) > 0 for a in inputs)
        run = self._library(dtype, array_inputs)
        c_args = [ctypes.c_long(size)]
        keep = []
        for value, is_array in zip(inputs, array_inputs):
            if is_array:
                value = np.ascontiguousarray(np.broadcast_to(value, outputs[0].shape), dtype)
                keep.append(value)
                c_args.append(value.ctypes.data_as(ctypes.c_void_p))
            else:
                assert type(value) is dtype.type, f"{self.name}: scalar {value!r} not {dtype}"
                c_args.append((ctypes.c_float if dtype == np.float32 else ctypes.c_double)(value))
        c_args += [out.ctypes.data_as(ctypes.c_void_p) for out in outputs]
        run(*c_args)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """fastnn/backends/cupy/optim.py imported with the stand-in cupy module."""
    cache = {"folder": tmp_path_factory.mktemp("cupy_kernels"), "libraries": {}}
    fake = types.ModuleType("cupy")
    fake.ElementwiseKernel = lambda *a, **k: _ElementwiseKernel(*a, **k, cache=cache)
    fake.asarray = np.asarray
    saved = {name: sys.modules.get(name) for name in ("cupy", "fastnn.backends.cupy.optim")}
    registry = {op: dict(impls) for op, impls in _dispatch._REGISTRY.items()}
    sys.modules["cupy"] = fake
    sys.modules.pop("fastnn.backends.cupy.optim", None)
    try:
        yield importlib.import_module("fastnn.backends.cupy.optim")
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
        _dispatch._REGISTRY.clear()  # forget the stand-in's registrations
        _dispatch._REGISTRY.update(registry)
        _dispatch._DEFAULT_CACHE.clear()


def _case(name, states, args):
    return pytest.param(name, states, args, id=f"{name}-{'-'.join(map(str, args))}")


# (op, state arrays (0: present, starting at zero; None: option off), hyperparameters in
# the order of the backend signature, fastnn/optim/functional.py)
CASES = [
    _case("sgd", [None], (0.1, 0.0, 0.0, 0.0, False, False)),
    _case("sgd", [0], (0.1, 0.9, 0.0, 0.01, False, False)),
    _case("sgd", [0], (0.1, 0.9, 0.2, 0.0, False, True)),
    _case("sgd", [0], (0.1, 0.9, 0.0, 0.1, True, False)),
    _case("adagrad", [0], (0.1, 0.1, 1e-10, False)),
    _case("adagrad", [0], (0.1, 0.0, 1e-3, True)),
    _case("rmsprop", [0, None, None], (0.01, 0.99, 1e-8, 0.0, 0.0, False)),
    _case("rmsprop", [0, 0, 0], (0.01, 0.9, 1e-8, 0.1, 0.9, True)),
    _case("rmsprop", [0, 0, None], (0.01, 0.3, 1e-8, 0.0, 0.0, False)),
    _case("adadelta", [0, 0], (1.0, 0.9, 1e-6, 0.1, False)),
    _case("adadelta", [0, 0], (0.5, 0.3, 1e-4, 0.0, True)),
    _case("adam", [0, 0, None], (0.01, 0.9, 0.999, 1e-8, 0.0, False, False)),
    _case("adam", [0, 0, 0], (0.01, 0.8, 0.99, 1e-6, 0.1, False, True)),
    _case("adam", [0, 0, None], (0.01, 0.3, 0.6, 1e-8, 0.1, True, False)),
    _case("adam", [0, 0, 0], (0.01, 0.9, 0.999, 1e-8, 0.1, True, True)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, states, hyper", CASES)
def test_kernel_matches_reference(kernels, name, states, hyper, dtype):
    shape = (5, 7)
    results = []
    for implementation in (getattr(kernels, f"_{name}"), getattr(reference, f"_{name}")):
        local = np.random.default_rng(3)
        param = local.standard_normal(shape).astype(dtype)
        arrays = [None if s is None else np.zeros(shape, dtype) for s in states]
        for step in range(1, 4):
            grad = local.standard_normal(shape).astype(dtype).T.copy().T  # Fortran order
            if name == "sgd":
                implementation(param, grad, *arrays, *hyper, step == 1)
            elif name == "adam":
                implementation(param, grad, *arrays, step, *hyper)
            else:
                implementation(param, grad, *arrays, *hyper)
        results.append([param, *[a for a in arrays if a is not None]])
    tol = 1e-5 if dtype == np.float32 else 1e-13
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
