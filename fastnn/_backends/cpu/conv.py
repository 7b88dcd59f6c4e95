"""The CPU convolution ops: conv1d, conv2d and their backward, registered on "cpu".

Each call normalises its arrays once (4-D views, contiguous weight), picks the algorithm
of each pass and hands off to the host wrapper of that algorithm (_conv_im2col,
_conv_direct, _conv_blocked, _conv_depthwise, _conv_winograd).  ``algo="direct"`` means the
direct kernel that suits the pass: the depthwise kernels on depthwise layers, the
channel-blocked kernel where the pass produces enough channels to fill its SIMD lanes,
the row kernel (_conv_direct) otherwise.  ``algo="auto"`` ranks the algorithms with the prior of
_conv_choice and, with autotuning on, measures the first few on first use of a shape
(fastnn._selection); the forward pass, the input gradient and the weight gradient are
chosen each on its own.  "winograd" (F(m x m, 3 x 3), tile chosen by the prior) and
"winograd2/4/6" run all three passes.  A 1-D convolution runs as a 2-D one with H = 1;
inputs of any strides are read in place, never copied.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from fastnn import _autotune, _isa
from fastnn._backends.cpu import (
    _conv_blocked,
    _conv_depthwise,
    _conv_direct,
    _conv_im2col,
    _conv_winograd,
    conv_lean,
)
from fastnn._backends.cpu._conv_choice import blocked_fills_lanes, ranked
from fastnn._backends.cpu._conv_plan import direct_fits, fits_blas
from fastnn._dispatch import register, register_lean
from fastnn._geometry import ConvGeometry
from fastnn._selection import choose_conv, tuning_batch
from fastnn._threads import get_num_threads, team_size
from fastnn.kernels.cpu import conv_bias as _bias

_GEMM_OR_DIRECT = {"im2col": _conv_im2col, "direct": _conv_direct}

#: The fused activations' codes in the kernels (kernels/cpu/conv_epilogue.h).
ACT_CODES = {None: 0, "relu": 1, "relu6": 4}


def _depthwise_variant(name: str, geom: ConvGeometry) -> bool | None:
    """None unless ``name`` runs the depthwise kernels on this layer; else whether it is
    their channels-in-lanes variant.  On depthwise layers "direct" is the depthwise
    kernel (the variant the prior prefers when given explicitly); on single-channel
    layers :data:`_conv_depthwise.PLANES` is its plane-by-plane variant."""
    if name == _conv_depthwise.LANES:
        return True
    if name == _conv_depthwise.PLANES:
        return False
    if name == "direct" and _conv_depthwise.is_depthwise(geom):
        return False
    return None


def _as_4d(a: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """A 2-D view of a 1-D problem's array: (N, C, L) -> (N, C, 1, L), strides kept."""
    return a[:, :, None, :] if geom.nd == 1 else a


def _flat_weight(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w).reshape(-1)


def _tile(name: str) -> int:
    return int(name[len("winograd") :])


def _candidates(geom: ConvGeometry, shape: tuple[int, ...], which: str) -> list[str]:
    """The prior's ranking for "auto", without the algorithms that cannot run this
    problem well: im2col when BLAS's 32-bit sizes overflow, direct and the channel-
    blocked kernel when their packed buffers would be huge (very long rows)."""
    order = ranked(geom, which)
    if not fits_blas(shape):
        order = [a for a in order if a not in ("im2col", _conv_im2col.BLOCKED_GEMM)]
    elif not direct_fits(shape):
        order = [a for a in order if a != "direct"]
    if not _conv_blocked.fits(shape) and len(order) > 1:
        order = [a for a in order if a != _conv_blocked.NAME]
    return order


def _explicit(algo: str, shape: tuple[int, ...], op: str, hw: tuple[int, int]) -> str:
    """An explicit algorithm as run: "winograd" gets its tile size; im2col is refused
    when BLAS's 32-bit sizes overflow."""
    if algo == "winograd":
        return f"winograd{_conv_winograd.default_tile(*hw)}"
    if algo == "im2col" and not fits_blas(shape):
        raise ValueError(
            f"{op}: algo='im2col' cannot run this problem (a plane or reduction of more "
            "than 2**31 - 1 elements overflows BLAS's 32-bit sizes); use algo='direct'"
        )
    return algo


