"""The CPU convolution ops: conv1d, conv2d and their backward, registered on "cpu".

Each call normalises its arrays once (4-D views, contiguous weight), picks the algorithm
(``algo``: "im2col", "direct", or "auto" -- see conv_choice; "auto" chooses the forward
pass, the input gradient and the weight gradient each on its own) and hands off to the
host wrapper of that algorithm (conv_im2col, conv_direct).  A 1-D convolution runs as a 2-D one
with H = 1; inputs of any strides are read in place, never copied.
"""

from __future__ import annotations

import numpy as np

from fastnn._args import ConvGeometry
from fastnn._dispatch import register
from fastnn._threads import get_num_threads
from fastnn.backends.cpu import conv_direct, conv_im2col
from fastnn.backends.cpu.conv_choice import pick
from fastnn.backends.cpu.conv_plan import direct_fits, fits_blas, shape_tuple
from fastnn.kernels.cpu import conv_bias as _bias

_ALGORITHMS = {"im2col": conv_im2col, "direct": conv_direct}


def _as_4d(a: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    """A 2-D view of a 1-D problem's array: (N, C, L) -> (N, C, 1, L), strides kept."""
    return a[:, :, None, :] if geom.nd == 1 else a


def _flat_weight(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w).reshape(-1)


def _usable(algo: str, shape: tuple[int, ...], op: str) -> str:
    """``algo``, unless an algorithm cannot run this problem well.  im2col cannot when
    BLAS's 32-bit sizes overflow: "auto" then runs the direct kernel, and an explicit
    "im2col" is an error.  "auto" also avoids the direct kernel when its packed buffers
    would be huge (very long rows over many channels)."""
    if algo == "auto" and fits_blas(shape) and not direct_fits(shape):
        return "im2col"
    if fits_blas(shape) or algo == "direct":
        return algo
    if algo == "im2col":
        raise ValueError(
            f"{op}: algo='im2col' cannot run this problem (a plane or reduction of more "
            "than 2**31 - 1 elements overflows BLAS's 32-bit sizes); use algo='direct'"
        )
    return "direct"


@register("conv1d", "cpu")
@register("conv2d", "cpu")
def conv_forward(x, w, b, geom: ConvGeometry, algo: str):
    """y = conv(x, w) + b with the chosen algorithm."""
    if geom.batch == 0:
        return np.empty(geom.output_shape, dtype=x.dtype)
    shape, threads = shape_tuple(geom), get_num_threads()
    x4, wf = _as_4d(x, geom), _flat_weight(w)
    bias = None if b is None else np.ascontiguousarray(b)

    def run(name: str) -> np.ndarray:
        return _ALGORITHMS[name].forward(x4, wf, bias, shape, threads)

    op = f"conv{geom.nd}d"
    name = pick(_usable(algo, shape, op), op, geom, x.dtype, threads, run, "forward")
    return run(name).reshape(geom.output_shape)


@register("conv1d_backward", "cpu")
@register("conv2d_backward", "cpu")
def conv_backward(gy, x, w, geom: ConvGeometry, algo: str, mask):
    """(grad_input, grad_weight, grad_bias), None where ``mask`` is False."""
    want_x, want_w, want_b = mask
    dtype = x.dtype
    if geom.batch == 0:
        return (
            np.empty(geom.input_shape, dtype=dtype) if want_x else None,
            np.zeros(geom.weight_shape, dtype=dtype) if want_w else None,
            np.zeros(geom.out_channels, dtype=dtype) if want_b else None,
        )
    shape, threads = shape_tuple(geom), get_num_threads()
    x4, wf = _as_4d(x, geom), _flat_weight(w)
    flat: dict[str, np.ndarray] = {}  # gy made flat and contiguous, once per kind

    def flat_gy(name: str) -> np.ndarray:
        if name == "direct":  # its micro-kernels read a vector past the end: add slack
            if "direct" not in flat:
                flat["direct"] = conv_direct.with_slack(gy)
            return flat["direct"]
        if "im2col" not in flat:
            flat["im2col"] = flat.get("direct", np.ascontiguousarray(gy).reshape(-1))
        return flat["im2col"]

    def input_grad(name: str) -> np.ndarray:
        return _ALGORITHMS[name].grad_input(flat_gy(name), wf, shape, threads)

    def weight_grad(name: str) -> np.ndarray:
        return _ALGORITHMS[name].grad_weight(x4, flat_gy(name), shape, threads)

    op = f"conv{geom.nd}d_backward"
    algo = _usable(algo, shape, op)
    gx = gw = None
    if want_x:
        gx = input_grad(pick(algo, op, geom, dtype, threads, input_grad, "input"))
    if want_w:
        gw = weight_grad(pick(algo, op, geom, dtype, threads, weight_grad, "weight"))
    gb = None
    if want_b:
        gb = np.empty(geom.out_channels, dtype=dtype)
        plane = int(np.prod(geom.out_size))
        gy_flat = next(iter(flat.values())) if flat else flat_gy("im2col")
        _bias.backward_bias(gy_flat, gb, geom.batch, geom.out_channels, plane, threads)
    return (
        None if gx is None else gx.reshape(geom.input_shape),
        None if gw is None else gw.astype(dtype).reshape(geom.weight_shape),
        gb,
    )
