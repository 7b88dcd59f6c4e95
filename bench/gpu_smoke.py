"""GPU smoke test: every op on both GPU backends against the CPU backend, with timings.

    python bench/gpu_smoke.py            # every op, medium shapes, 20 timed runs each
    python bench/gpu_smoke.py --quick    # small shapes, 5 timed runs

For each op of the public API and each GPU backend that can run here ("cupy",
"numba-cuda"), the op runs on float32 device arrays and its result is compared with
``backend="cpu"`` on the host copies: the table shows the largest error relative to the
largest value of the CPU result, and PASS or FAIL.  Timings are medians, the GPU
synchronised inside every timed call, next to a baseline where one exists: cuBLAS
(cupy.matmul) for gemm and linear, PyTorch on CUDA (cuDNN) for convolution and pooling
when torch with CUDA is installed; "speed-up" is the baseline's time over fastnn's.  The
exit status is 1 if any op failed or raised.

Without a GPU it prints why (fastnn.backends()) and "skipped: no GPU", and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastnn

GPU_BACKENDS = ("cupy", "numba-cuda")
#: Largest error relative to max(1, max |CPU result|) that passes, float32 against float32.
TOLERANCE = 2e-4
#: Long sums (GEMM, convolution) round more: their bound grows with the summed length.
SUM_TOLERANCE = 2e-3


@dataclass
class Case:
    """One op call: host arguments (numpy arrays are moved to the device), keywords, and
    an optional baseline that gets the same host arguments and returns a timed thunk."""

    label: str
    op: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    tolerance: float = TOLERANCE
    baseline: Callable[[tuple, dict], tuple[str, Callable[[], Any]] | None] | None = None


# ---------------------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------------------


def gpu_backends() -> dict[str, str]:
    """{backend: description} of the GPU backends that run on a real GPU here."""
    simulated = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
    found = {}
    for name, (available, text) in fastnn.backends().items():
        if name in GPU_BACKENDS and available and not (name == "numba-cuda" and simulated):
            found[name] = text
    return found


def to_device(value: Any, backend: str) -> Any:
    """numpy arrays (also inside lists) as device arrays of the backend's own kind."""
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, backend) for v in value)
    if not isinstance(value, np.ndarray):
        return value
    if backend == "cupy":
        import cupy

        return cupy.array(value)  # a copy on the device
    from numba import cuda

    return cuda.to_device(np.ascontiguousarray(value))


def to_host(value: Any) -> Any:
    """Device results (cupy, numba, any __cuda_array_interface__) as numpy arrays."""
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    if value is None or isinstance(value, (np.ndarray, float, int)):
        return value
    if hasattr(value, "copy_to_host"):
        return value.copy_to_host()
    import cupy

    return cupy.asnumpy(cupy.asarray(value))


def synchronize(backend: str) -> None:
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()
    else:
        from numba import cuda

        cuda.synchronize()