#: (algo, op, pass, geometry, dtype, threads, autotune generation) -> the algorithm run:
#: the choice for a layer never changes within a setting, and making it costs ~30 us of
#: Python (the prior, the cache key, the lookup), which small layers notice.
_PICKS: dict[tuple, str] = {}


def _pick(
    algo: str,
    op: str,
    which: str,
    geom: ConvGeometry,
    dtype,
    threads: int,
    run: Callable[[str], object],
) -> str:
    memo = _memo_key(algo, op, which, geom, dtype, threads)
    name = _PICKS.get(memo)
    if name is None or _autotune.is_recording():
        name = _pick_once(algo, op, which, geom, dtype, threads, run)
        if len(_PICKS) > 4096:
            _PICKS.clear()
        _PICKS[memo] = name
    return name


def _memo_key(algo: str, op: str, which: str, geom: ConvGeometry, dtype, threads: int) -> tuple:
    return (algo, op, which, geom, np.dtype(dtype), threads, _autotune.generation())


def chosen(algo: str, op: str, which: str, geom: ConvGeometry, dtype, threads: int) -> str | None:
    """The algorithm pass ``which`` of this layer was last chosen to run (None: not chosen
    yet under the current autotune settings), for callers that run the kernels themselves
    (conv_handoff)."""
    return _PICKS.get(_memo_key(algo, op, which, geom, dtype, threads))


def _pick_once(
    algo: str,
    op: str,
    which: str,
    geom: ConvGeometry,
    dtype,
    threads: int,
    run: Callable[[str], object],
) -> str:
    shape = tuple(geom.plane)
    p = geom.plane
    hw = (p.ho, p.wo) if which == "forward" else (p.h, p.w)
    if algo == "auto":
        candidates = _candidates(geom, shape, which)
        if _conv_blocked.NAME in candidates:
            _isa.level("conv_blocked")  # measured once per CPU, not inside a timing
            _isa.level("conv_blocked_narrow")
        if _conv_im2col.BLOCKED_GEMM in candidates:
            _isa.level("gemm")
        if _conv_depthwise.LANES in candidates:
            _isa.level("depthwise_lanes")
        if _conv_depthwise.PLANES in candidates or _conv_depthwise.is_depthwise(geom):
            _isa.level("depthwise")
        name = choose_conv("cpu", op, which, geom, dtype, threads, candidates, run)
    else:
        name = _explicit(algo, shape, op, hw)
        if name == "direct" and _conv_depthwise.is_depthwise(geom):
            name = ranked(geom, which)[0]  # the prior's depthwise variant
        elif name == "direct" and blocked_fills_lanes(geom, which):
            if _conv_blocked.fits(shape):  # else the row kernel, whose rows are bounded
                name = _conv_blocked.NAME
    if name == "direct" and not _conv_depthwise.is_depthwise(geom):
        _isa.level("conv_direct")  # the direct kernels' level, measured on first use
    return name


def _batch_slice(geom: ConvGeometry) -> slice:
    """The images the autotuner times a pass on."""
    per_image = 2 * geom.out_channels * geom.in_channels // geom.groups
    per_image *= math.prod(geom.kernel) * math.prod(geom.out_size)
    return slice(0, tuning_batch(geom.batch, per_image))


