"""The choice between im2col + cuBLAS and the direct kernels (a prior, and with
``fastnn.autotune`` on, fastnn._selection timing both on this GPU), and the 2-D integers
of a convolution (``geom.plane``, fastnn._geometry.ConvPlane; 1-D convolution is 2-D
convolution with a height of 1) in the orders the CUDA kernels take them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cupy

from fastnn._geometry import ConvGeometry, ConvPlane
from fastnn._selection import choose_conv, refuse_cpu_only

BACKEND = "cupy"
#: The two convolution algorithms of this backend.
ALGORITHMS = ("im2col", "direct")

#: The prior ranks the direct kernels first when one output needs at most this many
#: multiply-adds (in_channels / groups * kernel taps): a GEMM with so short an inner
#: dimension runs far from cuBLAS's peak, and im2col would copy the input kernel-taps
#: times for little arithmetic.  A first guess, not yet measured on a GPU.
DIRECT_MAX_MACS = 32
#: The ``threads`` of the autotune keys: the GPU's passes do not depend on fastnn's CPU
#: thread count.
KEY_THREADS = 0


def im2col_ints(p: ConvPlane) -> tuple[int, ...]:
    """(in_h, in_w, k_h, k_w, out_h, out_w, stride_h, stride_w, pad_top, pad_left, dil_h,
    dil_w), the order of the im2col/col2im arguments."""
    return (p.h, p.w, p.r, p.s, p.ho, p.wo, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw)


def direct_ints(p: ConvPlane) -> tuple[int, ...]:
    """(batch, in_channels, in_h, in_w, out_channels, out_h, out_w, k_h, k_w, stride_h,
    stride_w, pad_top, pad_left, dil_h, dil_w, groups), the order of the direct kernels'
    arguments."""
    return (
        p.n, p.c, p.h, p.w, p.k, p.ho, p.wo, p.r, p.s, p.sh, p.sw, p.pt, p.pl, p.dh, p.dw, p.g,
    )  # fmt: skip


def unsupported(name: str, algo: str) -> None:
    """Refuse the CPU-only algorithms (fastnn._selection.refuse_cpu_only)."""
    refuse_cpu_only(name, algo, BACKEND)


def heuristic(geom: ConvGeometry) -> str:
    """ "direct" when one output needs few multiply-adds, else "im2col"."""
    p = geom.plane
    return "direct" if p.cg * p.r * p.s <= DIRECT_MAX_MACS else "im2col"


def ranked(geom: ConvGeometry) -> list[str]:
    """Both algorithms, the prior's pick first."""
    first = heuristic(geom)
    return [first, *(a for a in ALGORITHMS if a != first)]


_DEVICE_NAMES: dict[Any, str] = {}


def device_name(device: Any) -> str:
    """A GPU as the autotune keys name it: compute capability and model
    (``sm90 NVIDIA H100 80GB HBM3``)."""
    name = _DEVICE_NAMES.get(device.id)
    if name is None:
        model = cupy.cuda.runtime.getDeviceProperties(device.id).get("name", b"")
        if isinstance(model, bytes):
            model = model.decode(errors="replace")
        name = f"sm{device.compute_capability} {model}".strip().replace("|", "/")
        _DEVICE_NAMES[device.id] = name
    return name


def choose_algo(
    geom: ConvGeometry, algo: str, dtype: Any, which: str, run: Callable[[str], Any]
) -> str:
    """The algorithm of one pass: ``algo`` unless it is "auto"; then fastnn._selection's
    choice from :func:`ranked` (with ``fastnn.autotune`` on, the faster of the two when
    timed once on this GPU: ``run(name)`` runs the pass with one of them, and the GPU is
    synchronised inside the timing)."""
    if algo != "auto":
        return algo
    if geom.batch == 0:  # nothing to run, nothing to time
        return heuristic(geom)
    device = cupy.cuda.Device()

    def timed(name: str) -> None:
        run(name)
        device.synchronize()

    op = f"conv{geom.nd}d"
    return choose_conv(
        BACKEND, op, which, geom, dtype, KEY_THREADS, ranked(geom), timed, device_name(device)
    )
