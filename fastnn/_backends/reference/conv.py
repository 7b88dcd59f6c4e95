"""Convolution as a sum over kernel offsets (cross-correlation, as in PyTorch).

For each group g and kernel offset (i, j), the strided window of the padded input that
offset ``(i * dilation_h, j * dilation_w)`` sees is multiplied by the weight column
``weight[:, :, i, j]`` and added to the output:

    out[n, k, h, w] = bias[k] + sum_{c, i, j} weight[k, c, i, j]
                      * x_pad[n, c, h * s_h + i * d_h, w * s_w + j * d_w]

1-D convolution is the same formula with H = 1.
"""

from __future__ import annotations

import numpy as np

from fastnn._backends.reference._util import f64, finish
from fastnn._dispatch import register
from fastnn._geometry import ConvGeometry


def _as_2d(geom: ConvGeometry):
    """(in_size, kernel, stride, dilation, pad) as 2-D tuples; 1-D gets a unit H axis."""
    if geom.nd == 2:
        return geom.in_size, geom.kernel, geom.stride, geom.dilation, geom.pad, geom.out_size
    one = (1,)
    return (
        one + geom.in_size,
        one + geom.kernel,
        one + geom.stride,
        one + geom.dilation,
        ((0, 0),) + geom.pad,
        one + geom.out_size,
    )


def _window(geom2d, i: int, j: int) -> tuple[slice, slice]:
    """The slices of the padded input that kernel offset (i, j) reads."""
    _, _, (sh, sw), (dh, dw), _, (ho, wo) = geom2d
    return (
        slice(i * dh, i * dh + sh * (ho - 1) + 1, sh),
        slice(j * dw, j * dw + sw * (wo - 1) + 1, sw),
    )


def _activate(name: str | None, u: np.ndarray) -> np.ndarray:
    """The fused activation: relu max(u, 0), relu6 min(max(u, 0), 6); NaN stays NaN."""
    if name == "relu":
        return np.maximum(u, 0.0)
    if name == "relu6":
        return np.minimum(np.maximum(u, 0.0), 6.0)
    return u


def _conv_forward(x, w, b, geom: ConvGeometry, algo: str, activation: str | None = None):
    g2 = _as_2d(geom)
    _, (kh, kw), _, _, ((pt, pb), (pl, pr)), (ho, wo) = g2
    n, groups = geom.batch, geom.groups
    x4 = f64(x).reshape(n, geom.in_channels, *g2[0])
    w4 = f64(w).reshape(geom.out_channels, geom.in_channels // groups, kh, kw)
    xp = np.pad(x4, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((n, geom.out_channels, ho, wo))
    cin, cout = geom.in_channels // groups, geom.out_channels // groups
    for g in range(groups):
        ci, co = slice(g * cin, (g + 1) * cin), slice(g * cout, (g + 1) * cout)
        for i in range(kh):
            for j in range(kw):
                rows, cols = _window(g2, i, j)
                patch = xp[:, ci, rows, cols]  # (N, cin, Ho, Wo)
                out[:, co] += np.einsum("nchw,kc->nkhw", patch, w4[co, :, i, j])
    if b is not None:
        out += f64(b)[None, :, None, None]
    return finish(_activate(activation, out).reshape(geom.output_shape), x.dtype)


def _conv_backward(gy, x, w, geom: ConvGeometry, algo: str, mask):
    g2 = _as_2d(geom)
    (h, wd), (kh, kw), _, _, ((pt, pb), (pl, pr)), (ho, wo) = g2
    n, groups = geom.batch, geom.groups
    cin, cout = geom.in_channels // groups, geom.out_channels // groups
    gy4 = f64(gy).reshape(n, geom.out_channels, ho, wo)
    x4 = f64(x).reshape(n, geom.in_channels, h, wd)
    w4 = f64(w).reshape(geom.out_channels, cin, kh, kw)
    xp = np.pad(x4, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gxp = np.zeros_like(xp) if mask[0] else None
    gw = np.zeros_like(w4) if mask[1] else None
    for g in range(groups):
        ci, co = slice(g * cin, (g + 1) * cin), slice(g * cout, (g + 1) * cout)
        for i in range(kh):
            for j in range(kw):
                rows, cols = _window(g2, i, j)
                sens = gy4[:, co]
                if gxp is not None:  # each output gradient flows back to the inputs it read
                    gxp[:, ci, rows, cols] += np.einsum("nkhw,kc->nchw", sens, w4[co, :, i, j])
                if gw is not None:  # BP4: sensitivity times the input it multiplied
                    gw[co, :, i, j] = np.einsum("nkhw,nchw->kc", sens, xp[:, ci, rows, cols])
    grad_input = grad_weight = grad_bias = None
    if gxp is not None:
        gx = gxp[:, :, pt : pt + h, pl : pl + wd]
        grad_input = finish(gx.reshape(geom.input_shape), x.dtype)
    if gw is not None:
        grad_weight = finish(gw.reshape(geom.weight_shape), x.dtype)
    if mask[2]:  # BP3: the bias gradient is the sensitivity summed over batch and positions
        grad_bias = finish(gy4.sum(axis=(0, 2, 3)), x.dtype)
    return grad_input, grad_weight, grad_bias


register("conv1d", "reference")(_conv_forward)
register("conv2d", "reference")(_conv_forward)
register("conv1d_backward", "reference")(_conv_backward)
register("conv2d_backward", "reference")(_conv_backward)