@register("conv1d", "cpu")
@register("conv2d", "cpu")
def conv_forward(
    x, w, b, geom: ConvGeometry, algo: str, activation: str | None = None, name: str | None = None
):
    """y = activation(conv(x, w) + b) with the chosen algorithm, the activation applied
    by each kernel as it writes its output.  Autotuning measures the candidates with the
    activation; their keys do not include it, so one choice serves the layer either way
    (the epilogue costs the same in every algorithm).  ``name``: the algorithm to run,
    remembered by the lean path (conv_lean) from an earlier call; None: choose (and
    remember) it."""
    if geom.batch == 0:
        return np.empty(geom.output_shape, dtype=x.dtype)
    shape, threads, cap = tuple(geom.plane), team_size(), get_num_threads()
    x4, wf = _as_4d(x, geom), _flat_weight(w)
    bias = None if b is None else np.ascontiguousarray(b)
    act = ACT_CODES[activation]

    def run(name: str, x4=x4, shape=shape) -> np.ndarray:
        if name.startswith("winograd"):
            return _conv_winograd.forward(x4, wf, bias, shape, threads, _tile(name), act)
        if name == _conv_blocked.NAME:
            return _conv_blocked.forward(x4, wf, bias, shape, threads, act)
        lanes = _depthwise_variant(name, geom)
        if lanes is not None:
            return _conv_depthwise.forward(x4, wf, bias, shape, threads, lanes, act)
        if name == _conv_im2col.BLOCKED_GEMM:
            gemm = _conv_im2col.engine(name)
            return _conv_im2col.forward(x4, wf, bias, shape, threads, act, gemm)
        return _GEMM_OR_DIRECT[name].forward(x4, wf, bias, shape, threads, act)

    if name is None:

        def tune(name: str) -> np.ndarray:
            part = _batch_slice(geom)
            return run(name, x4[part], (part.stop, *shape[1:]))

        name = _pick(algo, f"conv{geom.nd}d", "forward", geom, x.dtype, cap, tune)
        conv_lean.remember(conv_lean.forward_key(geom, x, w, b, algo, activation), name)
    return run(name).reshape(geom.output_shape)


