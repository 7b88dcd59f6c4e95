"""The call routes of fastnn.jax give the same bits where the same kernel runs: pooling on
the XLA FFI route (C handler, geometry settled at trace time) against the buffer_callback
route (fastnn's Cython wrappers), under jit, grad and vmap, on random configurations;
convolution on every route and every CPU algorithm; the fallback without the handler;
and fastnn's Python caches under callbacks that XLA runs on several threads at once."""

from __future__ import annotations

import ctypes
import math
import os
import subprocess
import sys
import threading
import zlib

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402

import fastnn  # noqa: E402
import fastnn.jax as fj  # noqa: E402
from fastnn import _autotune, _isa  # noqa: E402
from fastnn._backends.cpu import _conv_plan, conv_handoff  # noqa: E402
from fastnn._backends.cpu import conv as cpu_conv  # noqa: E402
from fastnn._threads import adaptive_teams  # noqa: E402
from fastnn.jax import _ffi  # noqa: E402
from tests.jax_bridge.jax_helpers import normal, precision  # noqa: E402

DTYPES = ("float32", "float64")


@pytest.fixture
def restore_route():
    before = fj.get_route()
    yield
    fj.set_route(before)


def _pool_case(rng: np.random.Generator, kind: str, nd: int) -> tuple[tuple, tuple]:
    """(input shape, the op's arguments after the input): odd sizes, batch 1 now and
    then, stride / padding / dilation / ceil_mode / count_include_pad at random."""
    kernel = tuple(int(k) for k in rng.integers(1, 5, nd))
    shape = (int(rng.choice([1, 2, 3])), int(rng.integers(1, 5)),
             *(int(s) for s in rng.integers(5, 30, nd)))  # fmt: skip
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    ceil_mode = bool(rng.integers(0, 2))
    if kind == "max":
        dilation = tuple(int(d) for d in rng.integers(1, 3, nd))
        return shape, (kernel, stride, padding, dilation, ceil_mode)
    return shape, (kernel, stride, padding, ceil_mode, bool(rng.integers(0, 2)))


def _results(route: str, fn, *args) -> list[np.ndarray]:
    """Value, gradients (every argument) and the vmapped value and gradients (over the
    first argument) of ``fn``, jitted, on ``route``."""
    fj.set_route(route)
    shape = jax.eval_shape(fn, *args).shape
    cot = jnp.cos(jnp.arange(math.prod(shape), dtype=args[0].dtype)).reshape(shape)
    grad = jax.grad(lambda *a: jnp.sum(fn(*a) * cot), tuple(range(len(args))))
    axes = (0,) + (None,) * (len(args) - 1)
    stacked = jnp.stack([args[0], args[0][::-1] * 2])
    outs = [jax.jit(fn)(*args), *jax.jit(grad)(*args)]
    outs += [jax.jit(jax.vmap(fn, axes))(stacked, *args[1:])]
    outs += jax.jit(jax.vmap(grad, axes))(stacked, *args[1:])
    return [np.asarray(o) for o in outs]


