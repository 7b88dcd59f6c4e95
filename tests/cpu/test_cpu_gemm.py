"""The CPU GEMM (kernels/cpu/gemm.pyx): fastnn's blocked kernel in every instruction-set
variant and SciPy's BLAS engine, against the float64 reference backend and PyTorch, on
odd sizes that cross every cache block, all transposes, alpha/beta, broadcast c, every
memory layout, empty operands, and the fused epilogues.  Every test runs twice: with the
unpacked short-reduction path off, and with it taking every product (its measured cutoff
depends on the CPU)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn.kernels.cpu import gemm as k
from tests.utils import (
    assert_close,
    assert_fresh_outputs,
    import_torch,
    layouts,
    requires_torch,
)

#: Variants runnable anywhere: "auto" is the best this CPU has; "generic" the portable
#: build; "wide-generic" the AVX-512 tile shape compiled for the baseline; "avx512-t32"
#: and "avx512-t48" the two AVX-512 register tiles, forced (the best this CPU has where it
#: lacks AVX-512).
VARIANTS = ["auto", "generic", "wide-generic", "avx512-t32", "avx512-t48"]
#: (m, n, k): tiny, odd, wider than a tile, deeper than a K block (256), taller than an
#: M block (144 / 72 rows), one wider than an N block (4080 columns), thin products
#: (one row or one column of result: the matrix-vector path), and narrow ones (a few
#: columns and a long reduction: the dot products, or with a transposed A the column
#: tiles, with rows left over after the vectors).
SHAPES = [
    (1, 1, 1),
    (5, 3, 7),
    (7, 33, 300),
    (150, 17, 9),
    (13, 40, 513),
    (2, 4100, 3),
    (300, 45, 270),
    (1, 37, 300),
    (70, 1, 513),
    (1, 1, 600),
    (150, 7, 300),
    (61, 13, 400),
    (37, 2, 129),
    (50, 21, 70),
]


@pytest.fixture(autouse=True, params=["packed", "unpacked"])
def short_path(request):
    """The blocked kernel's path for the test: packed tiles always, or the unpacked
    short-reduction path for every product."""
    from fastnn._backends.cpu import _gemm as engines

    fastnn.gemm(np.ones((2, 2)), np.ones((2, 2)))  # let the first product calibrate
    before = k.short_k()
    k.set_short_k(-1 if request.param == "packed" else 1 << 30)
    engines._calibrated = True
    yield request.param
    k.set_short_k(before)


def _operands(rng, m, n, kk, trans_a, trans_b, dtype):
    a = rng.standard_normal((kk, m) if trans_a else (m, kk)).astype(dtype)
    b = rng.standard_normal((n, kk) if trans_b else (kk, n)).astype(dtype)
    return a, b


def _want(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None):
    op_a = a.T.astype(np.float64) if trans_a else a.astype(np.float64)
    op_b = b.T.astype(np.float64) if trans_b else b.astype(np.float64)
    out = alpha * (op_a @ op_b)
    if c is not None and beta != 0:
        out = out + beta * c.astype(np.float64)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_blocked_matches_reference_every_transpose(shape, variant, dtype, rng):
    m, n, kk = shape
    for trans_a, trans_b in itertools.product((False, True), repeat=2):
        a, b = _operands(rng, m, n, kk, trans_a, trans_b, dtype)
        got = k.blocked(
            a, b, None, 1.0, 0.0, trans_a, trans_b, 0, None, None, 2, k.VARIANTS[variant]
        )
        assert got.dtype == dtype and got.shape == (m, n) and got.flags.c_contiguous
        assert_close(got, _want(a, b, trans_a, trans_b), dtype, what=f"{trans_a}{trans_b}")


@pytest.mark.parametrize("shape", SHAPES[:5], ids=lambda s: "x".join(map(str, s)))
def test_blas_engine_matches_reference_every_transpose(shape, dtype, rng):
    m, n, kk = shape
    for trans_a, trans_b in itertools.product((False, True), repeat=2):
        a, b = _operands(rng, m, n, kk, trans_a, trans_b, dtype)
        got = k.blas(a, b, None, 1.0, 0.0, trans_a, trans_b)
        assert got.dtype == dtype and got.shape == (m, n) and got.flags.c_contiguous
        assert_close(got, _want(a, b, trans_a, trans_b), dtype)


#: c shapes broadcast to an (m, n) result.
C_SHAPES = [
    lambda m, n: (m, n),
    lambda m, n: (n,),
    lambda m, n: (1, n),
    lambda m, n: (m, 1),
    lambda m, n: (1, 1),
    lambda m, n: (),
]


@pytest.mark.parametrize("engine", ["blocked", "blas", "public"])
def test_alpha_beta_and_broadcast_c(engine, dtype, rng):
    for c_shape, (alpha, beta) in itertools.product(
        C_SHAPES, [(1.0, 1.0), (-0.5, 0.75), (2.0, 0.0)]
    ):
        m, n, kk = (int(v) for v in rng.integers(1, 40, 3))
        trans_a, trans_b = (bool(v) for v in rng.integers(0, 2, 2))
        a, b = _operands(rng, m, n, kk, trans_a, trans_b, dtype)
        c = rng.standard_normal(c_shape(m, n)).astype(dtype)
        if engine == "blocked":
            got = k.blocked(a, b, c, alpha, beta, trans_a, trans_b, 0, None, None, 2)
        elif engine == "blas":
            got = k.blas(a, b, c, alpha, beta, trans_a, trans_b)
        else:
            got = fastnn.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b)
        want = fastnn.gemm(
            a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, backend="reference"
        )
        assert_close(got, want, dtype, what=f"c{c.shape} alpha={alpha} beta={beta}")


@pytest.mark.parametrize("engine", ["blocked", "blas"])
@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_beta_zero_ignores_c(engine, poison, rng):
    a, b = rng.standard_normal((9, 5)), rng.standard_normal((5, 20))
    c = np.full((9, 20), poison)
    run = k.blocked if engine == "blocked" else k.blas
    assert_close(run(a, b, c, 1.5, 0.0), 1.5 * (a @ b))


@pytest.mark.parametrize("engine", ["blocked", "blas", "public"])
def test_alpha_zero_ignores_a_and_b(engine, rng):
    a = np.full((4, 3), np.nan)
    b = np.full((3, 5), np.inf)
    c = rng.standard_normal((4, 5))
    if engine == "public":
        got = fastnn.gemm(a, b, c, alpha=0.0, beta=0.5)
    else:
        got = (k.blocked if engine == "blocked" else k.blas)(a, b, c, 0.0, 0.5)
    assert_close(got, 0.5 * c)


@pytest.mark.parametrize("engine", ["blocked", "blas", "public"])
def test_empty_operands(engine, dtype, rng):
    for m, n, kk in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0)]:
        a, b = _operands(rng, m, n, kk, False, False, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        for beta in (0.0, 0.5):
            if engine == "blocked":
                got = k.blocked(a, b, c, 2.0, beta)
            elif engine == "blas":
                got = k.blas(a, b, c, 2.0, beta)
            else:
                got = fastnn.gemm(a, b, c, alpha=2.0, beta=beta)
            assert got.shape == (m, n) and got.dtype == dtype
            assert_close(got, _want(a, b, False, False, 2.0, beta, c), dtype)


@pytest.mark.parametrize("engine", ["blocked", "blas", "public"])
def test_every_memory_layout(engine, dtype, rng):
    """Fortran order, strided views and negative strides give the contiguous result; the
    inputs are left untouched and the output is a fresh C-contiguous array."""
    m, n, kk = 11, 19, 37
    for trans_a, trans_b in itertools.product((False, True), repeat=2):
        a0, b0 = _operands(rng, m, n, kk, trans_a, trans_b, dtype)
        c0 = rng.standard_normal((m, n)).astype(dtype)
        want = _want(a0, b0, trans_a, trans_b, 0.5, 2.0, c0)
        la_s, lb_s, lc_s = list(layouts(a0)), list(layouts(b0)), list(layouts(c0))
        for i in range(len(la_s)):  # every layout of each operand, in mixed pairs
            (la, a), (lb, b), (_, c) = la_s[i], lb_s[(i + 1) % 4], lc_s[(i + 2) % 4]
            before = [a.copy(), b.copy(), c.copy()]
            if engine == "blocked":
                got = k.blocked(a, b, c, 0.5, 2.0, trans_a, trans_b)
            elif engine == "blas":
                got = k.blas(a, b, c, 0.5, 2.0, trans_a, trans_b)
            else:
                got = fastnn.gemm(a, b, c, alpha=0.5, beta=2.0, trans_a=trans_a, trans_b=trans_b)
            assert_close(got, want, dtype, what=f"a {la}, b {lb}")
            assert_fresh_outputs(got, [a, b, c])
            for x, x0 in zip([a, b, c], before):
                np.testing.assert_array_equal(x, x0)


def _check_layouts_and_epilogues(shape, threads, variant, dtype, rng):
    """Every transpose and memory layout of a and b (layouts paired off by one), with
    beta * c, the fused bias + tanh and the fused relu' derivative."""
    m, n, kk = shape
    code = k.VARIANTS[variant]
    for trans_a, trans_b in itertools.product((False, True), repeat=2):
        a0, b0 = _operands(rng, m, n, kk, trans_a, trans_b, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        bias = rng.standard_normal(n).astype(dtype)
        u = rng.standard_normal((m, n)).astype(dtype)
        la_s, lb_s = list(layouts(a0)), list(layouts(b0))
        for i in range(len(la_s)):
            (la, a), (lb, b) = la_s[i], lb_s[(i + 1) % len(lb_s)]
            what = f"{trans_a}{trans_b} a {la}, b {lb}"
            got = k.blocked(a, b, c, 0.5, 2.0, trans_a, trans_b, 0, None, None, threads, code)
            assert_close(got, _want(a0, b0, trans_a, trans_b, 0.5, 2.0, c), dtype, what=what)
            got = k.blocked(a, b, None, 1.0, 0.0, trans_a, trans_b, 3, bias, None, threads, code)
            pre = _want(a0, b0, trans_a, trans_b) + bias
            assert_close(got, np.tanh(pre), dtype, what=what + " tanh(. + bias)")
            got = k.blocked(a, b, None, 1.0, 0.0, trans_a, trans_b, 1, None, u, threads, code)
            want = _want(a0, b0, trans_a, trans_b) * (u > 0)
            assert_close(got, want, dtype, what=what + " * relu'(u)")


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 70, 41), (45, 1, 67), (1, 2100, 9), (1, 1, 33)])
def test_thin_products_every_layout_and_epilogue(shape, threads, dtype, rng):
    """One row or one column of result (dot products along contiguous lines, sums of
    scaled lines, or plain loops, by the operands' strides) in every transpose and memory
    layout, split over threads, with beta * c and the fused epilogues."""
    _check_layouts_and_epilogues(shape, threads, "auto", dtype, rng)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("shape", [(1, 70, 41), (1, 1000, 300), (1, 2, 64), (1, 33, 517)])
