"""Every op of the ``cupy`` backend, through the public API, against the float64
reference backend, with CuPy emulated on the CPU (tests/gpu/test_cupy_backend_emulator.py):
the real host code and the real CUDA C kernels, compiled by g++ and run by the emulator.

Shapes are tiny (every CUDA thread is a fiber here) but cover odd sizes, stride,
padding, dilation, groups, ceil_mode, batch 0 and 1, NaN and inf, non-contiguous and
negative-stride inputs, several column-buffer chunks and grids smaller than the data
(grid-stride loops).  What the emulator cannot check is listed in its docstring.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import fastnn
from fastnn._geometry import conv_geometry, pool_geometry
from fastnn.ops import OPS
from tests.gpu.test_cupy_backend_emulator import CXX, EmulatedModule, FakeArray, installed
from tests.utils import assert_close, assert_nested_close, layouts

pytestmark = pytest.mark.skipif(CXX is None, reason="the CUDA emulator needs g++")


@pytest.fixture(scope="module", autouse=True)
def emulated():
    with installed() as fake:
        yield fake


def to_device(value):
    """numpy arrays (any layout, views kept) as emulated cupy arrays; lists recursively."""
    if isinstance(value, (np.ndarray, np.generic)):  # a numpy scalar is a 0-d array
        return np.asarray(value).view(FakeArray)
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v) for v in value)
    return value


def check(op: str, *args, rtol: float | None = None, **kwargs):
    """Run ``op`` on the emulated GPU and on the reference; compare every output."""
    want = getattr(fastnn, op)(*args, backend="reference", **kwargs)
    on_device = {key: to_device(value) for key, value in kwargs.items()}
    got = getattr(fastnn, op)(*to_device(args), **on_device)
    _compare(got, want, op, rtol)
    return got


def _compare(got, want, what: str, rtol) -> None:
    assert_nested_close(got, want, what, _fake_values, rtol)


def _fake_values(got, want: np.ndarray, what: str) -> np.ndarray:
    assert isinstance(got, FakeArray), f"{what}: returned {type(got).__name__}"
    assert got.flags.c_contiguous, f"{what}: output not C-contiguous"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    return np.asarray(got).view(np.ndarray)


def _values(rng, shape, dtype, special: bool = True) -> np.ndarray:
    x = np.asarray(rng.standard_normal(shape) * 3)
    if special and x.size >= 4:
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    return np.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------
# Elementwise, softmax, losses
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5, 4), (1100,)])
def test_activations_and_gradients(rng, dtype, shape):
    x = _values(rng, shape, dtype)
    gy = _values(rng, shape, dtype, special=False)
    for name in ("relu", "sigmoid", "tanh"):
        check(name, x)
        y = getattr(fastnn, name)(x, backend="reference")
        check("activation_backward", name, gy, y)


@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5, 4), (1100,)])
def test_extra_activations_and_gradients(rng, dtype, shape):
    """hardtanh, relu6, leaky_relu (gradients from the output), silu, gelu (from the
    input), NaN and +-inf included, on contiguous and reversed inputs."""
    for x in (_values(rng, shape, dtype), _values(rng, shape, dtype)[::-1] if shape else None):
        if x is None:
            continue
        gy = _values(rng, x.shape, dtype, special=False)
        with np.errstate(all="ignore"):
            check("hardtanh", x, -2.0, 3.0)
            check("relu6", x)
            check("leaky_relu", x, 0.2)
            check("silu", x)
            check("silu_backward", gy, x)
            for approx in ("none", "tanh"):
                check("gelu", x, approx)
                check("gelu_backward", gy, x, approx)
            y = fastnn.hardtanh(x, -2.0, 3.0, backend="reference")
            check("activation_backward", "hardtanh", gy, y, min_val=-2.0, max_val=3.0)
            check("activation_backward", "relu6", gy, fastnn.relu6(x, backend="reference"))
            y = fastnn.leaky_relu(x, 0.2, backend="reference")
            check("activation_backward", "leaky_relu", gy, y, negative_slope=0.2)


@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu"])
def test_activation_out_in_place_and_separate(rng, name):
    args = {"hardtanh": (-0.5, 2.0), "leaky_relu": (0.1,)}.get(name, ())
    x = _values(rng, (5, 7), np.float32)
    want = getattr(fastnn, name)(x, *args, backend="reference")
    d = to_device(x.copy())
    assert getattr(fastnn, name)(d, *args, out=d) is d
    assert_close(np.asarray(d).view(np.ndarray), want, np.float32, what=f"{name} in place")
    out = to_device(np.zeros_like(x))
    src = to_device(x.copy())[::-1]  # a non-contiguous input into a separate out
    assert getattr(fastnn, name)(src, *args, out=out) is out
    assert_close(np.asarray(out).view(np.ndarray), want[::-1], np.float32, what=name)
    with pytest.raises(ValueError, match="C-contiguous"):
        getattr(fastnn, name)(to_device(x), *args, out=to_device(np.zeros((7, 5), np.float32)).T)


def test_any_input_layout(rng, dtype):
    x = _values(rng, (4, 6), dtype)
    w = rng.standard_normal((3, 6)).astype(dtype)
    for _, view in layouts(x):
        check("tanh", view)
        check("softmax", view, dim=0)
        check("linear", view, w, activation="relu")
    img = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    weight = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    for _, view in layouts(img):
        check("conv2d", view, weight, None, 1, 1, algo="im2col")
        check("conv2d", view, weight, None, 2, 0, algo="direct")
        check("max_pool2d", view, 2, return_indices=True)
        check("avg_pool2d", view, 3, 2, 1)


SOFTMAX_CASES = [
    ((5, 40), -1),  # one 32-thread block per row
    ((3, 300), 1),  # one 256-thread block per row
    ((4, 7), -1),  # short rows: a thread per row
    ((2, 3, 4), 1),  # a middle axis: a thread per line
    ((4, 7), 0),
    ((6,), 0),
    ((), 0),
    ((0, 5), -1),
    ((3, 0), 1),
]


@pytest.mark.parametrize("shape, dim", SOFTMAX_CASES)
def test_softmax_family(rng, dtype, shape, dim):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    for name in ("softmax", "log_softmax"):
        check(name, x, dim=dim)
        y = getattr(fastnn, name)(x, dim=dim, backend="reference")
        check(f"{name}_backward", gy, y, dim=dim)


@pytest.mark.parametrize("length", [40, 5])
def test_softmax_rows_with_nan_and_inf(dtype, length):
    x = np.zeros((4, length), dtype=dtype)
    x[0, 3] = np.nan
    x[1, 2] = np.inf
    x[2, :] = -np.inf
    x[3, 1] = -np.inf
    for name in ("softmax", "log_softmax"):
        check(name, x, dim=-1)


@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (4, 33), (3000,)])
def test_pointwise_losses(rng, dtype, shape, reduction):
    x = rng.standard_normal(shape).astype(dtype)
    t = rng.standard_normal(shape).astype(dtype)
    check("mse_loss", x, t, reduction)
    check("mse_loss_backward", x, t, reduction)
    p = rng.uniform(0, 1, shape).astype(dtype)
    if p.size >= 2:
        p.reshape(-1)[:2] = [0.0, 1.0]  # log clamped at -100, gradient denominator at 1e-12
    q = rng.uniform(0, 1, shape).astype(dtype)
    check("binary_cross_entropy", p, q, reduction)
    check("binary_cross_entropy_backward", p, q, reduction)


@pytest.mark.parametrize("rows, classes", [(0, 5), (1, 3), (7, 10), (5, 200), (3, 1)])
def test_cross_entropy(rng, dtype, rows, classes, reduction):
    x = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    target = rng.integers(0, classes, rows)
    check("cross_entropy", x, target, reduction)
    check("cross_entropy_backward", x, target, reduction)
    check("cross_entropy", x, target.astype(np.int32), reduction)


def test_data_checks_run_on_the_device(rng):
    p = np.array([0.5, 1.5], dtype=np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fastnn.binary_cross_entropy(to_device(p), to_device(p))
    with pytest.raises(ValueError, match="nan"):
        nan = np.array([0.5, np.nan], dtype=np.float32)
        fastnn.binary_cross_entropy(to_device(nan), to_device(p))
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        fastnn.cross_entropy(to_device(x), to_device(np.array([0, 4, 1])))


# ---------------------------------------------------------------------------------------
# GEMM, linear, the sensitivity recursion
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm(rng, dtype, trans_a, trans_b):
    for m, n, k in [(5, 7, 3), (1, 4, 9), (6, 1, 2), (3, 4, 0), (0, 3, 2)]:
        a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
        flags = dict(trans_a=trans_a, trans_b=trans_b)
        check("gemm", a, b, **flags)
        check("gemm", a, b, alpha=-0.5, **flags)
        for c_shape in [(), (n,), (1, n), (m, 1), (m, n), (1,)]:
            c = rng.standard_normal(c_shape).astype(dtype)
            check("gemm", a, b, c, alpha=1.5, beta=0.7, **flags)
        nan_c = np.full((m, n), np.nan, dtype=dtype)
        check("gemm", a, b, nan_c, alpha=2.0, beta=0.0, **flags)  # beta 0 ignores c


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh"])
def test_linear_and_backward(rng, dtype, activation):
    for x_shape, out_f in [((5, 3), 4), ((2, 3, 6), 5), ((6,), 2), ((0, 4), 3), ((3, 0), 2)]:
        x = rng.standard_normal(x_shape).astype(dtype)
        w = rng.standard_normal((out_f, x_shape[-1])).astype(dtype)
        b = rng.standard_normal(out_f).astype(dtype)
        check("linear", x, w, b, activation=activation)
        check("linear", x, w, activation=activation)
        gy = rng.standard_normal((*x_shape[:-1], out_f)).astype(dtype)
        for mask in [(True, True, True), (False, True, False), (True, False, True)]:
            check("linear_backward", gy, x, w, output_mask=mask)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_output_sensitivity(rng, dtype, reduction):
    shape = (6, 5)
    u = rng.standard_normal(shape).astype(dtype)
    t = rng.uniform(0, 1, shape).astype(dtype)
    for activation in [None, "relu", "sigmoid", "tanh"]:
        y = fastnn.linear(u, np.eye(5, dtype=dtype), activation=activation, backend="reference")
        check("output_sensitivity", y, t, u, activation, "mse", reduction)
        if activation in ("sigmoid", None):
            p = y if activation == "sigmoid" else t
            check("output_sensitivity", p, t, u, activation, "binary_cross_entropy", reduction)
    labels = rng.integers(0, 5, 6)
    check("output_sensitivity", u, labels, u, None, "cross_entropy", reduction)
    prob = fastnn.softmax(u, backend="reference")
    check("output_sensitivity", prob, labels, u, "softmax", "cross_entropy", reduction)


def test_sensitivity_dense_grads_and_mlp_backward(rng, dtype):
    sizes, rows = [4, 6, 5, 3], 7
    acts = ["relu", "tanh", None]
    inputs, preacts, weights = [], [], []
    y = rng.standard_normal((rows, sizes[0])).astype(dtype)
    for i, act in enumerate(acts):
        w = rng.standard_normal((sizes[i + 1], sizes[i])).astype(dtype)
        u = fastnn.linear(y, w, backend="reference")
        inputs.append(y)
        preacts.append(u)
        weights.append(w)
        y = fastnn.linear(y, w, activation=act, backend="reference")
    delta = rng.standard_normal((rows, sizes[-1])).astype(dtype)
    for act in ["relu", "sigmoid", "tanh", None]:
        check("sensitivity", delta, weights[2], preacts[1], act)
    check("dense_grads", delta, inputs[2])
    check("mlp_backward", inputs, preacts, weights, delta, acts)
    check("dense_grads", delta[:0], inputs[2][:0])


# ---------------------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------------------


def _conv_case(rng, nd: int, batch: int):
    groups = int(rng.integers(1, 4))
    cin, cout = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
    size = tuple(int(s) for s in rng.integers(4, 9, nd))
    choice = rng.integers(0, 4)
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    if choice == 0:
        padding, stride = "same", (1,) * nd
    elif choice == 1:
        padding = "valid"
    else:
        padding = tuple(int(p) for p in rng.integers(0, 3, nd))
    for axis in range(nd):  # keep the dilated kernel inside the (unpadded) input
        while dilation[axis] * (kernel[axis] - 1) + 1 > size[axis]:
            dilation = dilation[:axis] + (1,) + dilation[axis + 1 :]
            kernel = kernel[:axis] + (kernel[axis] - 1,) + kernel[axis + 1 :]
    x = rng.standard_normal((batch, cin, *size))
    w = rng.standard_normal((cout, cin // groups, *kernel))
    b = rng.standard_normal(cout)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("algo", ["im2col", "direct", "auto"])
def test_convolution_forward_and_backward(rng, dtype, nd, algo):
    op = f"conv{nd}d"
    for batch in [2, 1, 3, 0, 2]:
        x, w, b, kw = _conv_case(rng, nd, batch)
        x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
        y = check(op, x, w, b, algo=algo, **kw)
        check(op, x, w, None, algo=algo, **kw)
        gy = rng.standard_normal(y.shape).astype(dtype)
        check(f"{op}_backward", gy, x, w, algo=algo, **kw)
        check(f"{op}_backward", gy, x, w, algo=algo, output_mask=(True, False, False), **kw)


def test_convolution_in_several_column_chunks(rng, dtype, monkeypatch):
    from fastnn._backends.cupy import _conv_im2col

    x = rng.standard_normal((5, 4, 6, 5)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    per_image = 4 * 6 * 6 * 4 * np.dtype(dtype).itemsize  # C_in * taps * P bytes
    monkeypatch.setattr(_conv_im2col, "COLUMN_BUDGET", 2 * per_image)  # chunks of 2, 2, 1
    kw = dict(stride=1, padding=1, groups=2, algo="im2col")
    y = check("conv2d", x, w, b, **kw)
    gy = rng.standard_normal(y.shape).astype(dtype)
    check("conv2d_backward", gy, x, w, **kw)
    ones = rng.standard_normal((6, 4, 1, 1)).astype(dtype)  # 1x1: the columns are the input
    check("conv2d", x, ones, b, algo="im2col")


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("algo", ["im2col", "direct"])
def test_convolution_fused_activation(rng, dtype, nd, algo):
    """activation="relu" / "relu6": the direct kernel's store and the im2col epilogue,
    with and without bias, NaN and inf in the input, against the reference."""
    op = f"conv{nd}d"
    for batch in [2, 1]:
        x, w, b, kw = _conv_case(rng, nd, batch)
        x = _values(rng, x.shape, dtype)  # * 3, with NaN and +-inf
        w, b = w.astype(dtype), (3 * b).astype(dtype)
        for activation in ("relu", "relu6"):
            y = check(op, x, w, b, algo=algo, activation=activation, **kw)
            check(op, x, w, None, algo=algo, activation=activation, **kw)
            assert np.nanmax(np.asarray(y)) <= (6 if activation == "relu6" else np.inf)


def _cupy_entries(cache) -> dict[str, str]:
    """The cupy entries of an autotune cache file, without the machine context prefix."""
    from fastnn import _autotune, _machine

    data = json.loads(cache.read_text())
    assert data["format"] == _autotune._FORMAT
    prefix = _machine.context() + "|"
    assert all(k.startswith(prefix) for k in data["entries"])
    entries = {k[len(prefix) :]: v for k, v in data["entries"].items()}
    return {k: v for k, v in entries.items() if k.startswith("cupy:")}


def test_autotune_times_both_algorithms_once_and_remembers(rng, tmp_path, monkeypatch):
    from fastnn import _autotune

    cache = tmp_path / "autotune.json"
    monkeypatch.setitem(_autotune._state, "enabled", True)
    monkeypatch.setitem(_autotune._state, "cache", cache)
    monkeypatch.setattr(_autotune, "_memory", {})
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    gy = rng.standard_normal((2, 4, 4, 3))
    with _autotune.recording() as first:
        check("conv2d", x, w, None)
        check("conv2d_backward", gy, x, w, output_mask=(True, True, False))
    entries = _cupy_entries(cache)
    keys = sorted(k.split("|")[:2] for k in entries)
    assert keys == [["cupy:conv2d", "pass=backward110"], ["cupy:conv2d", "pass=forward"]]
    assert set(entries.values()) <= {"im2col", "direct"}
    plane = "plane=2,3,6,5,4,1,3,3,4,3,1,1,1,1,0,0,0,0"
    for key in entries:  # fastnn._selection's layout, the GPU named by the emulator
        assert key.split("|")[2:] == [plane, "dtype=float64", "threads=0",
                                      "device=smemulated CuPy emulator"]  # fmt: skip
    assert sorted(first.timed) == sorted(first.choices) and len(first.timed) == 2
    with _autotune.recording() as again:  # remembered: nothing timed a second time
        check("conv2d", x, w, None)
        check("conv2d_backward", gy, x, w, output_mask=(True, True, False))
    assert again.timed == [] and again.choices == first.choices


def test_autotune_off_takes_the_prior_and_times_nothing(rng, tmp_path, monkeypatch):
    from fastnn import _autotune
    from fastnn._backends.cupy import _conv_shape

    cache = tmp_path / "autotune.json"
    monkeypatch.setitem(_autotune._state, "enabled", False)
    monkeypatch.setitem(_autotune._state, "cache", cache)
    monkeypatch.setattr(_autotune, "_memory", {})
    ran = []
    monkeypatch.setattr(_conv_shape, "choose_conv", _spy(_conv_shape.choose_conv, ran))
    x = rng.standard_normal((2, 3, 6, 5))
    w = rng.standard_normal((4, 3, 3, 3))  # 3 * 9 = 27 multiply-adds: direct first
    with _autotune.recording() as record:
        check("conv2d", x, w, None)
    assert record.choices == {} and not cache.exists()
    assert ran == [["direct", "im2col"]]
    wide = rng.standard_normal((4, 3, 4, 3))  # 36 multiply-adds: im2col first
    geom = conv_geometry("conv2d", 2, x.shape, wide.shape, 1, 0, 1, 1)
    assert _conv_shape.ranked(geom) == ["im2col", "direct"]


def _spy(choose, ranks: list):
    def spy(backend, op, which, geom, dtype, threads, ranked, run, device=""):
        ranks.append(list(ranked))
        return choose(backend, op, which, geom, dtype, threads, ranked, run, device)

    return spy


@pytest.mark.parametrize("algo", ["winograd", "winograd2", "winograd4", "winograd6"])
def test_winograd_is_refused_with_value_error(rng, algo):
    x = to_device(rng.standard_normal((1, 2, 5, 5)))
    w = to_device(rng.standard_normal((2, 2, 3, 3)))
    gy = to_device(rng.standard_normal((1, 2, 3, 3)))
    message = rf"algo='{algo}' is implemented on the cpu backend only; use 'auto', 'im2col' or"
    with pytest.raises(ValueError, match=rf"^conv2d: {message} 'direct' on cupy$"):
        fastnn.conv2d(x, w, algo=algo)
    with pytest.raises(ValueError, match=rf"^conv2d_backward: {message}"):
        fastnn.conv2d_backward(gy, x, w, algo=algo)


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------


def _pool_case(rng, nd: int, batch: int, dilated: bool):
    while True:
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(s) for s in rng.integers(1, 4, nd))
        pad = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd)) if dilated else (1,) * nd
        shape = (batch, 2, *(int(s) for s in rng.integers(3, 9, nd)))
        kw = dict(kernel_size=kernel, stride=stride, padding=pad, ceil_mode=bool(rng.integers(2)))
        try:  # the geometry checks of the public ops, without running any backend
            pool_geometry("test", nd, shape, kernel, stride, pad, dilation, kw["ceil_mode"])
        except ValueError:
            continue
        return shape, kw, dilation


@pytest.mark.parametrize("nd", [1, 2])
def test_pooling_forward_and_backward(rng, dtype, nd):
    for batch in [2, 1, 0, 3, 2, 1]:
        shape, kw, dilation = _pool_case(rng, nd, batch, dilated=True)
        x = rng.standard_normal(shape).astype(dtype)
        x.reshape(-1)[:: max(1, x.size // 3)] = np.nan if batch % 2 else -np.inf
        op = f"max_pool{nd}d"
        y, idx = check(op, x, dilation=dilation, return_indices=True, **kw)
        gy = rng.standard_normal(y.shape).astype(dtype)
        check(f"{op}_backward", gy, x, dilation=dilation, **kw)
        check(f"{op}_backward", gy, x, dilation=dilation, indices=np.asarray(idx), **kw)
        shape, kw, _ = _pool_case(rng, nd, batch, dilated=False)
        x = rng.standard_normal(shape).astype(dtype)
        for include in (True, False):
            op = f"avg_pool{nd}d"
            y = check(op, x, count_include_pad=include, **kw)
            gy = rng.standard_normal(y.shape).astype(dtype)
            check(f"{op}_backward", gy, x, count_include_pad=include, **kw)


def test_max_pool_backward_with_indices_outside_their_windows(rng, dtype):
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    y = fastnn.max_pool2d(x, 2, backend="reference")
    gy = rng.standard_normal(y.shape).astype(dtype)
    indices = rng.integers(0, 30, y.shape)  # valid positions, mostly in other windows
    check("max_pool2d_backward", gy, x, 2, indices=indices)


ADAPTIVE_CASES = [((2, 2, 7, 5), (3, 2)), ((1, 3, 3, 4), (5, 6)), ((2, 2, 6, 5), 1),
                  ((0, 2, 8, 6), (4, 3)), ((1, 1, 5, 7), (None, 3))]  # fmt: skip


@pytest.mark.parametrize("shape, size", ADAPTIVE_CASES)
def test_adaptive_pooling_forward_and_backward(rng, dtype, shape, size):
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[:: max(1, x.size // 3)] = np.nan
    y, idx = check("adaptive_max_pool2d", x, size, return_indices=True)
    gy = rng.standard_normal(y.shape).astype(dtype)
    check("adaptive_max_pool2d_backward", gy, x)
    check("adaptive_max_pool2d_backward", gy, x, np.asarray(idx))
    plane = int(np.prod(shape[2:]))  # valid positions, mostly outside their windows
    check("adaptive_max_pool2d_backward", gy, x, rng.integers(0, plane, y.shape))
    y = check("adaptive_avg_pool2d", x, size)
    check("adaptive_avg_pool2d_backward", rng.standard_normal(y.shape).astype(dtype), x)
    x1, size1 = x[:, :, 0], (size if isinstance(size, int) else size[1])
    y = check("adaptive_avg_pool1d", x1, size1)
    check("adaptive_avg_pool1d_backward", rng.standard_normal(y.shape).astype(dtype), x1)


@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5, 4), (1100,)])
def test_dropout_and_residual_add(rng, dtype, shape):
    x = _values(rng, shape, dtype)
    b = _values(rng, shape, dtype, special=False)
    for p, seed in ((0.5, 3), (0.1, 2**64 - 1)):
        y, mask = check("dropout", x, p, generator=seed)  # the reference's mask, exactly
        check("dropout_backward", b, np.asarray(mask), p)
        check("dropout_backward", b, np.asarray(mask).astype(bool), p)
    check("dropout", x, 0.5, training=False)
    check("dropout_backward", b, None, 0.5)
    for activation in (None, "relu", "relu6"):
        check("add", x, b, activation=activation)


# ---------------------------------------------------------------------------------------
# Launch configuration
# ---------------------------------------------------------------------------------------


def _launches() -> int:
    return sum(
        len(k.launches) for module in EmulatedModule.created for k in module._kernels.values()
    )


def test_grid_stride_loops_cover_everything_with_one_block(rng, monkeypatch):
    from fastnn._backends.cupy import _runtime

    monkeypatch.setattr(_runtime, "MAX_BLOCKS", 1)
    x = rng.standard_normal((3, 2, 9, 7)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    check("relu", x)
    check("softmax", x.reshape(6, 63), dim=1)
    check("softmax", x, dim=1)
    check("cross_entropy_backward", x.reshape(6, 63), np.arange(6))
    check("conv2d", x, w, None, 1, 1, algo="direct")
    check("conv2d_backward", rng.standard_normal((3, 4, 9, 7)).astype(np.float32), x, w,
          1, 1, algo="direct")  # fmt: skip
    check("conv2d", x, w, None, 1, 1, algo="im2col")
    check("max_pool2d", x, 3, 2, 1, return_indices=True)
    check("avg_pool2d_backward", rng.standard_normal((3, 2, 4, 3)).astype(np.float32), x, 3,
          2, 0)  # fmt: skip


def test_sums_split_into_many_uneven_chunks(rng, monkeypatch):
    from fastnn._backends.cupy import _reduce, loss

    chunking = _reduce.chunking
    for module in (_reduce, loss):  # chunks of 10 elements (or rows): the last one shorter
        monkeypatch.setattr(module, "chunking", lambda count, _: chunking(count, 10))
    x = rng.standard_normal((3, 2, 9, 7)).astype(np.float64)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float64)
    gy = rng.standard_normal((3, 4, 9, 7)).astype(np.float64)
    check("conv2d_backward", gy, x, w, 1, 1, output_mask=(False, False, True))
    rows = rng.standard_normal((61, 5)).astype(np.float64)
    check("dense_grads", rows, rows)
    check("cross_entropy", rows, rng.integers(0, 5, 61), "sum")
    check("mse_loss", x, x[::-1].copy(), "mean")


def test_empty_inputs_launch_nothing(rng):
    before = _launches()
    empty = np.zeros((0, 3, 5, 5), dtype=np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    check("relu", empty)
    check("softmax", empty, dim=1)
    check("conv2d", empty, w, None, algo="direct")
    check("conv2d", empty, w, None, algo="im2col")
    check("max_pool2d", empty, 2)
    check("avg_pool2d", empty, 2)
    check("gemm", np.zeros((0, 3), np.float32), np.zeros((3, 4), np.float32))
    assert _launches() == before


def test_each_source_is_compiled_once_per_dtype():
    names = [tuple(m.names) for m in EmulatedModule.created]
    assert names and len(names) == len(set(names))


# ---------------------------------------------------------------------------------------
# Array kinds: __cuda_array_interface__ objects and Numba device arrays
# ---------------------------------------------------------------------------------------


class ForeignArray:
    """A GPU array of some other library: only shape, dtype and the interface."""

    def __init__(self, host: np.ndarray):
        self.host = host
        self.shape, self.dtype = host.shape, host.dtype
        self.__cuda_array_interface__ = {
            "shape": host.shape,
            "typestr": host.dtype.str,
            "data": (host.__array_interface__["data"][0], False),
            "strides": host.strides,
            "version": 3,
        }


class NumbaLikeArray(ForeignArray):
    """Classified as a Numba device array by the dispatcher (module numba.*)."""


NumbaLikeArray.__module__ = "numba.cuda.cudadrv.devicearray"


def test_cuda_array_interface_objects_come_back_as_cupy_arrays(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    out = fastnn.relu(ForeignArray(x))
    assert isinstance(out, FakeArray)
    np.testing.assert_array_equal(np.asarray(out), np.maximum(x, 0))
    strided = rng.standard_normal((4, 6)).astype(np.float32)[:, ::-2]
    out = fastnn.softmax(ForeignArray(strided), backend="cupy")
    assert_close(np.asarray(out), fastnn.softmax(strided, backend="reference"))


def test_numba_arrays_come_back_as_numba_arrays(rng, monkeypatch):
    from fastnn._backends.cupy import _runtime

    made = []

    def numba_view(array):
        made.append(array)
        return ("numba", array)

    monkeypatch.setattr(_runtime, "_numba_view", numba_view)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    y = fastnn.conv1d(NumbaLikeArray(x), NumbaLikeArray(w), backend="cupy")
    assert y[0] == "numba" and isinstance(y[1], FakeArray)
    assert_close(np.asarray(y[1]), fastnn.conv1d(x, w, backend="reference"))
    gx, gw, gb = fastnn.conv1d_backward(
        NumbaLikeArray(np.ones((2, 4, 6), np.float32)), NumbaLikeArray(x), NumbaLikeArray(w),
        backend="cupy", output_mask=(True, True, False),
    )  # fmt: skip
    assert gx[0] == gw[0] == "numba" and gb is None


BATCH_NORM_SHAPES = [(4, 3), (3, 2, 5), (2, 3, 2, 3), (1, 2, 3), (0, 2, 3)]


@pytest.mark.parametrize("shape", BATCH_NORM_SHAPES)
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_batch_norm_family(rng, dtype, shape, activation):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 100).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    # training: the running statistics move in place on the device as on the host
    host_rm, host_rv = rm.copy(), rv.copy()
    want = fastnn.batch_norm(x, host_rm, host_rv, w, b, True, 0.3, activation=activation,
                             return_stats=True, backend="reference")  # fmt: skip
    dev_rm, dev_rv = to_device(rm.copy()), to_device(rv.copy())
    got = fastnn.batch_norm(*to_device((x, dev_rm, dev_rv, w, b)), True, 0.3,
                            activation=activation, return_stats=True)  # fmt: skip
    _compare(got, want, "batch_norm train", None)
    _compare((dev_rm, dev_rv), (host_rm, host_rv), "running stats", None)
    y, mean, invstd = want
    for training in (True, False):
        for mask in ((True, True, True), (False, True, False), (True, False, True)):
            check("batch_norm_backward", g, x, w, mean, invstd, training=training, output=y,
                  activation=activation, output_mask=mask)  # fmt: skip
    check("batch_norm_backward", g, x, None, mean, invstd, output=y, activation=activation)
    check("batch_norm", x, rm, rv, w[::-1], b, activation=activation)  # eval, strided weight
    check("batch_norm", x, rm, rv, None, None, training=False)
    check("batch_norm_stats", x, 1e-3)
    check("batch_norm_elemt", x[::-1], mean, invstd, w, None, activation=activation)


def test_batch_norm_counts_batches_and_refuses_strided_running_stats(rng):
    x = rng.standard_normal((3, 2, 2))
    count = to_device(np.zeros((), np.int64))
    rm, rv = to_device(np.zeros(2)), to_device(np.ones(2))
    for _ in range(2):
        fastnn.batch_norm(to_device(x), rm, rv, training=True, momentum=None,
                          num_batches_tracked=count)  # fmt: skip
    assert int(np.asarray(count)) == 2
    want_rm, want_rv = np.zeros(2), np.ones(2)
    fastnn.batch_norm(x, want_rm, want_rv, training=True, momentum=1.0, backend="reference")
    _compare((rm, rv), (want_rm, want_rv), "cumulative average of one batch", None)
    strided = to_device(np.zeros(4))[::2]
    with pytest.raises(ValueError, match="running_mean must be contiguous"):
        fastnn.batch_norm(to_device(x), strided, rv, training=True)


def test_every_public_op_has_a_cupy_implementation():
    from fastnn import _dispatch

    table = _dispatch.registered()
    missing = [op for op in (*OPS, "_value_range") if "cupy" not in table.get(op, [])]
    assert not missing


def test_gpu_smoke_script_passes_on_the_emulated_gpu(capsys, monkeypatch):
    from bench import gpu_smoke

    # --repeats 1: a warm-up call and one timed call per implementation (fastnn.bench.timing)
    status = gpu_smoke.main(["--tiny", "--repeats", "1", "--backend", "cupy"])
    out = capsys.readouterr().out
    assert status == 0, out
    cases = gpu_smoke.build_cases("tiny")
    assert out.count(" PASS ") == len(cases) and " FAIL " not in out
    assert {c.op for c in cases} >= set(OPS)
