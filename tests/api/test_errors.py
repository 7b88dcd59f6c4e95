"""Every error path of docs/API.md: bad input raises ValueError/TypeError with a message
that names the op, the argument and the value, on every backend that runs numpy arrays."""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastnn

f32, f64 = np.float32, np.float64


def x4(n=2, c=3, h=8, w=8, dtype=f32):
    return np.ones((n, c, h, w), dtype=dtype)


def x3(n=2, c=3, length=10, dtype=f32):
    return np.ones((n, c, length), dtype=dtype)


def w4(k=4, c=3, r=3, s=3, dtype=f32):
    return np.ones((k, c, r, s), dtype=dtype)


def w3(k=4, c=3, r=3, dtype=f32):
    return np.ones((k, c, r), dtype=dtype)


class FakeCudaArray:
    """An object that looks like a GPU array (it has __cuda_array_interface__)."""

    def __init__(self, shape, dtype=f32):
        self.shape = shape
        self.dtype = np.dtype(dtype)

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (0, False), "version": 3}


# (id, call, exception type, regex the message must match)
CASES = [
    # --- array types and dtypes -----------------------------------------------------------
    ("list-input", lambda: fastnn.relu([1.0, 2.0]), TypeError, r"relu: input must be an array"),
    ("int-input", lambda: fastnn.relu(np.arange(3)), TypeError, r"float32 or float64.*int64"),
    ("bool-input", lambda: fastnn.sigmoid(np.ones(3, bool)), TypeError, r"dtype bool"),
    ("complex-input", lambda: fastnn.tanh(np.ones(3, complex)), TypeError, r"complex128"),
    ("object-input", lambda: fastnn.relu(np.array([1.0], dtype=object)), TypeError, r"object"),
    ("float16-input", lambda: fastnn.relu(np.ones(3, np.float16)), TypeError, r"float16"),
    ("mixed-dtype-conv", lambda: fastnn.conv2d(x4(), w4(dtype=f64)), TypeError,
     r"conv2d: input and weight must have the same dtype, got float32 and float64"),
    ("mixed-dtype-bias", lambda: fastnn.conv2d(x4(), w4(), np.ones(4, f64)), TypeError,
     r"input and bias"),
    ("int-weight", lambda: fastnn.conv1d(x3(), np.ones((4, 3, 3), int)), TypeError,
     r"conv1d: weight must be a float32 or float64 array"),
    ("mixed-device", lambda: fastnn.conv2d(x4(), FakeCudaArray((4, 3, 3, 3))), ValueError,
     r"conv2d: input is a numpy.ndarray but weight is a CUDA array.*same device"),
    ("mixed-device-loss", lambda: fastnn.mse_loss(np.ones(3, f32), FakeCudaArray((3,))),
     ValueError, r"input.*target.*same device"),
    ("gemm-mixed-dtype", lambda: fastnn.gemm(np.ones((2, 2), f32), np.ones((2, 2), f64)),
     TypeError, r"gemm: a and b must have the same dtype"),
    # --- conv shapes and parameters -------------------------------------------------------
    ("conv2d-unbatched", lambda: fastnn.conv2d(np.ones((3, 8, 8), f32), w4()), ValueError,
     r"conv2d: input must be 4-d \(N, C, H, W\) \(batched\), got shape \(3, 8, 8\)"),
    ("conv1d-unbatched", lambda: fastnn.conv1d(np.ones((3, 8), f32), w3()), ValueError,
     r"conv1d: input must be 3-d \(N, C, L\)"),
    ("conv2d-weight-ndim", lambda: fastnn.conv2d(x4(), w3()), ValueError,
     r"conv2d: weight must be 4-d"),
    ("conv-channels", lambda: fastnn.conv2d(x4(c=3), w4(c=2)), ValueError,
     r"weight.shape\[1\] must be input channels // groups = 3"),
    ("conv-groups-in", lambda: fastnn.conv2d(x4(c=3), w4(k=4, c=1), groups=2), ValueError,
     r"input channels \(3\) must be divisible by groups \(2\)"),
    ("conv-groups-out", lambda: fastnn.conv2d(x4(c=4), w4(k=3, c=2), groups=2), ValueError,
     r"output channels .* = 3\) must be divisible by groups \(2\)"),
    ("conv-groups-zero", lambda: fastnn.conv2d(x4(), w4(), groups=0), ValueError,
     r"groups must be >= 1, got 0"),
    ("conv-groups-float", lambda: fastnn.conv2d(x4(), w4(), groups=1.0), TypeError,
     r"groups must be an int"),
    ("conv-stride-zero", lambda: fastnn.conv2d(x4(), w4(), stride=0), ValueError,
     r"conv2d: stride must be >= 1, got 0"),
    ("conv-stride-neg-tuple", lambda: fastnn.conv2d(x4(), w4(), stride=(1, -2)), ValueError,
     r"stride must be >= 1, got \(1, -2\)"),
    ("conv-stride-float", lambda: fastnn.conv2d(x4(), w4(), stride=2.0), TypeError,
     r"stride must be an int or a tuple of ints, got 2.0"),
    ("conv-stride-bool", lambda: fastnn.conv2d(x4(), w4(), stride=True), TypeError,
     r"stride must be an int"),
    ("conv-stride-len", lambda: fastnn.conv2d(x4(), w4(), stride=(1, 1, 1)), ValueError,
     r"stride must be an int or a tuple of 2 ints, got \(1, 1, 1\)"),
    ("conv-padding-neg", lambda: fastnn.conv2d(x4(), w4(), padding=-1), ValueError,
     r"padding must be >= 0, got -1"),
    ("conv-padding-str", lambda: fastnn.conv2d(x4(), w4(), padding="full"), ValueError,
     r"padding must be an int, a tuple of 2 ints, 'valid' or 'same', got 'full'"),
    ("conv-same-strided", lambda: fastnn.conv2d(x4(), w4(), stride=2, padding="same"),
     ValueError, r"padding='same' requires stride 1"),
    ("conv-dilation-zero", lambda: fastnn.conv1d(x3(), w3(), dilation=0), ValueError,
     r"conv1d: dilation must be >= 1, got 0"),
    ("conv-kernel-too-big", lambda: fastnn.conv2d(x4(h=4, w=4), w4(r=5, s=5)), ValueError,
     r"padded input size \(4, 4\) is smaller than the dilated kernel size \(5, 5\)"),
    ("conv-dilated-too-big", lambda: fastnn.conv1d(x3(length=5), w3(r=3), dilation=3),
     ValueError, r"smaller than the dilated kernel size \(7,\)"),
    ("conv-bias-shape", lambda: fastnn.conv2d(x4(), w4(), np.ones(5, f32)), ValueError,
     r"conv2d: bias must have shape \(4,\) \(C_out\), got \(5,\)"),
    ("conv-algo", lambda: fastnn.conv2d(x4(), w4(), algo="fft"), ValueError,
     r"algo must be one of \('auto', 'im2col', 'direct', 'winograd', .*\), got 'fft'"),
    ("conv-winograd-kernel", lambda: fastnn.conv2d(x4(), w4(r=5, s=5), algo="winograd"),
     ValueError, r"algo='winograd' runs 2-D 3x3 .* the kernel must be 3x3, got 5x5"),
    ("conv-winograd-stride", lambda: fastnn.conv2d(x4(), w4(), stride=2, algo="winograd4"),
     ValueError, r"algo='winograd4' .* the stride must be 1, got \(2, 2\)"),
    ("conv-winograd-dilation",
     lambda: fastnn.conv2d_backward(x4(c=4, h=4, w=4), x4(), w4(), dilation=2, algo="winograd"),
     ValueError, r"the dilation must be 1, got \(2, 2\)"),
    ("conv-winograd-1d", lambda: fastnn.conv1d(x3(), w3(r=3), algo="winograd2"), ValueError,
     r"runs 2-D convolutions only, this is conv1d"),
    ("conv-zero-channels", lambda: fastnn.conv2d(x4(c=0), w4(c=0)), ValueError,
     r"at least one channel"),
    ("conv-zero-out", lambda: fastnn.conv2d(x4(), w4(k=0)), ValueError,
     r"at least one output channel"),
    ("conv-bw-grad-shape", lambda: fastnn.conv2d_backward(x4(c=4, h=7), x4(), w4()),
     ValueError, r"conv2d_backward: grad_output must have shape \(2, 4, 6, 6\)"),
    ("conv-bw-mask-len", lambda: fastnn.conv2d_backward(x4(c=4, h=6, w=6), x4(), w4(),
                                                          output_mask=(True, False)),
     ValueError, r"output_mask must be a tuple of 3 bools"),
    ("conv-bw-mask-type", lambda: fastnn.conv1d_backward(x3(c=4, length=8), x3(), w3(),
                                                           output_mask=(1, 0, 1)),
     TypeError, r"output_mask must be a bool, got 1"),
    # --- pooling --------------------------------------------------------------------------
    ("pool-unbatched", lambda: fastnn.max_pool2d(np.ones((3, 8, 8), f32), 2), ValueError,
     r"max_pool2d: input must be 4-d \(N, C, H, W\) \(batched\)"),
    ("pool1d-4d", lambda: fastnn.avg_pool1d(x4(), 2), ValueError, r"avg_pool1d: input must be 3-d"),
    ("pool-kernel-zero", lambda: fastnn.max_pool2d(x4(), 0), ValueError,
     r"kernel_size must be >= 1, got 0"),
    ("pool-stride-zero", lambda: fastnn.avg_pool2d(x4(), 2, stride=0), ValueError,
     r"stride must be >= 1, got 0"),
    ("pool-pad-too-big", lambda: fastnn.max_pool2d(x4(), 3, padding=2), ValueError,
     r"padding must be at most half of kernel_size"),
    ("avg-pad-too-big", lambda: fastnn.avg_pool1d(x3(), 2, padding=2), ValueError,
     r"at most half"),
    ("pool-too-small", lambda: fastnn.max_pool2d(x4(h=2, w=2), 3), ValueError,
     r"input spatial size \(2, 2\) is too small"),
    ("pool-dilation", lambda: fastnn.max_pool1d(x3(), 2, dilation=0), ValueError,
     r"dilation must be >= 1, got 0"),
    ("pool-ceil-type", lambda: fastnn.max_pool1d(x3(), 2, ceil_mode="yes"), TypeError,
     r"ceil_mode must be a bool"),
    ("pool-indices-type", lambda: fastnn.max_pool2d(x4(), 2, return_indices=1), TypeError,
     r"return_indices must be a bool"),
    ("pool-cip-type", lambda: fastnn.avg_pool2d(x4(), 2, count_include_pad=None), TypeError,
     r"count_include_pad must be a bool"),
    ("pool-empty-plane", lambda: fastnn.max_pool2d(np.ones((2, 3, 0, 4), f32), 1), ValueError,
     r"non-zero channels and spatial size"),
    ("maxbw-grad-shape", lambda: fastnn.max_pool2d_backward(x4(h=3, w=4), x4(), 2),
     ValueError, r"grad_output must have shape \(2, 3, 4, 4\)"),
    ("maxbw-indices-float", lambda: fastnn.max_pool2d_backward(
        x4(h=4, w=4), x4(), 2, indices=np.zeros((2, 3, 4, 4), f32)),
     TypeError, r"indices must be an integer array, got dtype float32"),
    ("maxbw-indices-shape", lambda: fastnn.max_pool2d_backward(
        x4(h=4, w=4), x4(), 2, indices=np.zeros((2, 3, 4), np.int64)),
     ValueError, r"indices must have shape \(2, 3, 4, 4\)"),
    ("maxbw-indices-range", lambda: fastnn.max_pool2d_backward(
        x4(h=4, w=4), x4(), 2, indices=np.full((2, 3, 4, 4), 64, np.int64)),
     ValueError, r"every entry of indices must be in \[0, 64\), got values in \[64, 64\]"),
    ("maxbw-indices-negative", lambda: fastnn.max_pool1d_backward(
        x3(length=5), x3(), 2, indices=np.full((2, 3, 5), -1, np.int64)),
     ValueError, r"every entry of indices must be in \[0, 10\)"),
    ("avgbw-grad-shape", lambda: fastnn.avg_pool1d_backward(x3(length=4), x3(), 2),
     ValueError, r"avg_pool1d_backward: grad_output must have shape \(2, 3, 5\)"),
    # --- gemm / linear --------------------------------------------------------------------
    ("gemm-ndim", lambda: fastnn.gemm(np.ones(3, f32), np.ones((3, 3), f32)), ValueError,
     r"gemm: a must be 2-d matrix, got shape \(3,\)"),
    ("gemm-inner", lambda: fastnn.gemm(np.ones((2, 3), f32), np.ones((4, 5), f32)),
     ValueError, r"gemm: inner dimensions differ: op\(a\) is \(2, 3\) and op\(b\) is \(4, 5\)"),
    ("gemm-trans-inner", lambda: fastnn.gemm(np.ones((2, 3), f32), np.ones((2, 5), f32),
                                             trans_b=True),
     ValueError, r"inner dimensions differ"),
    ("gemm-c-shape", lambda: fastnn.gemm(np.ones((2, 3), f32), np.ones((3, 5), f32),
                                         np.ones((3, 5), f32), beta=1.0),
     ValueError, r"c must be broadcastable to the result shape \(2, 5\), got shape \(3, 5\)"),
    ("gemm-alpha-type", lambda: fastnn.gemm(np.ones((2, 2), f32), np.ones((2, 2), f32),
                                            alpha="2"),
     TypeError, r"alpha must be a real number"),
    ("gemm-beta-complex", lambda: fastnn.gemm(np.ones((2, 2), f32), np.ones((2, 2), f32),
                                              beta=1j),
     TypeError, r"beta must be a real number"),
    ("gemm-trans-type", lambda: fastnn.gemm(np.ones((2, 2), f32), np.ones((2, 2), f32),
                                            trans_a="T"),
     TypeError, r"trans_a must be a bool"),
    ("linear-features", lambda: fastnn.linear(np.ones((4, 3), f32), np.ones((5, 2), f32)),
     ValueError, r"linear: input.shape\[-1\] must equal weight.shape\[1\] = 2"),
    ("linear-weight-ndim", lambda: fastnn.linear(np.ones((4, 3), f32), np.ones(3, f32)),
     ValueError, r"weight must be 2-d"),
    ("linear-bias", lambda: fastnn.linear(np.ones((4, 3), f32), np.ones((5, 3), f32),
                                          np.ones(4, f32)),
     ValueError, r"bias must have shape \(5,\)"),
    ("linear-activation", lambda: fastnn.linear(np.ones((4, 3), f32), np.ones((5, 3), f32),
                                                activation="gelu"),
     ValueError, r"activation must be one of \(None, 'relu', 'sigmoid', 'tanh'\), got 'gelu'"),
    ("linear-scalar-input", lambda: fastnn.linear(np.ones((), f32),
                                                  np.ones((5, 1), f32)),
     ValueError, r"at least 1-d"),
    ("linear-bw-grad", lambda: fastnn.linear_backward(np.ones((4, 6), f32),
                                                      np.ones((4, 3), f32), np.ones((5, 3), f32)),
     ValueError, r"grad_output must have shape \(4, 5\)"),
    # --- activations, softmax -------------------------------------------------------------
    ("act-bw-name", lambda: fastnn.activation_backward("gelu", np.ones(3, f32), np.ones(3, f32)),
     ValueError, r"activation must be one of"),
    ("act-bw-none", lambda: fastnn.activation_backward(None, np.ones(3, f32), np.ones(3, f32)),
     ValueError, r"name must be one of"),
    ("act-bw-shape", lambda: fastnn.activation_backward("relu", np.ones(3, f32), np.ones(4, f32)),
     ValueError, r"grad_output and output must have the same shape, got \(3,\) and \(4,\)"),
    ("hardtanh-bounds", lambda: fastnn.hardtanh(np.ones(3, f32), 1.0, -1.0), ValueError,
     r"hardtanh: max_val \(-1.0\) must not be less than min_val \(1.0\)"),
    ("leaky-slope-nan", lambda: fastnn.leaky_relu(np.ones(3, f32), float("nan")), ValueError,
     r"leaky_relu: negative_slope must be finite"),
    ("leaky-bw-negative", lambda: fastnn.activation_backward(
        "leaky_relu", np.ones(3, f32), np.ones(3, f32), negative_slope=-0.1),
     ValueError, r"needs negative_slope >= 0"),
    ("gelu-approx", lambda: fastnn.gelu(np.ones(3, f32), "erf"), ValueError,
     r"gelu: approximate must be one of \('none', 'tanh'\)"),
    ("silu-bw-shape", lambda: fastnn.silu_backward(np.ones(3, f32), np.ones(4, f32)),
     ValueError, r"grad_output and input must have the same shape"),
    ("relu-out-shape", lambda: fastnn.relu(np.ones(3, f32), out=np.ones(4, f32)), ValueError,
     r"relu: out must have the input's shape \(3,\)"),
    ("relu6-out-dtype", lambda: fastnn.relu6(np.ones(3, f32), out=np.ones(3)), TypeError,
     r"relu6: out must have the input's dtype float32"),
    ("softmax-dim", lambda: fastnn.softmax(np.ones((2, 3), f32), dim=2), ValueError,
     r"softmax: dim must be in \[-2, 1\] for a 2-d input, got 2"),
    ("softmax-dim-neg", lambda: fastnn.log_softmax(np.ones((2, 3), f32), dim=-3), ValueError,
     r"dim must be in \[-2, 1\]"),
    ("softmax-dim-float", lambda: fastnn.softmax(np.ones((2, 3), f32), dim=1.0), TypeError,
     r"dim must be an int"),
    ("softmax-bw-shape", lambda: fastnn.softmax_backward(np.ones((2, 3), f32),
                                                         np.ones((3, 2), f32)),
     ValueError, r"same shape"),
    # --- losses ---------------------------------------------------------------------------
    ("mse-shape", lambda: fastnn.mse_loss(np.ones(3, f32), np.ones(4, f32)), ValueError,
     r"mse_loss: input and target must have the same shape, got \(3,\) and \(4,\)"),
    ("mse-reduction", lambda: fastnn.mse_loss(np.ones(3, f32), np.ones(3, f32), "avg"),
     ValueError, r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
    ("bce-range", lambda: fastnn.binary_cross_entropy(np.array([0.5, 1.5], f32),
                                                      np.ones(2, f32)),
     ValueError, r"every entry of input must be in \[0, 1\], got values in \[0.5, 1.5\]"),
    ("bce-nan", lambda: fastnn.binary_cross_entropy(np.array([np.nan], f32), np.ones(1, f32)),
     ValueError, r"must be in \[0, 1\]"),
    ("bce-bw-range", lambda: fastnn.binary_cross_entropy_backward(np.array([-0.1], f64),
                                                                  np.ones(1, f64)),
     ValueError, r"binary_cross_entropy_backward: every entry of input must be in \[0, 1\]"),
    ("ce-target-float", lambda: fastnn.cross_entropy(np.ones((3, 4), f32), np.zeros(3, f32)),
     TypeError, r"cross_entropy: target must be an integer array, got dtype float32"),
    ("ce-target-range", lambda: fastnn.cross_entropy(np.ones((3, 4), f32),
                                                     np.array([0, 1, 4])),
     ValueError, r"every entry of target must be in \[0, 4\), got values in \[0, 4\]"),
    ("ce-target-negative", lambda: fastnn.cross_entropy_backward(np.ones((3, 4), f32),
                                                                 np.array([0, -1, 2])),
     ValueError, r"must be in \[0, 4\)"),
    ("ce-target-shape", lambda: fastnn.cross_entropy(np.ones((3, 4), f32), np.zeros(4, int)),
     ValueError, r"target must have shape \(3,\)"),
    ("ce-input-ndim", lambda: fastnn.cross_entropy(np.ones(4, f32), np.zeros(4, int)),
     ValueError, r"input must be 2-d logits \(N, C\)"),
    ("ce-target-device", lambda: fastnn.cross_entropy(np.ones((3, 4), f32),
                                                      FakeCudaArray((3,), np.int64)),
     ValueError, r"same device"),
    # --- sensitivity recursion ------------------------------------------------------------
    ("bp1-loss", lambda: fastnn.output_sensitivity(np.ones((2, 3)), np.ones((2, 3)),
                                                   np.ones((2, 3)), None, loss="hinge"),
     ValueError, r"loss must be one of \('mse', 'binary_cross_entropy', 'cross_entropy'\)"),
    ("bp1-shape", lambda: fastnn.output_sensitivity(np.ones((2, 3)), np.ones((2, 4)),
                                                    np.ones((2, 3)), "relu"),
     ValueError, r"output and target must have the same shape"),
    ("bp1-softmax-mse", lambda: fastnn.output_sensitivity(np.ones((2, 3)), np.ones((2, 3)),
                                                          np.ones((2, 3)), "softmax"),
     ValueError, r"activation must be one of"),
    ("bp1-ce-target", lambda: fastnn.output_sensitivity(np.ones((2, 3)), np.array([0, 3]),
                                                        np.ones((2, 3)), None,
                                                        loss="cross_entropy"),
     ValueError, r"target must be in \[0, 3\)"),
    ("bp2-chain", lambda: fastnn.sensitivity(np.ones((2, 3)), np.ones((4, 5)), np.ones((2, 5)),
                                             "tanh"),
     ValueError, r"sensitivity: shapes do not chain.*weight_next must be \(3, 5\)"),
    ("bp2-activation", lambda: fastnn.sensitivity(np.ones((2, 3)), np.ones((3, 5)),
                                                  np.ones((2, 5)), "swish"),
     ValueError, r"activation must be one of"),
    ("bp34-rows", lambda: fastnn.dense_grads(np.ones((2, 3)), np.ones((4, 5))), ValueError,
     r"dense_grads: delta and input must have the same number of rows"),
    ("mlp-empty", lambda: fastnn.mlp_backward([], [], [], np.ones((2, 3)), []), ValueError,
     r"at least one layer"),
    ("mlp-lengths", lambda: fastnn.mlp_backward([np.ones((2, 3))], [np.ones((2, 4))],
                                                [np.ones((4, 3))], np.ones((2, 4)),
                                                ["relu", "relu"]),
     ValueError, r"activations has 2"),
    ("mlp-chain", lambda: fastnn.mlp_backward([np.ones((2, 3))], [np.ones((2, 4))],
                                              [np.ones((4, 2))], np.ones((2, 4)), [None]),
     ValueError, r"layer 0 does not chain"),
    ("mlp-type", lambda: fastnn.mlp_backward(np.ones((2, 3)), [np.ones((2, 4))],
                                             [np.ones((4, 3))], np.ones((2, 4)), [None]),
     TypeError, r"inputs must be a list or tuple"),
    ("mlp-delta", lambda: fastnn.mlp_backward([np.ones((2, 3))], [np.ones((2, 4))],
                                              [np.ones((4, 3))], np.ones((2, 5)), [None]),
     ValueError, r"delta_out must have shape \(2, 4\)"),
    # --- control --------------------------------------------------------------------------
    ("threads-zero", lambda: fastnn.set_num_threads(0), ValueError, r"n must be >= 1, got 0"),
    ("threads-float", lambda: fastnn.set_num_threads(2.5), TypeError, r"n must be an int"),
    ("backend-unknown", lambda: fastnn.relu(np.ones(3, f32), backend="tpu"), ValueError,
     r"backend must be one of \('cpu', 'reference', 'numba-cuda', 'cupy'\), got 'tpu'"),
    ("use-backend-unknown", lambda: fastnn.use_backend("opencl").__enter__(), ValueError,
     r"backend must be one of"),
    ("autotune-type", lambda: fastnn.autotune("yes"), TypeError, r"enabled must be a bool"),
]  # fmt: skip


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize(
    ("call", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_clear_error(call, error, pattern, backend):
    with fastnn.use_backend(backend), pytest.raises(error) as info:
        call()
    assert re.search(pattern, str(info.value)), f"message was: {info.value}"


def test_errors_are_not_asserts():
    """Validation never relies on assert, which python -O strips."""
    import inspect

    import fastnn._args
    import fastnn.ops

    for module in (fastnn._args, *_modules(fastnn.ops)):
        assert "assert " not in inspect.getsource(module), module.__name__


def _modules(package):
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(package.__path__):
        yield importlib.import_module(f"{package.__name__}.{info.name}")


def test_gpu_backend_on_this_machine_raises_runtime_error_with_reason():
    available = fastnn.backends()
    for name in ("cupy", "numba-cuda"):
        ok, reason = available[name]
        if ok:
            continue
        with pytest.raises(RuntimeError, match=re.escape(reason)):
            fastnn.relu(np.ones(3, f32), backend=name)


def _none_cases():
    """(op, call with None in one required array argument, that argument's name)."""
    x = np.ones((2, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    rows, weight = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    pooled, conv_out = np.ones((2, 3, 4, 4), np.float32), np.ones((2, 4, 6, 6), np.float32)
    stats = (np.zeros(3, np.float32), np.ones(3, np.float32))
    return [
        ("max_pool2d_backward", lambda: fastnn.max_pool2d_backward(None, x, 2), "grad_output"),
        ("avg_pool2d_backward", lambda: fastnn.avg_pool2d_backward(pooled, None, 2), "input"),
        ("conv2d", lambda: fastnn.conv2d(x, None), "weight"),
        ("conv2d_backward", lambda: fastnn.conv2d_backward(conv_out, None, w), "input"),
        ("linear_backward", lambda: fastnn.linear_backward(None, rows, weight), "grad_output"),
        ("gemm", lambda: fastnn.gemm(None, rows), "a"),
        ("activation_backward", lambda: fastnn.activation_backward("relu", None, x), "grad_output"),
        ("softmax_backward", lambda: fastnn.softmax_backward(x, None, 1), "output"),
        ("mse_loss", lambda: fastnn.mse_loss(x, None), "target"),
        (
            "adaptive_avg_pool2d_backward",
            lambda: fastnn.adaptive_avg_pool2d_backward(None, x),
            "grad_output",
        ),
        (
            "batch_norm_backward",
            lambda: fastnn.batch_norm_backward(None, x, None, *stats),
            "grad_output",
        ),
        ("batch_norm_elemt", lambda: fastnn.batch_norm_elemt(x, None, stats[1]), "mean"),
        ("add", lambda: fastnn.add(x, None), "b"),
        ("dense_grads", lambda: fastnn.dense_grads(None, rows), "delta"),
        ("silu_backward", lambda: fastnn.silu_backward(x, None), "input"),
    ]


@pytest.mark.parametrize(
    "op, call, name", _none_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_none_for_a_required_array_is_a_type_error_naming_it(op, call, name):
    with pytest.raises(TypeError, match=rf"^{op}: {name} must be an array"):
        call()