def test_one_row_products_split_over_the_reduction(shape, threads, dtype, rng):
    """A one-row product on several threads sums stretches of the reduction into rows of
    its own, then adds them up (a flops-per-thread of 1 makes every product here take
    the split): every transpose and memory layout, with beta * c and the fused epilogues
    applied once, after the sum."""
    before = k.flops_per_thread()
    k.set_flops_per_thread(1.0)
    try:
        _check_layouts_and_epilogues(shape, threads, "auto", dtype, rng)
    finally:
        k.set_flops_per_thread(before)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape", [(7, 70, 41), (12, 96, 600), (16, 33, 257), (3, 200, 5), (11, 1030, 300)]
)
def test_few_row_products_every_layout_and_epilogue(shape, threads, variant, dtype, rng):
    """One or two tiles of rows over row-major B (B read in place, unpacked: chunks of
    the reduction kept in the tile sums between row tiles, columns past the last whole
    strip on the packed path; rows of B a page or more apart too) in every transpose and
    memory layout, with beta * c and the fused epilogues."""
    _check_layouts_and_epilogues(shape, threads, variant, dtype, rng)


def _check_under_setting(name, value, shapes, bad, threads, dtype, rng):
    """Every layout and epilogue of ``shapes`` with the kernel setting ``name`` (k.set_<name>,
    read back by k.<name>) at ``value``, restored afterwards; the setter rejects each value
    in ``bad``."""
    setter, before = getattr(k, f"set_{name}"), getattr(k, name)()
    try:
        setter(value)
        for shape in shapes:
            _check_layouts_and_epilogues(shape, threads, "auto", dtype, rng)
    finally:
        setter(before)
    for value in bad:
        with pytest.raises(ValueError, match=f"set_{name}"):
            setter(value)


