"""The PyTorch peer: each op through the ATen kernel PyTorch itself runs for it (oneDNN
convolutions and pooling on the CPU, cuDNN and cuBLAS on a GPU), called directly so that
no autograd bookkeeping is timed.  Imported only when torch is installed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "activation",
    "activation_backward",
    "conv",
    "conv_backward",
    "derivative",
    "loss",
    "loss_backward",
    "max_pool",
    "max_pool_backward",
    "mlp_backward",
    "sensitivity",
]

aten = torch.ops.aten

_REDUCTION_MEAN = 1  # ATen's enum: 0 none, 1 mean, 2 sum


def _tuple(value, nd: int) -> list[int]:
    return list(value) if isinstance(value, tuple) else [value] * nd


def conv(x, w, b, stride, pad, dilation):
    """F.conv1d / F.conv2d."""
    fn = F.conv1d if x.ndim == 3 else F.conv2d
    return fn(x, w, b, stride, pad, dilation)


def conv_backward(gy, x, w, stride, pad, dilation, mask=(True, True, True)):
    """ATen's convolution_backward: (grad_input, grad_weight, grad_bias) in one call, the
    gradients ``mask`` leaves out as None."""
    nd = x.ndim - 2
    return aten.convolution_backward(
        gy,
        x,
        w,
        [w.shape[0]],
        _tuple(stride, nd),
        _tuple(pad, nd),
        _tuple(dilation, nd),
        False,
        [0] * nd,
        1,
        list(mask),
    )


def max_pool(x, kernel, stride, pad, return_indices=False):
    fn = F.max_pool1d if x.ndim == 3 else F.max_pool2d
    return fn(x, kernel, stride, pad, return_indices=return_indices)


def avg_pool(x, kernel, stride, pad):
    fn = F.avg_pool1d if x.ndim == 3 else F.avg_pool2d
    return fn(x, kernel, stride, pad)


def _as_2d(gy, x, indices, kernel, stride, pad):
    """1-D pooling arguments as 2-D ones with H = 1 (ATen's pooling backward is 2-D)."""
    if x.ndim == 4:
        return gy, x, indices, [kernel] * 2, [stride] * 2, [pad] * 2
    lift = (slice(None), slice(None), None)
    indices = None if indices is None else indices[lift]
    return gy[lift], x[lift], indices, [1, kernel], [1, stride], [0, pad]


def max_pool_backward(gy, x, kernel, stride, pad, indices):
    """ATen's max_pool2d_with_indices_backward."""
    gy2, x2, idx2, k, s, p = _as_2d(gy, x, indices, kernel, stride, pad)
    gx = aten.max_pool2d_with_indices_backward(gy2, x2, k, s, p, [1, 1], False, idx2)
    return gx if x.ndim == 4 else gx[:, :, 0]


def avg_pool_backward(gy, x, kernel, stride, pad):
    """ATen's avg_pool2d_backward (count_include_pad=True)."""
    gy2, x2, _, k, s, p = _as_2d(gy, x, None, kernel, stride, pad)
    gx = aten.avg_pool2d_backward(gy2, x2, k, s, p, False, True, None)
    return gx if x.ndim == 4 else gx[:, :, 0]


def activation(name: str | None, x):
    if name == "relu":
        return torch.relu(x)
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "tanh":
        return torch.tanh(x)
    if name == "softmax":
        return torch.softmax(x, -1)
    if name == "log_softmax":
        return torch.log_softmax(x, -1)
    return x


def activation_backward(name: str, gy, y):
    """The ATen backward kernels, from the forward output."""
    if name == "relu":
        return aten.threshold_backward(gy, y, 0)
    if name == "sigmoid":
        return aten.sigmoid_backward(gy, y)
    if name == "tanh":
        return aten.tanh_backward(gy, y)
    if name == "softmax":
        return aten._softmax_backward_data(gy, y, -1, y.dtype)
    return aten._log_softmax_backward_data(gy, y, -1, y.dtype)


def loss(name: str, x, t):
    if name == "mse_loss":
        return F.mse_loss(x, t)
    if name == "binary_cross_entropy":
        return F.binary_cross_entropy(x, t)
    return F.cross_entropy(x, t)


def loss_backward(name: str, x, t):
    """d loss / d input through ATen's backward kernels (mean reduction)."""
    one = torch.ones((), dtype=x.dtype, device=x.device)
    if name == "mse_loss":
        return aten.mse_loss_backward(one, x, t, _REDUCTION_MEAN)
    if name == "binary_cross_entropy":
        return aten.binary_cross_entropy_backward(one, x, t, None, _REDUCTION_MEAN)
    logp = torch.log_softmax(x, 1)
    _, total = aten.nll_loss_forward(logp, t, None, _REDUCTION_MEAN, -100)
    g = aten.nll_loss_backward(one, logp, t, None, _REDUCTION_MEAN, -100, total)
    return aten._log_softmax_backward_data(g, logp, 1, x.dtype)


def derivative(name: str | None, u):
    if name is None:
        return 1
    if name == "relu":
        return u > 0
    if name == "sigmoid":
        s = torch.sigmoid(u)
        return s * (1 - s)
    return 1 - torch.tanh(u) ** 2


def sensitivity(delta_next, w_next, u, act):
    """BP2 with torch ops: f'(u) * (delta_next @ w_next)."""
    return derivative(act, u) * (delta_next @ w_next)


def mlp_backward(inputs, preacts, weights, delta_out, acts):
    """BP2-BP4 with torch ops (fastnn.bench.impl_numpy's recursion, torch's BP2)."""
    from fastnn.bench import impl_numpy

    return impl_numpy.mlp_backward(inputs, preacts, weights, delta_out, acts, sensitivity)
