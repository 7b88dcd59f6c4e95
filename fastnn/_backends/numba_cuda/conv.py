"""conv1d / conv2d and their backward on the GPU: im2col + GEMM, or direct kernels.

1-d convolution runs as 2-d with H = 1.  The im2col path works on chunks of images whose
column buffer fits in COLUMN_BUDGET bytes; per chunk it launches im2col once and the
batched GEMM once over every (image, group) pair (batch index ``n * groups + g``: the
weight of group g, and its bias, are shared by every image).  A 1x1 kernel with stride 1
and no padding needs no columns: the input is the GEMM operand itself.

- forward: ``out[n, g] = W[g] @ col[n, g] + bias[g]`` (bias in the GEMM epilogue).
- grad_input: ``colg[n, g] = W[g].T @ gy[n, g]``, then col2im (a gather, deterministic).
- grad_weight: ``gW[g] = gy[:, g] @ col[:, g].T`` as ONE GEMM per chunk over all its
  images: im2col writes the columns rows-first and the output gradient is permuted to
  (C_out, images, positions), so both operands are plain matrices; chunks after the
  first accumulate (beta = 1).
- grad_bias: the output gradient summed over images and positions (one launch).

``algo="direct"`` uses kernels/numba_cuda/conv_direct.py instead; "auto" ranks the two
with a prior (direct when a GEMM would have a tiny K: few input channels per group times
kernel taps) and, with ``fastnn.autotune`` on, times both on first use of a shape on this
GPU (fastnn._selection; the forward pass, the input gradient and the weight gradient each
on its own).  Winograd is a CPU algorithm: asking for it here raises ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import cuda

from fastnn._backends.numba_cuda import _launch
from fastnn._backends.numba_cuda._device import device_arrays, empty, launch, zeros
from fastnn._backends.numba_cuda._gemm import matmul
from fastnn._backends.numba_cuda._reduce import axis_sums
from fastnn._dispatch import register
from fastnn._geometry import ConvGeometry, ConvPlane
from fastnn._selection import choose_conv, refuse_cpu_only
from fastnn.kernels.numba_cuda import conv_direct as _direct
from fastnn.kernels.numba_cuda import im2col as _im2col
from fastnn.kernels.numba_cuda import layout as _layout
from fastnn.kernels.numba_cuda.pointwise import CODES
from fastnn.kernels.numba_cuda.reduce import BLOCK

BACKEND = "numba-cuda"
#: The algorithms of this backend.
ALGORITHMS = ("im2col", "direct")
#: Bytes of column buffer (and permuted gradient) one chunk of images may use.
COLUMN_BUDGET = 256 * 2**20
#: The prior ranks the direct kernels first when C_in / groups * kh * kw is below this.
DIRECT_BELOW = 16
#: The ``threads`` of the autotune keys: the GPU's passes do not depend on fastnn's CPU
#: thread count.
KEY_THREADS = 0


def window(p: ConvPlane) -> tuple[int, ...]:
    """The kernels' geometry arguments ``kh, kw, sh, sw, pt, pl, dh, dw`` (the padding
    before each axis; the kernels bound the windows by the input size)."""
    return (p.r, p.s, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw)


def unsupported(name: str, algo: str) -> None:
    """Refuse the CPU-only algorithms (fastnn._selection.refuse_cpu_only)."""
    refuse_cpu_only(name, algo, BACKEND)


def heuristic(geom: ConvGeometry) -> str:
    """The prior's pick: "direct" when the GEMM's K would be tiny, else "im2col"."""
    p = geom.plane
    return "direct" if p.cg * p.r * p.s < DIRECT_BELOW else "im2col"


def ranked(geom: ConvGeometry) -> list[str]:
    """Both algorithms, the prior's pick first."""
    first = heuristic(geom)
    return [first, *(a for a in ALGORITHMS if a != first)]


_DEVICE_NAMES: dict[Any, str] = {}


def device_name() -> str:
    """The current GPU as the autotune keys name it: compute capability and model
    (``sm90 NVIDIA H100 80GB HBM3``; the simulator has no model name)."""
    device = cuda.get_current_device()
    ident = getattr(device, "id", None)
    name = _DEVICE_NAMES.get(ident)
    if name is None:
        major, minor = device.compute_capability
        model = getattr(device, "name", None) or ""
        if isinstance(model, bytes):
            model = model.decode(errors="replace")
        name = f"sm{major}{minor} {model}".strip().replace("|", "/")
        _DEVICE_NAMES[ident] = name
    return name


def choose_algo(
    geom: ConvGeometry, algo: str, which: str, dtype: Any, run: Callable[[str], Any]
) -> str:
    """The algorithm of one pass ("forward", "input" or "weight"): ``algo`` unless it is
    "auto"; then fastnn._selection's choice from :func:`ranked`, ``run(name)`` running the
    pass with one algorithm (synchronised here, so that a timing covers the work)."""
    if algo != "auto":
        return algo

    def timed(name: str) -> None:
        run(name)
        cuda.synchronize()

    op_name = f"conv{geom.nd}d"
    device = device_name()
    return choose_conv(
        BACKEND, op_name, which, geom, dtype, KEY_THREADS, ranked(geom), timed, device
    )


