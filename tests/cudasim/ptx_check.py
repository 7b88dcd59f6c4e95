"""Compile every numba-cuda kernel of fastnn to PTX for a real GPU, without a GPU.

The simulator runs kernels as plain Python, so it accepts code that the CUDA target would
reject (untypable expressions, Python-only functions) and cannot show float64 creeping
into float32 arithmetic.  This check closes that gap: it drives every public op through
the numba-cuda host code with numpy-backed stand-ins for device arrays, and instead of
launching each kernel it compiles it with ``numba.cuda.compile_ptx`` for the exact
argument types the host code passed (nopython mode, libNVVM, the real CUDA target).  With
``ptxas`` on the PATH or in CUDA_HOME it also assembles the PTX and reports registers and
spills.

It needs libNVVM and libdevice (a CUDA toolkit), not a driver.  Where NVRTC is missing,
numba only uses it to list the supported architectures, so the check names the
architecture itself.  Run it WITHOUT ``NUMBA_ENABLE_CUDASIM``::

    CUDA_HOME=/usr/local/cuda python tests/cudasim/ptx_check.py [--cc 8.0] [--ptxas] [--float64]

It exits non-zero if a kernel fails to compile, or if a float32 kernel computes in
float64.  tests/cudasim/test_ptx_compile.py runs it when a CUDA toolkit is found.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def find_cuda_home() -> Path | None:
    """The CUDA toolkit: CUDA_HOME / CUDA_PATH, else the directory above nvcc (following
    a wrapper script that execs the real one)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return Path(os.environ[var])
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    real = Path(nvcc).resolve()
    candidates = [real.parent.parent]
    if real.stat().st_size < 4096:  # a wrapper: exec /path/to/cuda/bin/nvcc "$@"
        words = real.read_text(errors="ignore").split()
        candidates += [Path(w).parent.parent for w in words if w.endswith("/bin/nvcc")]
    for home in candidates:
        if find_libdevice(home) is not None:
            return home
    return None