def _assert_same_bits(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype and u.shape == v.shape
        np.testing.assert_array_equal(u, v)


@pytest.mark.usefixtures("restore_route")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("nd", [1, 2])
def test_pool_ffi_matches_buffer_callback_bit_for_bit(kind, nd, dtype):
    if _ffi.library() is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    rng = np.random.default_rng(zlib.crc32(f"{kind}{nd}{dtype}".encode()))
    op = getattr(fj, f"{kind}_pool{nd}d")
    with precision(dtype):
        for _ in range(3):
            shape, args = _pool_case(rng, kind, nd)
            x = normal(rng, shape, dtype)
            fn = lambda x, a=args: op(x, *a)  # noqa: E731
            _assert_same_bits(_results("ffi", fn, x), _results("buffer_callback", fn, x))
        fj.set_route("ffi")
        text = jax.jit(jax.grad(lambda x: jnp.sum(fn(x)))).lower(x).as_text()
        assert f"fastnn_{kind}_pool_backward" in text and "callback" not in text


@pytest.mark.usefixtures("restore_route")
@pytest.mark.parametrize("threads", [1, 2])
def test_pool_ffi_splits_large_inputs_over_threads_to_the_same_bits(threads):
    """Inputs past the parallel threshold run one chunk per thread in the handler."""
    rng = np.random.default_rng(5)
    x = normal(rng, (2, 9, 61, 67), "float32")
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(threads)
        for fn in (lambda x: fj.max_pool2d(x, 3, 2, 1), lambda x: fj.avg_pool2d(x, 2, 1, 1, True),
                   lambda x: fj.max_pool1d(x[:, :, 0], 4, 3, 2, 2)):  # fmt: skip
            _assert_same_bits(_results("ffi", fn, x), _results("buffer_callback", fn, x))
    finally:
        fastnn.set_num_threads(before)


@pytest.fixture
def fixed_teams():
    """fastnn's wrappers at the full thread count, as the handler plans (by default they
    shrink their teams while other processes keep the CPUs busy)."""
    before = adaptive_teams()
    adaptive_teams(False)
    yield
    adaptive_teams(before)


def _conv_case(rng: np.random.Generator, kind: str = "any") -> tuple:
    """(nd, input shape, weight shape, has bias, stride, padding, dilation, groups): odd
    sizes, batch 1 now and then.  ``kind`` "winograd": 2-D 3x3 with stride and dilation
    1; "depthwise": groups = input channels (channel multiplier 1 to 3); "dense": not
    depthwise (two input channels per group at least)."""
    nd = 2 if kind == "winograd" else int(rng.integers(1, 3))
    n = int(rng.choice([1, 2, 3]))
    if kind == "depthwise":
        groups = cin = int(rng.integers(2, 7))
        cout = cin * int(rng.integers(1, 4))
    else:
        groups = int(rng.choice([1, 1, 2, 3]))
        per_group = int(rng.integers(2 if kind == "dense" else 1, 5))
        cin, cout = groups * per_group, groups * int(rng.integers(1, 9))
    size = tuple(int(v) for v in rng.integers(5, 19, nd))  # >= the widest dilated kernel
    if kind == "winograd":
        kernel, stride, dilation = (3, 3), 1, 1
        padding = tuple(int(p) for p in rng.integers(0, 3, nd))
    else:
        kernel = tuple(int(k) for k in rng.integers(1, 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        padding = tuple(int(v) for v in rng.integers(0, 3, nd))
    return (nd, (n, cin, *size), (cout, cin // groups, *kernel), bool(rng.integers(0, 2)),
            stride, padding, dilation, groups)  # fmt: skip


def _conv_args(rng, case, dtype):
    nd, x_shape, w_shape, bias, *params = case
    op = {1: fj.conv1d, 2: fj.conv2d}[nd]
    args = [normal(rng, x_shape, dtype), normal(rng, w_shape, dtype)]
    if bias:
        args.append(normal(rng, (w_shape[0],), dtype))
        return (lambda x, w, b: op(x, w, b, *params)), args
    return (lambda x, w: op(x, w, None, *params)), args


#: test id -> (the algorithm every pass is pinned to, the kind of layer of _conv_case)
PINNED = {
    "blocked": ("direct:blocked", "any"),
    "winograd": ("winograd", "winograd"),
    "depthwise": ("direct", "depthwise"),
    "depthwise-lanes": ("direct:lanes", "depthwise"),
    "rows": ("direct", "dense"),
    "im2col": ("im2col", "any"),
}


@pytest.mark.usefixtures("restore_route", "fixed_teams")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pinned", list(PINNED))
def test_conv_ffi_matches_buffer_callback_bit_for_bit(pinned, dtype, monkeypatch):
    """Every pass pinned to an algorithm (the channel-blocked kernel on random strides,
    paddings, dilations and groups, with every stride phase of its input gradient;
    Winograd with each tile size; both depthwise variants, "direct" on a depthwise layer;
    the direct row kernel, "direct" on any other layer; im2col + BLAS): the handler runs
    all three passes, and its bits are the wrappers'."""
    if _ffi.library() is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    algorithm, kind = PINNED[pinned]
    # im2col beside a BLAS whose threads C cannot hold at one keeps the callback
    covered = algorithm != "im2col" or conv_handoff.blas_controls() is not None
    rng = np.random.default_rng(zlib.crc32(f"{algorithm}{kind}{dtype}".encode()))
    winograd = algorithm == "winograd"
    for i in range(3):
        name = f"winograd{(2, 4, 6)[i]}" if winograd else algorithm
        monkeypatch.setattr(cpu_conv, "_pick_once", lambda *a, name=name: name)
        fastnn.autotune(True)  # forget the choices made so far
        with precision(dtype):
            fn, args = _conv_args(rng, _conv_case(rng, kind), dtype)
            ours = _results("ffi", fn, *args)
            loss = jax.grad(lambda *a, f=fn: jnp.sum(f(*a)), (0, 1))
            text = jax.jit(loss).lower(*args).as_text()
            _assert_same_bits(ours, _results("buffer_callback", fn, *args))
        if covered:
            assert "fastnn_conv_input_grad" in text and "fastnn_conv_weight_grad" in text
        assert ("callback" in text) != covered


#: Layers and forced blocks that reach the Cython kernels' other paths: (nd, input shape,
#: weight shape, stride, padding, chunking): pointwise layers (im2col reads the image in
#: place, 2-D only: the 1-D view has no row stride), several whole images per im2col tile,
#: short tiles, one row / channel / block of output channels per direct item, and a weight
#: large enough for im2col's shared-column weight gradient.
CYTHON_PATHS = (
    (2, (3, 6, 7, 9), (5, 6, 1, 1), 1, 0, {}),
    (1, (2, 6, 13), (5, 6, 1), 1, 0, {}),
    (2, (3, 4, 5, 6), (7, 4, 3, 3), 1, 1, {"tile": 60}),
    (1, (3, 4, 17), (7, 4, 3), 2, 1, {"tile": 5, "rows": 1, "channels": 1, "kblocks": 1}),
    (2, (2, 5, 9, 8), (3, 5, 2, 3), (2, 1), (1, 0), {"tile": 7, "rows": 2, "channels": 2}),
    (2, (2, 128, 4, 5), (256, 128, 3, 3), 1, 1, {}),
)


@pytest.mark.usefixtures("restore_route", "fixed_teams")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_conv_ffi_on_the_cython_kernels_paths_bit_for_bit(algorithm, dtype, monkeypatch):
    """The row kernel and im2col through their C entry points on the paths random layers
    rarely reach (CYTHON_PATHS): the wrappers' bits, the blocks forced at trace time and
    at call time alike."""
    if _ffi.library() is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    monkeypatch.setattr(cpu_conv, "_pick_once", lambda *a: algorithm)
    rng = np.random.default_rng(zlib.crc32(f"paths{algorithm}{dtype}".encode()))
    for nd, x_shape, w_shape, stride, padding, forced in CYTHON_PATHS:
        fastnn.autotune(True)
        op = {1: fj.conv1d, 2: fj.conv2d}[nd]
        fn = lambda x, w, b, op=op, p=(stride, padding): op(x, w, b, *p)  # noqa: E731
        args = [normal(rng, x_shape, dtype), normal(rng, w_shape, dtype),
                normal(rng, w_shape[:1], dtype)]  # fmt: skip
        with precision(dtype), _conv_plan.chunking(**forced):
            ours = _results("ffi", fn, *args)
            loss = jax.grad(lambda *a, f=fn: jnp.sum(f(*a)), (0, 1))
            text = jax.jit(loss).lower(*args).as_text()
            _assert_same_bits(ours, _results("buffer_callback", fn, *args))
        covered = algorithm != "im2col" or conv_handoff.blas_controls() is not None
        assert ("fastnn_conv_weight_grad" in text) == covered
        assert ("callback" in text) != covered


@pytest.mark.usefixtures("restore_route", "fixed_teams")
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv_routes_agree_bit_for_bit(dtype):
    """fastnn's own choices (some passes on the handler, some on a callback): the same
    bits on every route."""
    rng = np.random.default_rng(9 if dtype == "float32" else 10)
    with precision(dtype):
        for _ in range(2):
            fn, args = _conv_args(rng, _conv_case(rng), dtype)
            results = {
                r: _results(r, fn, *args) for r in ("ffi", "buffer_callback", "pure_callback")
            }
            _assert_same_bits(results["ffi"], results["buffer_callback"])
            _assert_same_bits(results["pure_callback"], results["buffer_callback"])


@pytest.mark.usefixtures("restore_route", "fixed_teams")
def test_im2col_keeps_its_wrapper_beside_a_blas_c_cannot_hold(monkeypatch):
    """Where SciPy's BLAS is not one OpenBLAS (blas_controls None), the im2col passes take
    the callback, to the same bits; the row kernel stays on the handler."""
    if _ffi.library() is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    direct = conv_handoff.c_entries()[0]
    monkeypatch.setattr(conv_handoff, "blas_controls", lambda: None)
    monkeypatch.setattr(conv_handoff, "c_entries", lambda: (direct, 0, 0, 0))
    rng = np.random.default_rng(6)
    fn, args = _conv_args(rng, _conv_case(rng, "dense"), "float32")
    for name, covered in (("im2col", False), ("direct", True)):
        monkeypatch.setattr(cpu_conv, "_pick_once", lambda *a, name=name: name)
        fastnn.autotune(True)
        ours = _results("ffi", fn, *args)
        text = jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a)), (0, 1))).lower(*args).as_text()
        assert ("fastnn_conv_weight_grad" in text) == covered
        assert ("callback" in text) != covered
        _assert_same_bits(ours, _results("buffer_callback", fn, *args))