def run_chosen(
    geom: ConvGeometry,
    algo: str,
    which: str,
    dtype: Any,
    direct: Callable[[], None],
    im2col: Callable[[], None],
) -> None:
    """Run one pass (``which`` as in :func:`choose_algo`) with the algorithm chosen for it:
    ``direct()`` or ``im2col()``."""

    def run(name: str) -> None:
        (direct if name == "direct" else im2col)()

    run(choose_algo(geom, algo, which, dtype, run))


def chunk_images(geom: ConvGeometry, per_image_bytes: int) -> int:
    """Images per chunk: as many as fit in COLUMN_BUDGET (at least one)."""
    return max(1, min(geom.batch, COLUMN_BUDGET // max(1, per_image_bytes)))


def _views(x: Any, w: Any, p: ConvPlane) -> tuple[Any, Any]:
    return x.reshape(p.n, p.c, p.h, p.w), w.reshape(p.k, p.cg, p.r, p.s)


# ---------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------


@register("conv1d", "numba-cuda")
@register("conv2d", "numba-cuda")
@device_arrays
def _conv(x, w, b, geom: ConvGeometry, algo: str, activation: str | None = None):
    """activation(conv(x, w) + b), the activation fused where each kernel writes (the
    direct kernel's store, the GEMM's epilogue); autotuning times the passes with it."""
    unsupported(f"conv{geom.nd}d", algo)
    out = empty(geom.output_shape, x.dtype)
    if out.size == 0:
        return out
    p = geom.plane
    x4, w4 = _views(x, w, p)
    out4 = out.reshape(p.n, p.k, p.ho, p.wo)
    run_chosen(
        geom, algo, "forward", x.dtype,
        lambda: direct_forward(x4, w4, b, out4, p, activation),
        lambda: im2col_forward(x4, w4, b, out4, geom, activation),
    )  # fmt: skip
    return out


def direct_forward(
    x4: Any, w4: Any, b: Any, out4: Any, p: ConvPlane, activation: str | None = None
) -> None:
    """One launch of the direct forward kernel (activation fused in its store)."""
    channel_blocks = p.g * _launch.ceil_div(p.kg, _direct.CB)
    blocks, threads = _launch.elementwise(p.n * channel_blocks * p.ho * p.wo, _direct.THREADS)
    kernel = _direct.conv_direct_kernels(x4.dtype).forward
    launch(kernel, blocks, threads, x4, w4, b, out4, p.g, *window(p), CODES[activation])


def im2col_forward(
    x4: Any, w4: Any, b: Any, out4: Any, geom: ConvGeometry, activation: str | None = None
) -> None:
    """Chunks of images: im2col, then one batched GEMM with the bias and the activation
    in its epilogue."""
    p = geom.plane
    groups, batch, cin, cout = p.g, p.n, p.cg, p.kg
    k, positions = cin * p.r * p.s, p.ho * p.wo
    w3 = w4.reshape(groups, cout, k)
    bias = b.reshape(groups, cout) if b is not None else None
    out3 = out4.reshape(batch * groups, cout, positions)
    if p.pointwise:  # 1x1: the input already is the column matrix
        x3 = x4.reshape(batch * groups, cin, positions)
        matmul(w3, x3, out3, bias=bias, bias_axis=0, activation=activation)
        return
    chunk = chunk_images(geom, p.c * p.r * p.s * positions * x4.dtype.itemsize)
    col = empty((chunk, p.c * p.r * p.s, positions), x4.dtype)
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        _im2col_launch(x4, col[:nb], n0, False, p)
        cols = col[:nb].reshape(nb * groups, k, positions)
        out_chunk = out3[n0 * groups : (n0 + nb) * groups]
        matmul(w3, cols, out_chunk, bias=bias, bias_axis=0, activation=activation)


def _im2col_launch(x4: Any, col: Any, n0: int, rows_first: bool, p: ConvPlane) -> None:
    threads_needed = col.size // (p.r * p.s)  # one per (image, channel, position)
    blocks, threads = _launch.elementwise(threads_needed, _im2col.THREADS)
    kernel = _im2col.im2col_kernels(x4.dtype).im2col
    launch(kernel, blocks, threads, x4, col, n0, rows_first, *window(p), p.wo)


# ---------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------


@register("conv1d_backward", "numba-cuda")
@register("conv2d_backward", "numba-cuda")
@device_arrays
def _conv_backward(gy, x, w, geom: ConvGeometry, algo: str, mask):
    unsupported(f"conv{geom.nd}d_backward", algo)
    p = geom.plane
    x4, w4 = _views(x, w, p)
    gy4 = gy.reshape(p.n, p.k, p.ho, p.wo)
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        grad_input = empty(geom.input_shape, x.dtype)
        gx4 = grad_input.reshape(x4.shape)
        if grad_input.size:
            run_chosen(
                geom, algo, "input", x.dtype,
                lambda: _direct_grad_input(gy4, w4, gx4, p),
                lambda: _im2col_grad_input(gy4, w4, gx4, geom),
            )  # fmt: skip
    if mask[1]:
        if p.n == 0:  # a sum over no images
            grad_weight = zeros(geom.weight_shape, x.dtype)
        else:
            grad_weight = empty(geom.weight_shape, x.dtype)
            gw4 = grad_weight.reshape(w4.shape)
            run_chosen(
                geom, algo, "weight", x.dtype,
                lambda: _direct_grad_weight(gy4, x4, gw4, p),
                lambda: _im2col_grad_weight(gy4, x4, gw4, geom),
            )  # fmt: skip
    if mask[2]:
        grad_bias = axis_sums(gy.reshape(p.n, p.k, p.ho * p.wo))
    return grad_input, grad_weight, grad_bias


def _direct_grad_input(gy4: Any, w4: Any, gx4: Any, p: ConvPlane) -> None:
    blocks, threads = _launch.elementwise(gx4.size, _direct.THREADS)
    kernel = _direct.conv_direct_kernels(gx4.dtype).grad_input
    launch(kernel, blocks, threads, gy4, w4, gx4, p.g, *window(p))


def _direct_grad_weight(gy4: Any, x4: Any, gw4: Any, p: ConvPlane) -> None:
    length = p.n * p.ho * p.wo
    blocks, threads, team = _launch.teams(gw4.size, length, BLOCK)
    kernel = _direct.conv_direct_kernels(gw4.dtype).grad_weight
    launch(kernel, blocks, threads, gy4, x4, gw4, team, p.g, *window(p))


def _im2col_grad_input(gy4: Any, w4: Any, gx4: Any, geom: ConvGeometry) -> None:
    p = geom.plane
    groups, batch, cin, cout = p.g, p.n, p.cg, p.kg
    k, positions = cin * p.r * p.s, p.ho * p.wo
    w3 = w4.reshape(groups, cout, k)
    gy3 = gy4.reshape(batch * groups, cout, positions)
    if p.pointwise:  # the column gradient is the input gradient
        matmul(w3, gy3, gx4.reshape(batch * groups, cin, positions), trans_a=True)
        return
    rows = p.c * p.r * p.s
    chunk = chunk_images(geom, rows * positions * gx4.dtype.itemsize)
    colg = empty((chunk * groups, k, positions), gx4.dtype)
    col2im = _im2col.im2col_kernels(gx4.dtype).col2im
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        cols = colg[: nb * groups]
        matmul(w3, gy3[n0 * groups : (n0 + nb) * groups], cols, trans_a=True)
        target = gx4[n0 : n0 + nb]
        blocks, threads = _launch.elementwise(target.size, _im2col.THREADS)
        launch(
            col2im, blocks, threads, cols.reshape(nb, rows, positions), target, *window(p),
            p.ho, p.wo,
        )  # fmt: skip


def _im2col_grad_weight(gy4: Any, x4: Any, gw4: Any, geom: ConvGeometry) -> None:
    p = geom.plane
    groups, batch, cout = p.g, p.n, p.kg
    rows = p.c * p.r * p.s
    positions = p.ho * p.wo
    gw3 = gw4.reshape(groups, cout, rows // groups)
    per_image = (rows + p.k) * positions * x4.dtype.itemsize
    chunk = chunk_images(geom, per_image)
    col = empty((rows, chunk, positions), x4.dtype)
    gy_t = empty((p.k, chunk, positions), x4.dtype)
    gy3 = gy4.reshape(batch, p.k, positions)
    for n0 in range(0, batch, chunk):
        nb = min(chunk, batch - n0)
        # (rows, nb, P) and (C_out, nb, P): contiguous only for a full chunk, so the
        # buffers are used through their first rows * nb * P elements, reshaped
        cols = col.reshape(col.size)[: rows * nb * positions].reshape(rows, nb, positions)
        grads = gy_t.reshape(gy_t.size)[: p.k * nb * positions]
        grads = grads.reshape(p.k, nb, positions)
        _im2col_launch(x4, cols, n0, True, p)
        blocks, threads = _launch.elementwise(grads.size, _layout.THREADS)
        launch(_layout.swap01, blocks, threads, gy3[n0 : n0 + nb], grads)
        first = n0 == 0
        matmul(
            grads.reshape(groups, cout, nb * positions),
            cols.reshape(groups, rows // groups, nb * positions),
            gw3,
            trans_b=True,
            beta=0.0 if first else 1.0,
            c=None if first else gw3,
        )