def run_on_cuda_target(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``python *args`` in a subprocess at the repository root, without the simulator (so
    numba compiles for the real CUDA target), its output captured as text."""
    root = Path(__file__).parents[2]
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=root, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def find_libdevice(cuda_home: Path) -> Path | None:
    hits = sorted(glob.glob(str(cuda_home / "nvvm" / "libdevice" / "libdevice*.bc")))
    return Path(hits[-1]) if hits else None


def _patch_numba_toolkit(libdevice: Path) -> None:
    """Point numba at the toolkit's libdevice, and let it name the architecture itself
    when NVRTC (used only to list the supported ones) is absent."""
    from numba.cuda.cudadrv import libs, nvrtc, nvvm

    try:
        nvrtc.get_supported_ccs()
    except Exception:
        nvrtc.get_arch_option = lambda major, minor: f"compute_{major}{minor}"
        nvrtc.find_closest_arch = lambda cc: cc
    data = libdevice.read_bytes()
    libs.get_libdevice = nvvm.get_libdevice = lambda: str(libdevice)
    libs.open_libdevice = nvvm.open_libdevice = lambda: data


class Compiler:
    """Replaces kernel launches: compiles each (kernel, argument types) once."""

    def __init__(self, cc: tuple[int, int], ptxas: str | None) -> None:
        self.cc = cc
        self.ptxas = ptxas
        self.done: dict[tuple, str] = {}
        self.failures: list[str] = []
        self.reports: list[str] = []

    def launch(self, dispatcher, args) -> None:
        import numba
        from numba import cuda

        sig = tuple(numba.typeof(a) for a in args)
        key = (dispatcher.py_func, sig)
        if key in self.done:
            return
        name = f"{dispatcher.py_func.__module__}.{dispatcher.py_func.__qualname__}"
        label = f"{name}{sig}"
        start = time.perf_counter()
        try:
            ptx, _ = cuda.compile_ptx(dispatcher.py_func, sig, cc=self.cc)
        except Exception as exc:  # report every failure, not only the first
            self.failures.append(f"{label}\n    {type(exc).__name__}: {exc}")
            self.done[key] = ""
            return
        self.done[key] = ptx
        line = f"{time.perf_counter() - start:5.1f}s {name.split('numba_cuda.')[-1]}"
        float32_only = all("float64" not in str(t) for t in sig)
        if float32_only and ".f64" in ptx:
            self.failures.append(f"{label}\n    float64 arithmetic in a float32 kernel")
        if self.ptxas:
            line += "  " + self._assemble(ptx)
        self.reports.append(line + ("" if float32_only else "  [float64]"))

    def _assemble(self, ptx: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
            f.write(ptx)
        arch = f"sm_{self.cc[0]}{self.cc[1]}"
        result = subprocess.run(
            [self.ptxas, f"-arch={arch}", "-v", f.name, "-o", os.devnull],
            capture_output=True,
            text=True,
        )
        os.unlink(f.name)
        if result.returncode:
            return "ptxas FAILED: " + result.stderr.strip()[-300:]
        info = [s.strip() for s in result.stderr.splitlines() if "Used" in s or "spill" in s]
        return " | ".join(info)


def install_fakes(compiler: Compiler) -> None:
    """Device arrays become numpy-backed FakeCUDAArrays (zero-filled, so host code that
    reads a result back sees valid values); launches go to ``compiler``."""
    from numba import cuda
    from numba.cuda.dispatcher import CUDADispatcher
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

    def device_array(shape, dtype=np.float64, stream=0, **_):
        return FakeCUDAArray(np.zeros(shape, dtype=dtype))

    def to_device(ary, stream=0, **_):
        return FakeCUDAArray(np.array(ary, copy=True))

    class Launcher:
        def __init__(self, dispatcher):
            self.dispatcher = dispatcher

        def __call__(self, *args):
            compiler.launch(self.dispatcher, args)

    cuda.device_array = device_array
    cuda.to_device = to_device
    CUDADispatcher.__getitem__ = lambda self, config: Launcher(self)

    from fastnn import _dispatch

    _dispatch._STATUS["numba-cuda"] = (True, "PTX compile check")
    _dispatch._NAMED_CACHE.clear()


def drive(dtype: np.dtype) -> None:
    """Call every op (and every variant that changes argument types) once."""
    from numba import cuda

    import fastnn
    from fastnn._backends.numba_cuda import _gemm as mm
    from fastnn.kernels.numba_cuda.gemm import LARGE, SMALL, WIDE

    rng = np.random.default_rng(0)

    def D(*shape):
        return cuda.to_device(rng.uniform(0.1, 0.9, shape).astype(dtype))

    def I(n, high):  # noqa: E743
        return cuda.to_device(np.zeros(n, dtype=np.int64) + (high - 1))

    x4, w4, b = D(2, 3, 5, 6), D(4, 3, 3, 2), D(4)
    x3, w3 = D(2, 3, 9), D(4, 3, 3)
    for algo in ("im2col", "direct"):
        for bias in (b, None):
            fastnn.conv2d(x4, w4, bias, padding=1, algo=algo)
            fastnn.conv1d(x3, w3, bias, padding=1, algo=algo)
        fastnn.conv2d(x4, D(4, 3, 1, 1), b, algo=algo)
        fastnn.conv2d_backward(D(2, 4, 5, 7), x4, w4, padding=1, algo=algo)
        fastnn.conv2d_backward(D(2, 4, 5, 6), x4, D(4, 3, 1, 1), algo=algo)
        fastnn.conv1d_backward(D(2, 4, 9), x3, w3, padding=1, algo=algo)
    for nd, x in ((2, x4), (1, x3)):
        y, idx = getattr(fastnn, f"max_pool{nd}d")(x, 2, return_indices=True)
        getattr(fastnn, f"max_pool{nd}d")(x, 2)
        getattr(fastnn, f"max_pool{nd}d_backward")(y, x, 2)
        getattr(fastnn, f"max_pool{nd}d_backward")(y, x, 2, indices=idx)
        getattr(fastnn, f"max_pool{nd}d_backward")(y, x, 2, indices=I(y.shape, 1))
        z = getattr(fastnn, f"avg_pool{nd}d")(x, 2)
        getattr(fastnn, f"avg_pool{nd}d_backward")(z, x, 2)
    a, bm, c = D(5, 7), D(7, 3), D(3)
    fastnn.gemm(a, bm)
    fastnn.gemm(a, bm, c, beta=1.0)
    for tile in (LARGE, WIDE, SMALL):
        out = cuda.device_array((1, 5, 3), dtype=dtype)
        mm.matmul(a.reshape(1, 5, 7), bm.reshape(1, 7, 3), out, tile=tile)
    x2, w2 = D(4, 7), D(3, 7)
    fastnn.linear(x2, w2, D(3), activation="relu")
    fastnn.linear(x2, w2)
    fastnn.linear_backward(D(4, 3), x2, w2)
    for f in (fastnn.relu, fastnn.sigmoid, fastnn.tanh):
        f(x2)
    fastnn.activation_backward("tanh", x2, x2)
    for dim in (0, 1):
        fastnn.softmax(x2, dim)
        fastnn.log_softmax(x2, dim)
        fastnn.softmax_backward(x2, x2, dim)
        fastnn.log_softmax_backward(x2, x2, dim)
    p, t = D(4, 5), D(4, 5)
    logits, target = D(4, 6), I(4, 6)
    for red in ("mean", "none"):
        fastnn.mse_loss(p, t, red)
        fastnn.binary_cross_entropy(p, t, red)
        fastnn.cross_entropy(logits, target, red)
    fastnn.mse_loss_backward(p, t)
    fastnn.binary_cross_entropy_backward(p, t)
    fastnn.cross_entropy_backward(logits, target)
    fastnn.output_sensitivity(p, t, D(4, 5), "tanh", "mse")
    fastnn.output_sensitivity(logits, target, logits, None, "cross_entropy")
    fastnn.sensitivity(D(4, 3), D(3, 5), D(4, 5), "relu")
    fastnn.dense_grads(D(4, 3), D(4, 5))
    fastnn.mlp_backward([D(4, 5), D(4, 3)], [D(4, 3), D(4, 2)], [D(3, 5), D(2, 3)],
                        D(4, 2), ["relu", None])  # fmt: skip
    # strided inputs: the layout kernels for every rank (and the rank-5 recursion)
    for shape in ((9,), (4, 6), (2, 3, 4), (2, 3, 4, 5), (2, 2, 3, 4, 5)):
        fastnn.relu(D(*shape)[(slice(None, None, -1),) * len(shape)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cc", default="8.0", help="compute capability, e.g. 8.0 or 9.0")
    parser.add_argument("--ptxas", action="store_true", help="assemble, report registers")
    parser.add_argument("--float64", action="store_true", help="also the float64 kernels")
    args = parser.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        print("ptx_check: unset NUMBA_ENABLE_CUDASIM (this compiles for the real target)")
        return 2
    cuda_home = find_cuda_home()
    libdevice = find_libdevice(cuda_home) if cuda_home else None
    if libdevice is None:
        print("ptx_check: no CUDA toolkit with libdevice found (set CUDA_HOME)")
        return 2
    os.environ.setdefault("CUDA_HOME", str(cuda_home))
    _patch_numba_toolkit(libdevice)
    ptxas = None
    if args.ptxas:
        ptxas = shutil.which("ptxas") or str(cuda_home / "bin" / "ptxas")
    major, minor = (int(v) for v in args.cc.split("."))
    compiler = Compiler((major, minor), ptxas)
    install_fakes(compiler)
    dtypes = [np.dtype(np.float32)] + ([np.dtype(np.float64)] if args.float64 else [])
    for dtype in dtypes:
        drive(dtype)
    for line in compiler.reports:
        print(line)
    print(f"ptx_check: {len(compiler.done)} kernel specialisations for sm_{major}{minor}")
    for failure in compiler.failures:
        print("FAILED:", failure)
    return 1 if compiler.failures else 0


if __name__ == "__main__":
    sys.exit(main())