@pytest.mark.usefixtures("restore_route")
def test_handler_holds_blas_at_one_thread_through_im2col_passes(monkeypatch):
    """An im2col pass on the handler sets SciPy's BLAS to one thread when it runs at more
    (its calls come from inside OpenMP regions, as under limit_blas_threads) and gives the
    count back after: seen here through stand-in thread-count functions."""
    lib = _ffi.library()
    if lib is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    direct, im2col, *_ = conv_handoff.c_entries()
    assert direct, "the row kernel's entry point must be handed over"
    if conv_handoff.blas_controls() is None:  # not OpenBLAS: im2col keeps its wrapper
        assert not im2col
        return
    monkeypatch.setattr(cpu_conv, "_pick_once", lambda *a: "im2col")
    fastnn.autotune(True)
    seen: list[int] = []
    get = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 3)
    set_ = ctypes.CFUNCTYPE(None, ctypes.c_int)(seen.append)
    rng = np.random.default_rng(4)
    x, w = normal(rng, (2, 3, 9, 7), "float32"), normal(rng, (4, 3, 3, 3), "float32")
    fj.set_route("ffi")
    loss = jax.jit(jax.grad(lambda x, w: jnp.sum(fj.conv2d(x, w, None, 1, 1) ** 2), (0, 1)))
    text = loss.lower(x, w).as_text()
    assert "fastnn_conv_weight_grad" in text and "callback" not in text
    as_address = lambda f: ctypes.cast(f, ctypes.c_void_p)  # noqa: E731
    try:
        lib.fnn_jax_conv_set_entries(direct, im2col, as_address(get), as_address(set_))
        jax.block_until_ready(loss(x, w))
    finally:
        lib.fnn_jax_conv_set_entries(
            *(ctypes.c_void_p(a or None) for a in conv_handoff.c_entries())
        )
    # forward and two gradients, each pinned (the two gradients may overlap: one pin)
    assert len(seen) in (4, 6) and seen == [1, 3] * (len(seen) // 2), seen


def test_pool_without_the_ffi_handler_falls_back_to_the_same_bits():
    code = """
import hashlib, jax, jax.numpy as jnp, numpy as np, fastnn.jax as fj
x = jnp.asarray(np.random.default_rng(3).standard_normal((2, 3, 13, 11)).astype(np.float32))
pools = lambda x: fj.max_pool2d(x, 3, 2, 1) + fj.avg_pool2d(x, 3, 2, 1)
f = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(pools(x)))))
text = f.lower(x).as_text()
print("fastnn_max_pool" in text, "buffer_python_cpu_callback" in text)
print(hashlib.sha256(np.asarray(f(x)).tobytes()).hexdigest())
"""
    digests = []
    for flag in ("0", "1"):
        env = {**os.environ, "FASTNN_JAX_FFI": flag, "FASTNN_JAX_ROUTE": "auto"}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=False)  # fmt: skip
        assert out.returncode == 0, out.stderr
        routes, digest = out.stdout.splitlines()
        assert routes == ("False True" if flag == "0" else "True False")
        digests.append(digest)
    assert digests[0] == digests[1]


