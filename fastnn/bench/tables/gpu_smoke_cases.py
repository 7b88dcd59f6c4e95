"""The cases of the GPU smoke test (fastnn.bench.tables.gpu_smoke): every op of the public
API on float32 inputs, each a :class:`~fastnn.bench.case.Case` of family "smoke" whose
implementations are the GPU backends and, where one runs here, a baseline: cuBLAS
(cupy.matmul) for gemm and linear, PyTorch on CUDA (cuDNN) for convolution and pooling.
``case.params`` holds the keyword arguments and the tolerance against ``backend="cpu"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

import fastnn
from fastnn.bench.case import Case, Impl, fastnn_name

__all__ = ["GPU_BACKENDS", "SIZES", "SUM_TOLERANCE", "TOLERANCE", "build_cases", "smoke_case"]

GPU_BACKENDS = ("cupy", "numba-cuda")
#: The device each GPU backend's arrays live on (fastnn.bench.case.DEVICES).
DEVICES = {"cupy": "cupy", "numba-cuda": "numba"}
#: Largest error relative to max(1, max |CPU result|) that passes, float32 against float32.
TOLERANCE = 2e-4
#: Long sums (GEMM, convolution) round more: their bound grows with the summed length.
SUM_TOLERANCE = 2e-3

#: Makes the baseline of a case from its keyword arguments (None where it cannot run here).
Baseline = Callable[[dict], "Impl | None"]


def smoke_case(
    label: str,
    op: str,
    args: tuple,
    kwargs: dict,
    tolerance: float,
    backends: Iterable[str],
    baseline: Baseline | None = None,
) -> Case:
    """``fastnn.<op>(*args, **kwargs)`` on each of ``backends`` (host arrays in ``args``
    and ``kwargs`` are moved to the backend's device), then the baseline."""
    fn = getattr(fastnn, op)

    def on(backend: str) -> Callable[[Mapping[str, Any]], Any]:
        return lambda d: fn(*d["args"], backend=backend, **d["kwargs"])

    impls = [Impl(fastnn_name(b), on(b), DEVICES[b]) for b in backends]
    made = baseline(kwargs) if baseline is not None else None
    if made is not None:
        impls.append(made)
    params = {"kwargs": kwargs, "tolerance": tolerance}
    data = {"args": args, "kwargs": kwargs}
    return Case("smoke", op, label, params, 0.0, 0.0, lambda rng: data, tuple(impls), "latency")


def _torch_cuda() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def cublas_matmul(a_index: int, b_index: int, transpose_b: bool = False) -> Baseline:
    """Baseline: cupy.matmul (cuBLAS) of two of the case's arrays."""

    def make(kwargs: dict) -> Impl | None:
        try:
            import cupy
        except ImportError:
            return None

        def run(d: Mapping[str, Any]) -> Any:
            a, b = d["args"][a_index], d["args"][b_index]
            return cupy.matmul(a, b.T if transpose_b else b)

        return Impl("cuBLAS", run, "cupy")

    return make


def torch_op(name: str, *, backward: bool = False) -> Baseline:
    """Baseline: torch.nn.functional.<name> (cuDNN) on CUDA tensors; for ``backward``, the
    convolution's ATen backward (grad_input, grad_weight, grad_bias)."""

    def make(kwargs: dict) -> Impl | None:
        torch = _torch_cuda()
        if torch is None:
            return None
        options = {k: v for k, v in kwargs.items() if k not in ("algo", "output_mask")}
        if not backward:
            fn = getattr(torch.nn.functional, name)
            return Impl("cuDNN", lambda d: fn(*d["args"], **options), "torch-cuda")
        stride, padding, dilation = (options.get(k, v) for k, v in _CONV_DEFAULTS.items())
        groups = options.get("groups", 1)

        def run(d: Mapping[str, Any]) -> Any:
            gy, x, w = d["args"][:3]
            nd = x.dim() - 2
            return torch.ops.aten.convolution_backward(
                gy, x, w, [w.shape[0]], _tuple(stride, nd), _tuple(padding, nd),
                _tuple(dilation, nd), False, [0] * nd, groups, [True, True, True],
            )  # fmt: skip

        return Impl("cuDNN", run, "torch-cuda")

    return make


_CONV_DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1}


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