@pytest.mark.parametrize("threads", [1, 2])
def test_few_row_products_past_the_cache(threads, dtype, rng):
    """A few-row product whose B outgrows the last-level cache packs B instead of reading
    it in place: the same results (a tiny cache size forces it here); the setter rejects
    sizes that are not positive."""
    shapes = [(7, 70, 41), (8, 200, 300)]
    _check_under_setting("llc_bytes", 64.0, shapes, (0.0, -1.0, float("nan")), threads, dtype, rng)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block", [1.0, 3 * 48 * 300 * 8 + 5.0])
def test_row_blocks_over_blocks_of_b_panels(block, threads, dtype, rng):
    """Products of several row blocks run each A micro-panel past blocks of B panels
    (set_b_block_bytes): one panel per block, or a few with a partial last block, give
    the same results in every layout and epilogue; the setter rejects sizes that are not
    positive."""
    shapes = [(150, 100, 270), (301, 257, 40), (290, 1000, 7)]
    bad = (0.0, -1.0, float("nan"))
    _check_under_setting("b_block_bytes", block, shapes, bad, threads, dtype, rng)


@pytest.mark.parametrize("ahead", [0, 1, 8, 64])
def test_few_row_products_at_every_prefetch_distance(ahead, threads, dtype, rng):
    """The few-row path's prefetch distance (rows of B ahead; past B's last row too)
    changes no result; the setter rejects distances outside [0, 64]."""
    shapes = [(7, 70, 41), (13, 100, 90), (1, 64, 300)]
    _check_under_setting("few_prefetch", ahead, shapes, (-1, 65), threads, dtype, rng)