def _two_branches(x1, w1, x2, w2):
    """Two independent conv - relu - pool chains: XLA may run their callbacks at once."""
    a = fj.max_pool2d(fj.relu(fj.conv2d(x1, w1, None, 1, 1)), 2)
    b = fj.avg_pool2d(fj.relu(fj.conv2d(x2, w2, None, 1, 2)), 2)
    return jnp.sum(a * a) + jnp.sum(jnp.sin(b))


@pytest.mark.usefixtures("restore_route")
def test_fastnn_caches_under_concurrent_callbacks(tmp_path, monkeypatch):
    """First uses of convolution shapes reached at once by two Python threads running one
    jitted step on the buffer_callback route (XLA runs each call's callbacks on a thread
    of its own; the FFI route settles every choice at trace time): every autotune key is
    measured once, and every call gives the bits of a later call made alone."""
    fj.set_route("buffer_callback")
    stored: list[str] = []
    real_store = _autotune.store

    def counting_store(key: str, choice: str) -> None:
        stored.append(key)
        real_store(key, choice)

    monkeypatch.setattr(_autotune, "store", counting_store)
    rng = np.random.default_rng(21)
    shapes = ((4, 5, 23, 21), (7, 5, 3, 3), (3, 4, 19, 26), (6, 4, 5, 5))
    args = [normal(rng, shape, "float32") for shape in shapes]
    step = jax.jit(jax.value_and_grad(_two_branches, (0, 1, 2, 3)))
    fastnn.autotune(False)
    jax.block_until_ready(step(*args))  # compiled: the threads below start together
    fastnn.autotune(True, cache=tmp_path / "autotune.json")  # cold choices and memos
    results: list = [None, None]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        results[i] = jax.tree_util.tree_map(np.asarray, step(*args))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    run_alone = jax.tree_util.tree_map(np.asarray, step(*args))
    assert len(stored) == len(set(stored)) and stored, stored
    for got in results:
        for u, v in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(run_alone)):
            np.testing.assert_array_equal(u, v)