def median_seconds(call: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``call`` with the GPU synchronised inside the timing."""
    for _ in range(2):  # warm up: compilation, caches, allocator
        call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def cublas_matmul(a_index: int, b_index: int, transpose_b: bool = False):
    """Baseline: cupy.matmul (cuBLAS) of two of the case's arrays."""

    def make(args: tuple, kwargs: dict):
        try:
            import cupy
        except ImportError:
            return None
        a, b = cupy.array(args[a_index]), cupy.array(args[b_index])
        b = b.T if transpose_b else b
        return "cuBLAS", lambda: cupy.matmul(a, b)

    return make


def torch_op(name: str, *, backward: bool = False):
    """Baseline: torch.nn.functional.<name> (cuDNN) on CUDA tensors; for ``backward``, the
    convolution's ATen backward (grad_input, grad_weight, grad_bias)."""

    def make(args: tuple, kwargs: dict):
        torch = _torch_cuda()
        if torch is None:
            return None
        tensors = [
            torch.as_tensor(a, device="cuda") if isinstance(a, np.ndarray) else a for a in args
        ]
        options = {k: v for k, v in kwargs.items() if k not in ("algo", "output_mask")}
        if not backward:
            fn = getattr(torch.nn.functional, name)
            return "cuDNN", lambda: fn(*tensors, **options)
        gy, x, w = tensors[:3]
        nd = x.dim() - 2
        stride = _tuple(options.get("stride", 1), nd)
        padding = _tuple(options.get("padding", 0), nd)
        dilation = _tuple(options.get("dilation", 1), nd)
        groups = options.get("groups", 1)
        bias_sizes = [w.shape[0]]
        zeros = [0] * nd
        mask = [True, True, True]

        def run():
            return torch.ops.aten.convolution_backward(
                gy, x, w, bias_sizes, stride, padding, dilation, False, zeros, groups, mask
            )

        return "cuDNN", run

    return make


def _tuple(value: Any, nd: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value] * nd


# ---------------------------------------------------------------------------------------
# The cases: every op of the public API
# ---------------------------------------------------------------------------------------


#: Shapes per size: batch, channels, height = width, output channels (2-D), matrix size
#: (GEMM, dense layers), batch and length (1-D).
SIZES = {
    "tiny": (2, 4, 8, 4, 16, 2, 20),  # for the test suite, on the CPU emulator
    "quick": (4, 16, 16, 16, 256, 4, 200),
    "full": (16, 128, 28, 128, 1024, 32, 1000),
}


def build_cases(size: str) -> list[Case]:
    """Every op of the public API once (convolution three ways), float32 inputs."""
    rng = np.random.default_rng(0)

    def randn(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def cpu(op: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(fastnn, op)(*args, backend="cpu", **kwargs)

    n, c, hw, k, m, batch_1d, length = SIZES[size]
    img, w3, bias = randn(n, c, hw, hw), randn(k, c, 3, 3), randn(k)
    conv_kw = dict(stride=1, padding=1)
    y = cpu("conv2d", img, w3, bias, **conv_kw)
    gy = randn(*y.shape)
    seq, w1, bias1 = randn(batch_1d, c, length), randn(k, c, 5), randn(k)
    conv1_kw = dict(stride=1, padding=2)
    gy1 = randn(*cpu("conv1d", seq, w1, bias1, **conv1_kw).shape)
    pool_kw = dict(kernel_size=3, stride=2, padding=1)
    pooled, indices = cpu("max_pool2d", img, return_indices=True, **pool_kw)
    gp = randn(*pooled.shape)
    pool1_kw = dict(kernel_size=4, stride=2, padding=1)
    pooled1 = cpu("max_pool1d", seq, **pool1_kw)
    gp1 = randn(*pooled1.shape)
    ga, ga1 = randn(n, c, 3, 5), randn(batch_1d, c, 7)  # adaptive pooling gradients
    drop_mask = cpu("dropout", img, 0.3, generator=7)[1]
    a, b, cm = randn(m, m), randn(m, m), randn(m, m)
    x, wl, bl = randn(m, m // 2), randn(m // 4, m // 2), randn(m // 4)
    gl = randn(m, m // 4)
    logits = randn(m, 10)
    labels = rng.integers(0, 10, m)
    prob = 1.0 / (1.0 + np.exp(-logits))
    target = rng.uniform(0, 1, logits.shape).astype(np.float32)
    act = cpu("tanh", logits)
    soft = cpu("softmax", logits)
    sizes = [m // 2, m // 4, m // 8, 10]
    inputs, preacts, weights = [], [], []
    h = randn(m, sizes[0])
    for i in range(3):
        weight = randn(sizes[i + 1], sizes[i]) / np.float32(math.sqrt(sizes[i]))
        inputs.append(h)
        preacts.append(cpu("linear", h, weight))
        weights.append(weight)
        h = cpu("linear", h, weight, activation="relu")
    acts = ["relu", "relu", None]
    delta = randn(m, 10)
    conv_tol = SUM_TOLERANCE
    gamma, beta = randn(c), randn(c)
    running_var = rng.uniform(0.5, 2.0, c).astype(np.float32)
    bn_y, bn_mean, bn_invstd = cpu(
        "batch_norm", img, None, None, gamma, beta, True, activation="relu", return_stats=True
    )
    return [
        Case(
            "conv2d 3x3 im2col",
            "conv2d",
            (img, w3, bias),
            dict(conv_kw, algo="im2col"),
            conv_tol,
            torch_op("conv2d"),
        ),
        Case(
            "conv2d 3x3 direct",
            "conv2d",
            (img, w3, bias),
            dict(conv_kw, algo="direct"),
            conv_tol,
            torch_op("conv2d"),
        ),
        Case(
            "conv2d depthwise",
            "conv2d",
            (img, randn(c, 1, 3, 3)),
            dict(conv_kw, groups=c),
            conv_tol,
            torch_op("conv2d"),
        ),
        Case("conv1d k5", "conv1d", (seq, w1, bias1), conv1_kw, conv_tol, torch_op("conv1d")),
        Case(
            "conv2d_backward",
            "conv2d_backward",
            (gy, img, w3),
            dict(conv_kw, algo="im2col"),
            conv_tol,
            torch_op("conv2d", backward=True),
        ),
        Case(
            "conv2d_backward direct",
            "conv2d_backward",
            (gy, img, w3),
            dict(conv_kw, algo="direct"),
            conv_tol,
            torch_op("conv2d", backward=True),
        ),
        Case(
            "conv1d_backward",
            "conv1d_backward",
            (gy1, seq, w1),
            conv1_kw,
            conv_tol,
            torch_op("conv1d", backward=True),
        ),
        Case(
            "max_pool2d",
            "max_pool2d",
            (img,),
            dict(pool_kw, return_indices=True),
            baseline=torch_op("max_pool2d"),
        ),
        Case("max_pool1d", "max_pool1d", (seq,), pool1_kw, baseline=torch_op("max_pool1d")),
        Case("avg_pool2d", "avg_pool2d", (img,), pool_kw, baseline=torch_op("avg_pool2d")),
        Case("avg_pool1d", "avg_pool1d", (seq,), pool1_kw, baseline=torch_op("avg_pool1d")),
        Case("max_pool2d_backward", "max_pool2d_backward", (gp, img), pool_kw),
        Case(
            "max_pool2d_backward idx",
            "max_pool2d_backward",
            (gp, img),
            dict(pool_kw, indices=indices),
        ),
        Case("max_pool1d_backward", "max_pool1d_backward", (gp1, seq), pool1_kw),
        Case("avg_pool2d_backward", "avg_pool2d_backward", (gp, img), pool_kw),
        Case("avg_pool1d_backward", "avg_pool1d_backward", (gp1, seq), pool1_kw),
        Case("adaptive_avg_pool2d", "adaptive_avg_pool2d", (img, (3, 5))),
        Case("adaptive_avg_pool2d global", "adaptive_avg_pool2d", (img, 1)),
        Case("adaptive_avg_pool1d", "adaptive_avg_pool1d", (seq, 7)),
        Case("adaptive_max_pool2d", "adaptive_max_pool2d", (img, (3, 5), True)),
        Case("adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_backward", (ga, img)),
        Case("adaptive_avg_pool1d_backward", "adaptive_avg_pool1d_backward", (ga1, seq)),
        Case("adaptive_max_pool2d_backward", "adaptive_max_pool2d_backward", (ga, img)),
        Case("dropout", "dropout", (img, 0.3), dict(generator=7)),
        Case("dropout_backward", "dropout_backward", (img, drop_mask, 0.3)),
        Case("add relu", "add", (img, cpu("tanh", img)), dict(activation="relu")),
        Case("gemm", "gemm", (a, b), {}, SUM_TOLERANCE, cublas_matmul(0, 1)),
        Case(
            "gemm T alpha beta",
            "gemm",
            (a, b, cm),
            dict(alpha=0.5, beta=2.0, trans_a=True, trans_b=True),
            SUM_TOLERANCE,
        ),
        Case(
            "linear relu",
            "linear",
            (x, wl, bl),
            dict(activation="relu"),
            SUM_TOLERANCE,
            cublas_matmul(0, 1, transpose_b=True),
        ),
        Case("linear_backward", "linear_backward", (gl, x, wl), {}, SUM_TOLERANCE),
        Case("relu", "relu", (img,)),
        Case("sigmoid", "sigmoid", (img,)),
        Case("tanh", "tanh", (img,)),
        Case("activation_backward", "activation_backward", ("tanh", img, cpu("tanh", img))),
        Case("hardtanh", "hardtanh", (img, -0.5, 2.0)),
        Case("relu6", "relu6", (img,)),
        Case("leaky_relu", "leaky_relu", (img, 0.1)),
        Case("silu", "silu", (img,)),
        Case("gelu", "gelu", (img,)),
        Case("gelu tanh", "gelu", (img, "tanh")),
        Case("silu_backward", "silu_backward", (img, img)),
        Case("gelu_backward", "gelu_backward", (img, img)),
        Case("softmax", "softmax", (logits,)),
        Case("log_softmax dim 1", "log_softmax", (img,), dict(dim=1)),
        Case("softmax_backward", "softmax_backward", (target, soft)),
        Case("log_softmax_backward", "log_softmax_backward", (target, cpu("log_softmax", logits))),
        Case("mse_loss", "mse_loss", (logits, target)),
        Case("mse_loss_backward", "mse_loss_backward", (logits, target)),
        Case("binary_cross_entropy", "binary_cross_entropy", (prob, target)),
        Case("binary_cross_entropy_backward", "binary_cross_entropy_backward", (prob, target)),
        Case("cross_entropy", "cross_entropy", (logits, labels)),
        Case("cross_entropy_backward", "cross_entropy_backward", (logits, labels)),
        Case("output_sensitivity mse", "output_sensitivity", (act, target, logits, "tanh")),
        Case(
            "output_sensitivity ce",
            "output_sensitivity",
            (logits, labels, logits, None, "cross_entropy"),
        ),
        Case(
            "sensitivity", "sensitivity", (delta, weights[2], preacts[1], "relu"), {}, SUM_TOLERANCE
        ),
        Case("dense_grads", "dense_grads", (delta, inputs[2]), {}, SUM_TOLERANCE),
        Case(
            "mlp_backward",
            "mlp_backward",
            (inputs, preacts, weights, delta, acts),
            {},
            SUM_TOLERANCE,
        ),
        Case(
            "batch_norm train relu",
            "batch_norm",
            (img, None, None, gamma, beta, True),
            dict(activation="relu"),
            SUM_TOLERANCE,
        ),
        Case("batch_norm eval", "batch_norm", (img, beta, running_var, gamma, beta)),
        Case("batch_norm_stats", "batch_norm_stats", (img,), {}, SUM_TOLERANCE),
        Case("batch_norm_elemt", "batch_norm_elemt", (img, bn_mean, bn_invstd, gamma, beta)),
        Case(
            "batch_norm_backward relu",
            "batch_norm_backward",
            (randn(*img.shape), img, gamma, bn_mean, bn_invstd),
            dict(output=bn_y, activation="relu"),
            SUM_TOLERANCE,
        ),
    ]


# ---------------------------------------------------------------------------------------
# Running and reporting
# ---------------------------------------------------------------------------------------


def _arrays(value: Any) -> list[np.ndarray]:
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return [] if value is None else [np.asarray(value)]


def max_relative_error(got: Any, want: Any) -> float:
    """Largest |got - want| over max(1, max |want|), across every output array; inf if
    the structure or a shape differs.  NaN in the same places counts as equal."""
    got_arrays, want_arrays = _arrays(got), _arrays(want)
    if len(got_arrays) != len(want_arrays):
        return math.inf
    worst = 0.0
    for g, w in zip(got_arrays, want_arrays):
        if g.shape != w.shape:
            return math.inf
        g, w = g.astype(np.float64), w.astype(np.float64)
        same_nan = np.isnan(g) & np.isnan(w)
        diff = np.where(same_nan, 0.0, np.abs(g - w))
        if np.isnan(diff).any():
            return math.inf
        finite = w[np.isfinite(w)]
        scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
        worst = max(worst, float(diff.max()) / scale if diff.size else 0.0)
    return worst


@dataclass
class Row:
    label: str
    backend: str
    error: float
    passed: bool
    seconds: float | None = None
    baseline: str = ""
    baseline_seconds: float | None = None
    note: str = ""


def run_case(case: Case, backend: str, want: Any, repeats: int) -> Row:
    """Run ``case`` on ``backend``, compare with the CPU result ``want``, time both the op
    and the case's baseline."""
    fn = getattr(fastnn, case.op)
    args = to_device(case.args, backend)
    kwargs = {k: to_device(v, backend) for k, v in case.kwargs.items()}
    try:
        got = to_host(fn(*args, backend=backend, **kwargs))
    except Exception as exc:  # a missing or broken op is a failure, not a crash
        return Row(case.label, backend, math.inf, False, note=f"{type(exc).__name__}: {exc}")
    error = max_relative_error(got, want)
    row = Row(case.label, backend, error, error <= case.tolerance)
    sync = functools.partial(synchronize, backend)
    row.seconds = median_seconds(lambda: fn(*args, backend=backend, **kwargs), sync, repeats)
    if case.baseline is not None:
        made = case.baseline(case.args, case.kwargs)
        if made is not None:
            row.baseline, thunk = made
            device_sync = _baseline_sync(row.baseline)
            row.baseline_seconds = median_seconds(thunk, device_sync, repeats)
    return row


def _baseline_sync(name: str) -> Callable[[], None]:
    if name == "cuDNN":
        torch = _torch_cuda()
        return torch.cuda.synchronize
    import cupy

    return cupy.cuda.Device().synchronize


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:9.3f}"


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'op':32} {'backend':10} {'max rel err':>11} {'result':6} {'ms':>9} "
        f"{'baseline':>9} {'ms':>9} {'speed-up':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = "-"
        if r.seconds and r.baseline_seconds:
            ratio = f"{r.baseline_seconds / r.seconds:7.2f}x"
        result = "PASS" if r.passed else "FAIL"
        line = (
            f"{r.label:32} {r.backend:10} {r.error:11.2e} {result:6} {_ms(r.seconds):>9} "
            f"{r.baseline or '-':>9} {_ms(r.baseline_seconds):>9} {ratio:>8}"
        )
        print(line + (f"  {r.note}" if r.note else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, 5 timed runs")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (for tests)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per op")
    parser.add_argument("--backend", choices=GPU_BACKENDS, help="only this GPU backend")
    options = parser.parse_args(argv)
    backends = gpu_backends()
    if options.backend:
        backends = {k: v for k, v in backends.items() if k == options.backend}
    if not backends:
        for name, (available, text) in fastnn.backends().items():
            print(f"{name:11} {'available' if available else 'unavailable'}: {text}")
        print("skipped: no GPU")
        return 0
    for name, text in backends.items():
        print(f"{name}: {text}")
    repeats = options.repeats or (5 if options.quick or options.tiny else 20)
    rows = []
    size = "tiny" if options.tiny else "quick" if options.quick else "full"
    for case in build_cases(size):
        want = getattr(fastnn, case.op)(*case.args, backend="cpu", **case.kwargs)
        for backend in backends:
            rows.append(run_case(case, backend, want, repeats))
    print_table(rows)
    failed = [r for r in rows if not r.passed]
    print(f"\n{len(rows) - len(failed)} passed, {len(failed)} failed (float32, vs backend='cpu')")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
