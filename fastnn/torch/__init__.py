"""fastnn.torch: fastnn's kernels for PyTorch tensors and models (needs the ``torch`` extra).

``import fastnn`` never imports torch; ``import fastnn.torch`` does.

Functions, mirroring ``torch.nn.functional`` (plus fastnn's ``algo=`` for convolutions and
``activation=`` for the fused convolutions, linear, batch norm and residual add)::

    conv1d conv2d max_pool1d max_pool2d avg_pool1d avg_pool2d adaptive_avg_pool1d
    adaptive_avg_pool2d adaptive_max_pool2d linear batch_norm dropout add
    relu relu6 hardtanh leaky_relu silu gelu sigmoid tanh softmax log_softmax
    cross_entropy mse_loss

Each is a ``torch.autograd.Function``: forward and backward run fastnn's public ops
(``fastnn.conv2d``, ``fastnn.conv2d_backward``, ...), and backward computes only the
gradients autograd needs.  Tensors cross without copies through DLPack: CPU tensors as
numpy views, CUDA tensors as CuPy views (CuPy required; otherwise a RuntimeError).
Non-contiguous tensors cross as strided views.  The functions run float32 and float64
only: other dtypes raise TypeError, and options fastnn lacks (``divisor_override``, class
weights, label smoothing) raise ValueError.  The drop-in modules fall back to torch instead.

Under ``torch.compile`` the functions call the same work registered as custom ops,
``torch.ops.fastnn.conv2d`` etc. (with fake shapes and autograd formulas), so compiled
graphs keep them as opaque nodes; their gradients are first order (torch.compile's
AOTAutograd does not support double backward, for torch's own ops either).

In eager mode every backward is differentiable again, to any order
(``torch.autograd.grad(..., create_graph=True)``, e.g. a physics-informed loss in x'').
A plain backward (``torch.is_grad_enabled()`` False inside it) runs the fused first-order
kernels; under ``create_graph`` it composes differentiable Functions that run fastnn's
kernels (linear's gradients are linears, a convolution's are transposed-convolution and
weight-gradient Functions, the activations' ``activation_backward`` is one, ...), torch
supplying elementwise glue and reductions (see ``_activation_grad``).

Drop-in layers (subclasses of the torch.nn ones; same constructor, parameters and
state_dict): Conv1d, Conv2d, Linear, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d,
AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm1d, BatchNorm2d, ReLU
(``inplace=True`` computed in place), ReLU6, Hardtanh, LeakyReLU, SiLU, GELU, Sigmoid,
Tanh, Softmax, LogSoftmax, Dropout, Flatten.  ``patch(model)`` turns a model's supported
layers into them in place, gives torchvision's ResNet / MobileNetV2 blocks a forward on
fastnn ops (residual add + ReLU and batch norm + activation fused), and returns a
printable report; ``patch(model, fuse=True)`` also folds batch norm into the convolutions
of a model in eval mode; ``unpatch(model)`` undoes all of it::

    import fastnn.torch
    report = fastnn.torch.patch(model)
    print(report)
"""

from fastnn.torch._activation import log_softmax, relu, sigmoid, softmax, tanh
from fastnn.torch._activation_extra import gelu, hardtanh, leaky_relu, relu6, silu
from fastnn.torch._activation_modules import GELU, Hardtanh, LeakyReLU, ReLU6, SiLU
from fastnn.torch._adaptive_pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
)
from fastnn.torch._add import add
from fastnn.torch._conv import conv1d, conv2d
from fastnn.torch._dense import linear
from fastnn.torch._dropout import dropout
from fastnn.torch._extra_modules import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    Dropout,
    Flatten,
)
from fastnn.torch._loss import cross_entropy, mse_loss
from fastnn.torch._modules import (
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Linear,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from fastnn.torch._norm import batch_norm
from fastnn.torch._norm_modules import BatchNorm1d, BatchNorm2d
from fastnn.torch._patch import PatchEntry, PatchReport, patch, unpatch
from fastnn.torch._pool import avg_pool1d, avg_pool2d, max_pool1d, max_pool2d

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Flatten",
    "GELU",
    "Hardtanh",
    "LeakyReLU",
    "ReLU6",
    "SiLU",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "add",
    "batch_norm",
    "dropout",
    "gelu",
    "hardtanh",
    "leaky_relu",
    "relu6",
    "silu",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "Linear",
    "LogSoftmax",
    "MaxPool1d",
    "MaxPool2d",
    "PatchEntry",
    "PatchReport",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "avg_pool1d",
    "avg_pool2d",
    "conv1d",
    "conv2d",
    "cross_entropy",
    "linear",
    "log_softmax",
    "max_pool1d",
    "max_pool2d",
    "mse_loss",
    "patch",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
    "unpatch",
]