def test_handler_team_size_follows_fastnns_rule():
    """fnn_jax_team: an exact team for a negative count (adaptive teams off), one thread
    for a cap of one, and a cap lowered at most to one thread otherwise."""
    lib = _ffi.library()
    if lib is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    assert [lib.fnn_jax_team(t) for t in (-3, -1, 1)] == [3, 1, 1]
    for cap in (2, 4, 64):
        assert 1 <= lib.fnn_jax_team(cap) <= cap
    with_adaptive = adaptive_teams()
    try:
        adaptive_teams(False)
        assert fj._common.threads_attr() == -fastnn.get_num_threads()
        assert fj._common.team_sizes() == [fastnn.get_num_threads()]
        adaptive_teams(True)
        assert fj._common.threads_attr() == fastnn.get_num_threads()
        assert fj._common.team_sizes()[-1] == fastnn.get_num_threads()
    finally:
        adaptive_teams(with_adaptive)


def test_handler_team_hysteresis_is_pythons():
    """The handler's team follows the same shrink/grow rule as fastnn._threads
    (next_team_free) on random runs of load samples."""
    import ctypes

    from fastnn import _threads

    lib = _ffi.library()
    if lib is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    step = lib.fnn_jax_next_team_free
    step.restype = ctypes.c_int
    step.argtypes = (ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int)
    rng = np.random.default_rng(11)
    for _ in range(300):
        current = int(rng.integers(1, 5))
        recent = [int(v) for v in rng.integers(-1, 6, size=int(rng.integers(0, 8)))]
        recent = recent[-_threads.TEAM_GROW_SAMPLES :]
        got = step(current, (ctypes.c_int * max(len(recent), 1))(*recent), len(recent))
        assert got == _threads.next_team_free(current, recent), (current, recent)


