"""The public ops, one module per family.  Each op validates its arguments once
(fastnn._args) and hands them to the implementation the dispatcher picks."""

from fastnn.ops.activation import (
    activation_backward,
    gelu,
    gelu_backward,
    hardtanh,
    leaky_relu,
    log_softmax,
    log_softmax_backward,
    relu,
    relu6,
    sigmoid,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    tanh,
)
from fastnn.ops.backprop import dense_grads, mlp_backward, output_sensitivity, sensitivity
from fastnn.ops.conv import conv1d, conv1d_backward, conv2d, conv2d_backward
from fastnn.ops.dense import gemm, linear, linear_backward
from fastnn.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_backward,
    cross_entropy,
    cross_entropy_backward,
    mse_loss,
    mse_loss_backward,
)
from fastnn.ops.normalization import (
    batch_norm,
    batch_norm_backward,
    batch_norm_elemt,
    batch_norm_stats,
)
from fastnn.ops.optim import (
    UPDATES,
    AdadeltaHyper,
    AdagradHyper,
    AdamHyper,
    RMSpropHyper,
    SGDHyper,
    adadelta_update,
    adagrad_update,
    adam_update,
    rmsprop_update,
    sgd_update,
)
from fastnn.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool1d_backward,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    avg_pool1d,
    avg_pool1d_backward,
    avg_pool2d,
    avg_pool2d_backward,
    max_pool1d,
    max_pool1d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from fastnn.ops.regularization import add, dropout, dropout_backward

#: Every public op, forward and backward, in the order of docs/API.md.
OPS = (
    "conv1d", "conv2d", "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d",
    "gemm", "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "mse_loss", "binary_cross_entropy", "cross_entropy",
    "conv1d_backward", "conv2d_backward", "max_pool1d_backward", "max_pool2d_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "linear_backward", "activation_backward",
    "softmax_backward", "log_softmax_backward", "mse_loss_backward",
    "binary_cross_entropy_backward", "cross_entropy_backward",
    "output_sensitivity", "sensitivity", "dense_grads", "mlp_backward",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d_backward", "dropout", "dropout_backward", "add",
    "batch_norm", "batch_norm_stats", "batch_norm_elemt", "batch_norm_backward",
    "hardtanh", "relu6", "leaky_relu", "silu", "gelu", "silu_backward", "gelu_backward",
)  # fmt: skip

__all__ = [
    "OPS",
    "adaptive_avg_pool1d", "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
    "add", "dropout", "dropout_backward",
    "batch_norm", "batch_norm_backward", "batch_norm_elemt", "batch_norm_stats",
    "activation_backward", "avg_pool1d", "avg_pool1d_backward", "avg_pool2d",
    "avg_pool2d_backward", "binary_cross_entropy", "binary_cross_entropy_backward",
    "conv1d", "conv1d_backward", "conv2d", "conv2d_backward", "cross_entropy",
    "cross_entropy_backward", "dense_grads", "gemm", "linear", "linear_backward",
    "log_softmax", "log_softmax_backward", "max_pool1d", "max_pool1d_backward",
    "max_pool2d", "max_pool2d_backward", "mlp_backward", "mse_loss", "mse_loss_backward",
    "output_sensitivity", "relu", "sensitivity", "sigmoid", "softmax", "softmax_backward",
    "tanh",
    "gelu", "gelu_backward", "hardtanh", "leaky_relu", "relu6", "silu", "silu_backward",
    "UPDATES", "AdadeltaHyper", "AdagradHyper", "AdamHyper", "RMSpropHyper", "SGDHyper",
    "adadelta_update", "adagrad_update", "adam_update", "rmsprop_update", "sgd_update",
]  # fmt: skip