@pytest.mark.parametrize("width", [0, 8, 1 << 20])
def test_transposed_products_at_every_column_tile_width(width, threads, dtype, rng):
    """The widest transposed-A product on column tiles (set_narrow_t_n: none, one tile
    of 8 columns, every width) changes no result: products 3-70 columns wide, part
    vectors of rows at the end, in every layout and epilogue; the setter rejects a
    negative width."""
    shapes = [(150, 7, 300), (61, 13, 40), (37, 31, 29), (50, 70, 21)]
    _check_under_setting("narrow_t_n", width, shapes, (-1,), threads, dtype, rng)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "shape", [(9, 7, 300), (70, 3, 200), (5, 2, 64), (4, 13, 1000), (6, 11, 517)]
)
def test_narrow_products_every_layout_and_epilogue(shape, threads, variant, dtype, rng):
    """A few columns of result over a long reduction (dot products of A's rows with the
    columns of op(B), read in place or copied by their strides; tiles of 4 x 4 sums, the
    last rows one at a time, the last columns 1-3 wide, a scalar tail of k) in every
    transpose and memory layout, with beta * c and the fused epilogues."""
    _check_layouts_and_epilogues(shape, threads, variant, dtype, rng)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(11, 70, 1), (6, 37, 5), (3, 300, 2), (9, 16, 8)])
def test_short_products_every_layout_and_epilogue(short_path, shape, threads, dtype, rng):
    """Short reductions on the path the fixture picks (unpacked: tiles of 4 rows x 4
    vectors, single vectors, a last vector that overlaps the one before or single columns,
    the last rows one at a time) in every transpose and memory layout, with beta * c and
    the fused epilogues."""
    _check_layouts_and_epilogues(shape, threads, "auto", dtype, rng)


@pytest.mark.parametrize("engine", ["blocked", "blas"])
def test_zero_stride_and_misaligned_operands(engine, rng):
    """Broadcast (stride-0) operands and data at an odd byte offset are handled (the
    latter by a copy) without reading out of bounds."""
    run = k.blocked if engine == "blocked" else k.blas
    row = rng.standard_normal(6).astype(np.float32)
    a = np.broadcast_to(row, (5, 6))
    b = rng.standard_normal((6, 4)).astype(np.float32)
    assert_close(run(a, b), _want(np.asarray(a), b, False, False))
    raw = np.zeros(6 * 4 * 4 + 1, dtype=np.uint8)
    odd = np.frombuffer(raw.data, dtype=np.float32, count=24, offset=1).reshape(6, 4)
    assert not odd.flags.aligned
    assert_close(run(a, odd), _want(np.asarray(a), odd, False, False))


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_bias_activation_epilogue(variant, dtype, rng):
    """act(op(a) @ op(b) + bias) for each activation, across several K slices, one row
    block (B panels packed just in time) and several."""
    for m, n, kk in [(23, 37, 300), (151, 37, 270)]:
        _check_bias_activation(variant, dtype, rng, m, n, kk)