def test_handler_follows_the_cpu_backends_measured_thresholds():
    """The handler library's own copies of the measured thresholds (pooling's parallel
    scale, the GEMM's calibration: flops per thread, short k, tile speed, few-row prefetch,
    column-tile width) and of the elementwise loops' instruction-set level hold this
    process's values, and follow a new setting."""
    import ctypes
    import importlib

    from fastnn._backends.cpu import _gemm, _parallel
    from fastnn.kernels.cpu import gemm as gemm_kernels

    lib = _ffi.library()
    if lib is None:
        pytest.fail(f"the FFI handler must build here: {_ffi.unavailable_reason()}")
    scale = lib.fnn_jax_pool_parallel_scale
    scale.restype = ctypes.c_double
    getters = []
    for name, kind in (
        ("flops_per_thread", ctypes.c_double),
        ("short_k", ctypes.c_ssize_t),
        ("t48_time", ctypes.c_double),
        ("few_prefetch", ctypes.c_ssize_t),
        ("narrow_t_n", ctypes.c_ssize_t),
    ):
        getter = getattr(lib, f"fnn_jax_gemm_{name}")
        getter.restype = kind
        getters.append(getter)

    def held():
        return tuple(getter() for getter in getters)

    assert scale() == _parallel.scale()
    assert held() == _gemm.calibration()
    level = lib.fnn_jax_elementwise_level
    level.restype = ctypes.c_int
    assert level() == _isa.level_code("elementwise")
    with _isa.forced("elementwise", "base"):
        assert level() == 0
    assert level() == _isa.level_code("elementwise")
    before = _parallel.scale()
    try:
        _parallel.set_scale(before * 2)
        assert scale() == before * 2
    finally:
        _parallel.set_scale(before)
    assert scale() == before
    saved = _gemm.calibration()
    try:
        _gemm.calibrate(force=True)
        assert held() == _gemm.calibration()
    finally:
        gemm_kernels.set_flops_per_thread(saved[0])
        gemm_kernels.set_short_k(saved[1])
        for module in _gemm.TILE_MODULES:
            tuned = importlib.import_module(f"fastnn.kernels.cpu.{module}")
            tuned.set_t48_time(saved[2])
            tuned.set_few_prefetch(saved[3])
            tuned.set_narrow_t_n(saved[4])
        for hook in _gemm.CALIBRATION_HOOKS:
            hook(*saved)
    assert held() == saved