@register("conv1d_backward", "cpu")
@register("conv2d_backward", "cpu")
def conv_backward(gy, x, w, geom: ConvGeometry, algo: str, mask, names: tuple | None = None):
    """(grad_input, grad_weight, grad_bias), None where ``mask`` is False.  ``names``:
    the algorithms of the input and weight gradients, remembered by the lean path
    (conv_lean) from an earlier call; None: choose (and remember) them."""
    want_x, want_w, want_b = mask
    dtype = x.dtype
    if geom.batch == 0:
        return (
            np.empty(geom.input_shape, dtype=dtype) if want_x else None,
            np.zeros(geom.weight_shape, dtype=dtype) if want_w else None,
            np.zeros(geom.out_channels, dtype=dtype) if want_b else None,
        )
    shape, threads, cap = tuple(geom.plane), team_size(), get_num_threads()
    x4, wf, gy4 = _as_4d(x, geom), _flat_weight(w), _as_4d(gy, geom)
    flat: dict[tuple[str, int], np.ndarray] = {}  # gy made flat and contiguous, per kind

    def flat_gy(name: str, n: int) -> np.ndarray:
        kind = "direct" if name == "direct" else "im2col"
        if (kind, n) not in flat:
            src = gy[:n]
            if kind == "direct":  # its micro-kernels read a vector past the end: add slack
                flat[(kind, n)] = _conv_direct.with_slack(src)
            else:
                other = flat.get(("direct", n))
                flat[(kind, n)] = (
                    other if other is not None else np.ascontiguousarray(src).reshape(-1)
                )
        return flat[(kind, n)]

    def input_grad(name: str, n: int, shp) -> np.ndarray:
        if name.startswith("winograd"):
            return _conv_winograd.grad_input(gy4[:n], wf, shp, threads, _tile(name))
        if name == _conv_blocked.NAME:
            return _conv_blocked.grad_input(gy4[:n], wf, shp, threads)
        lanes = _depthwise_variant(name, geom)
        if lanes is not None:
            return _conv_depthwise.grad_input(flat_gy("im2col", n), wf, shp, threads, lanes)
        if name == _conv_im2col.BLOCKED_GEMM:
            gemm = _conv_im2col.engine(name)
            return _conv_im2col.grad_input(flat_gy(name, n), wf, shp, threads, gemm)
        return _GEMM_OR_DIRECT[name].grad_input(flat_gy(name, n), wf, shp, threads)

    def weight_grad(name: str, n: int, shp) -> np.ndarray:
        if name.startswith("winograd"):
            gy_n = flat_gy("im2col", n)[: n * geom.out_channels * shp[8] * shp[9]]
            return _conv_winograd.grad_weight(x4[:n], gy_n, shp, threads, _tile(name))
        if name == _conv_blocked.NAME:
            return _conv_blocked.grad_weight(x4[:n], gy4[:n], shp, threads)
        lanes = _depthwise_variant(name, geom)
        if lanes is not None:
            gy_n = flat_gy("im2col", n)
            return _conv_depthwise.grad_weight(x4[:n], gy_n, shp, threads, lanes)
        if name == _conv_im2col.BLOCKED_GEMM:
            gemm = _conv_im2col.engine(name)
            return _conv_im2col.grad_weight(x4[:n], flat_gy(name, n), shp, threads, gemm)
        return _GEMM_OR_DIRECT[name].grad_weight(x4[:n], flat_gy(name, n), shp, threads)

    def weight_and_bias(name: str | None, n: int, shp) -> tuple:
        """(grad_weight, grad_bias) over the first ``n`` images, None where not asked
        for: the plane-by-plane depthwise kernel sums the bias's gradient in its weight
        pass; the others run a pass over grad_output of its own (timed with them)."""
        if want_w and want_b and _depthwise_variant(name, geom) is False:
            gw, gb = _conv_depthwise.grad_weight_and_bias(x4[:n], flat_gy("im2col", n), shp,
                                                          threads)  # fmt: skip
            return gw, gb.astype(dtype)
        gw = weight_grad(name, n, shp) if want_w else None
        gb = None
        if want_b:
            gb = np.empty(geom.out_channels, dtype=dtype)
            plane = math.prod(geom.out_size)
            full = [v for (_, size), v in flat.items() if size == n]
            gy_flat = full[0] if full else flat_gy("im2col", n)
            _bias.backward_bias(gy_flat, gb, n, geom.out_channels, plane, threads)
        return gw, gb

    n = geom.batch
    if names is None:
        # Each candidate is timed paying for the copy of grad_output it needs, as a call
        # does: one kept from an earlier candidate made the copying kernels look up to
        # twice as fast as they run (the direct kernels' copy with slack of a 32 x 64 x
        # 1000 gradient costs as much as their weight pass).
        def fresh(pass_: Callable) -> Callable:
            def timed(name: str, n: int, shp) -> object:
                flat.clear()
                return pass_(name, n, shp)

            return timed

        names = _pick_backward(
            geom, algo, mask, dtype, cap, fresh(input_grad), fresh(weight_and_bias)
        )
        conv_lean.remember(conv_lean.backward_key(geom, gy, x, w, algo, mask), names)
    gx = input_grad(names[0], n, shape) if want_x else None
    gw, gb = weight_and_bias(names[1], n, shape)
    return (
        None if gx is None else gx.reshape(geom.input_shape),
        None if gw is None else gw.astype(dtype, copy=False).reshape(geom.weight_shape),
        gb,
    )


def _pick_backward(geom, algo, mask, dtype, cap, input_grad, weight_and_bias) -> tuple:
    """(input gradient's algorithm, weight gradient's), None where ``mask`` does not ask
    for that gradient; candidates are timed on the first images (:func:`_batch_slice`),
    the weight gradient's with the bias's when ``mask`` asks for it (one kernel sums it
    in the same pass)."""
    op = f"conv{geom.nd}d_backward"
    part = _batch_slice(geom)
    n, shp = part.stop, (part.stop, *tuple(geom.plane)[1:])
    name_x = name_w = None
    if mask[0]:
        name_x = _pick(algo, op, "input", geom, dtype, cap, lambda a: input_grad(a, n, shp))
    if mask[1]:
        name_w = _pick(algo, op, "weight", geom, dtype, cap, lambda a: weight_and_bias(a, n, shp))
    return name_x, name_w


for _nd in (1, 2):
    register_lean(f"conv{_nd}d")(conv_lean.make_forward(f"conv{_nd}d", _nd, conv_forward))
    register_lean(f"conv{_nd}d_backward")(
        conv_lean.make_backward(f"conv{_nd}d_backward", _nd, conv_backward)
    )