def _check_bias_activation(variant, dtype, rng, m, n, kk):
    a, b = _operands(rng, m, n, kk, False, True, dtype)
    bias = rng.standard_normal(n).astype(dtype)
    for name, code in [(None, 0), ("relu", 1), ("sigmoid", 2), ("tanh", 3)]:
        got = k.blocked(a, b, None, 0.1, 0.0, False, True, code, bias, None, 2, k.VARIANTS[variant])
        pre = 0.1 * _want(a, b, False, True) + bias
        want = fastnn.linear(pre, np.eye(n), activation=name, backend="reference")
        assert_close(got, want, dtype, what=str(name))


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_derivative_epilogue(variant, dtype, rng):
    """(op(a) @ op(b)) * f'(u), f' at the pre-activation u, for each activation."""
    for m, n, kk in [(31, 21, 260), (160, 40, 30)]:
        _check_derivative(variant, dtype, rng, m, n, kk)


def _check_derivative(variant, dtype, rng, m, n, kk):
    a, b = _operands(rng, m, n, kk, False, False, dtype)
    u = (3 * rng.standard_normal((m, n))).astype(dtype)
    u[0, :3] = [0.0, -50.0, 50.0]
    for name, code in [("relu", 1), ("sigmoid", 2), ("tanh", 3)]:
        got = k.blocked(a, b, None, 1.0, 0.0, False, False, code, None, u, 2, k.VARIANTS[variant])
        want = fastnn.sensitivity(a, b, u, name, backend="reference")
        assert_close(got, want, dtype, what=name)


def test_epilogue_alone_matches_blocked(rng):
    """The epilogue pass used after a BLAS call gives what the fused kernel gives."""
    a, b = rng.standard_normal((40, 30)), rng.standard_normal((30, 50))
    bias, u = rng.standard_normal(50), rng.standard_normal((40, 50))
    for code in range(4):
        fused = k.blocked(a, b, None, 1.0, 0.0, False, False, code, bias)
        separate = k.epilogue(k.blas(a, b), code, bias)
        assert_close(separate, fused)
        fused = k.blocked(a, b, None, 1.0, 0.0, False, False, code, None, u)
        separate = k.epilogue(k.blas(a, b), code, None, u)
        assert_close(separate, fused)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_epilogue_bias_over_narrow_rows(dtype, threads, rng):
    """The bias (and activation) of the epilogue on rows of every width around the vector
    sizes, as one run against the bias row repeated (narrow rows) or row by row: row
    counts that end inside a repetition, and too few rows for one, against NumPy."""
    for n in (1, 3, 7, 8, 10, 15, 16, 17, 33, 63, 64, 65, 100):
        for m in (1, 2, 5, 16, 37, 129, 1000):
            out = rng.standard_normal((m, n)).astype(dtype)
            bias = rng.standard_normal(n).astype(dtype)
            for code, f in ((0, lambda v: v), (1, lambda v: np.maximum(v, 0))):
                got = k.epilogue(out.copy(), code, bias, None, threads)
                np.testing.assert_allclose(got, f(out + bias), rtol=1e-6, err_msg=f"{m}x{n}")


def test_variant_names():
    assert k.variant_name(k.VARIANTS["generic"]) == "generic"
    assert k.variant_name(k.VARIANTS["wide-generic"]) == "wide-generic"
    assert k.variant_name() in ("generic", "avx2", "avx512")


def test_kernel_entry_points_reject_bad_arrays(rng):
    a = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match="inner dimensions"):
        k.blocked(a, a)
    with pytest.raises(ValueError, match="inner dimensions"):
        k.blas(a, a)
    with pytest.raises(TypeError):
        k.blocked(a.astype(np.int64), a.T.astype(np.int64))
    with pytest.raises(ValueError, match="bias"):
        k.blocked(a, a.T, bias=np.ones(5))
    with pytest.raises(ValueError, match="out must be"):
        k.epilogue(np.ones((3, 4))[:, ::2], 1)


@requires_torch
def test_public_gemm_matches_torch_addmm(dtype, rng):
    torch = import_torch()
    for m, n, kk in [(1, 1, 1), (17, 9, 33), (64, 70, 129), (130, 5, 300)]:
        for trans_a, trans_b in itertools.product((False, True), repeat=2):
            a, b = _operands(rng, m, n, kk, trans_a, trans_b, np.float64)
            c = rng.standard_normal((n,))
            op_a = torch.tensor(a.T if trans_a else a)
            op_b = torch.tensor(b.T if trans_b else b)
            want = torch.addmm(torch.tensor(c), op_a, op_b, beta=0.5, alpha=1.5).numpy()
            got = fastnn.gemm(
                a.astype(dtype),
                b.astype(dtype),
                c.astype(dtype),
                alpha=1.5,
                beta=0.5,
                trans_a=trans_a,
                trans_b=trans_b,
            )
            assert_close(got, want, dtype)