def build_cases(size: str, backends: Iterable[str] = GPU_BACKENDS) -> list[Case]:
    """Every op of the public API once (convolution three ways), float32 inputs, each a
    case of family "smoke" run by ``backends`` (and its baseline, where one runs here);
    ``params["tolerance"]`` is the largest error that passes."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
    unknown = set(backends) - set(GPU_BACKENDS)
    if unknown:
        raise ValueError(f"unknown GPU backends {sorted(unknown)}; expected {GPU_BACKENDS}")
    rng = np.random.default_rng(0)
    backends = tuple(backends)

    def check(label, op, args, kwargs=None, tolerance=TOLERANCE, baseline=None) -> Case:
        return smoke_case(label, op, args, kwargs or {}, tolerance, backends, baseline)

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
    conv2d, conv2d_back = torch_op("conv2d"), torch_op("conv2d", backward=True)
    cases = [
        *(
            check(f"conv2d 3x3 {a}", "conv2d", (img, w3, bias), dict(conv_kw, algo=a), conv_tol,
                  conv2d)
            for a in ("im2col", "direct")
        ),
        check("conv2d depthwise", "conv2d", (img, randn(c, 1, 3, 3)), dict(conv_kw, groups=c),
              conv_tol, conv2d),
        check("conv1d k5", "conv1d", (seq, w1, bias1), conv1_kw, conv_tol, torch_op("conv1d")),
        *(
            check(label, "conv2d_backward", (gy, img, w3), dict(conv_kw, algo=a), conv_tol,
                  conv2d_back)
            for label, a in (("conv2d_backward", "im2col"), ("conv2d_backward direct", "direct"))
        ),
        check("conv1d_backward", "conv1d_backward", (gy1, seq, w1), conv1_kw, conv_tol,
              torch_op("conv1d", backward=True)),
    ]  # fmt: skip
    return cases + [
        check(
            "max_pool2d",
            "max_pool2d",
            (img,),
            dict(pool_kw, return_indices=True),
            baseline=torch_op("max_pool2d"),
        ),
        check("max_pool1d", "max_pool1d", (seq,), pool1_kw, baseline=torch_op("max_pool1d")),
        check("avg_pool2d", "avg_pool2d", (img,), pool_kw, baseline=torch_op("avg_pool2d")),
        check("avg_pool1d", "avg_pool1d", (seq,), pool1_kw, baseline=torch_op("avg_pool1d")),
        check("max_pool2d_backward", "max_pool2d_backward", (gp, img), pool_kw),
        check(
            "max_pool2d_backward idx",
            "max_pool2d_backward",
            (gp, img),
            dict(pool_kw, indices=indices),
        ),
        check("max_pool1d_backward", "max_pool1d_backward", (gp1, seq), pool1_kw),
        check("avg_pool2d_backward", "avg_pool2d_backward", (gp, img), pool_kw),
        check("avg_pool1d_backward", "avg_pool1d_backward", (gp1, seq), pool1_kw),
        check("adaptive_avg_pool2d", "adaptive_avg_pool2d", (img, (3, 5))),
        check("adaptive_avg_pool2d global", "adaptive_avg_pool2d", (img, 1)),
        check("adaptive_avg_pool1d", "adaptive_avg_pool1d", (seq, 7)),
        check("adaptive_max_pool2d", "adaptive_max_pool2d", (img, (3, 5), True)),
        check("adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_backward", (ga, img)),
        check("adaptive_avg_pool1d_backward", "adaptive_avg_pool1d_backward", (ga1, seq)),
        check("adaptive_max_pool2d_backward", "adaptive_max_pool2d_backward", (ga, img)),
        check("dropout", "dropout", (img, 0.3), dict(generator=7)),
        check("dropout_backward", "dropout_backward", (img, drop_mask, 0.3)),
        check("add relu", "add", (img, cpu("tanh", img)), dict(activation="relu")),
        check("gemm", "gemm", (a, b), {}, SUM_TOLERANCE, cublas_matmul(0, 1)),
        check(
            "gemm T alpha beta",
            "gemm",
            (a, b, cm),
            dict(alpha=0.5, beta=2.0, trans_a=True, trans_b=True),
            SUM_TOLERANCE,
        ),
        check(
            "linear relu",
            "linear",
            (x, wl, bl),
            dict(activation="relu"),
            SUM_TOLERANCE,
            cublas_matmul(0, 1, transpose_b=True),
        ),
        check("linear_backward", "linear_backward", (gl, x, wl), {}, SUM_TOLERANCE),
        check("relu", "relu", (img,)),
        check("sigmoid", "sigmoid", (img,)),
        check("tanh", "tanh", (img,)),
        check("activation_backward", "activation_backward", ("tanh", img, cpu("tanh", img))),
        check("hardtanh", "hardtanh", (img, -0.5, 2.0)),
        check("relu6", "relu6", (img,)),
        check("leaky_relu", "leaky_relu", (img, 0.1)),
        check("silu", "silu", (img,)),
        check("gelu", "gelu", (img,)),
        check("gelu tanh", "gelu", (img, "tanh")),
        check("silu_backward", "silu_backward", (img, img)),
        check("gelu_backward", "gelu_backward", (img, img)),
        check("softmax", "softmax", (logits,)),
        check("log_softmax dim 1", "log_softmax", (img,), dict(dim=1)),
        check("softmax_backward", "softmax_backward", (target, soft)),
        check("log_softmax_backward", "log_softmax_backward", (target, cpu("log_softmax", logits))),
        check("mse_loss", "mse_loss", (logits, target)),
        check("mse_loss_backward", "mse_loss_backward", (logits, target)),
        check("binary_cross_entropy", "binary_cross_entropy", (prob, target)),
        check("binary_cross_entropy_backward", "binary_cross_entropy_backward", (prob, target)),
        check("cross_entropy", "cross_entropy", (logits, labels)),
        check("cross_entropy_backward", "cross_entropy_backward", (logits, labels)),
        check("output_sensitivity mse", "output_sensitivity", (act, target, logits, "tanh")),
        check(
            "output_sensitivity ce",
            "output_sensitivity",
            (logits, labels, logits, None, "cross_entropy"),
        ),
        check(
            "sensitivity", "sensitivity", (delta, weights[2], preacts[1], "relu"), {}, SUM_TOLERANCE
        ),
        check("dense_grads", "dense_grads", (delta, inputs[2]), {}, SUM_TOLERANCE),
        check(
            "mlp_backward",
            "mlp_backward",
            (inputs, preacts, weights, delta, acts),
            {},
            SUM_TOLERANCE,
        ),
        check(
            "batch_norm train relu",
            "batch_norm",
            (img, None, None, gamma, beta, True),
            dict(activation="relu"),
            SUM_TOLERANCE,
        ),
        check("batch_norm eval", "batch_norm", (img, beta, running_var, gamma, beta)),
        check("batch_norm_stats", "batch_norm_stats", (img,), {}, SUM_TOLERANCE),
        check("batch_norm_elemt", "batch_norm_elemt", (img, bn_mean, bn_invstd, gamma, beta)),
        check(
            "batch_norm_backward relu",
            "batch_norm_backward",
            (randn(*img.shape), img, gamma, bn_mean, bn_invstd),
            dict(output=bn_y, activation="relu"),
            SUM_TOLERANCE,
        ),
    ]
