"""fastnn.nn: layers, models and losses with explicit forward and backward passes.

Built only on fastnn's public ops, so a model runs wherever its arrays live: numpy arrays
on the CPU (the Cython kernels), CuPy arrays on the GPU after ``model.to("cuda")``.

A training step::

    logits = model(x)                      # forward; each layer remembers what it needs
    loss = criterion(logits, y)
    model.backward(criterion.backward())   # fills every param.grad
    optimizer.step(); optimizer.zero_grad()
"""

from fastnn.nn.activation import GELU, Hardtanh, LeakyReLU, ReLU, ReLU6, Sigmoid, SiLU, Tanh
from fastnn.nn.batchnorm import BatchNorm1d, BatchNorm2d
from fastnn.nn.container import Residual, Sequential
from fastnn.nn.conv import Conv1d, Conv2d
from fastnn.nn.dropout import Dropout
from fastnn.nn.flatten import Flatten
from fastnn.nn.linear import Linear
from fastnn.nn.loss import BCELoss, CrossEntropyLoss, MSELoss
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter
from fastnn.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "BCELoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "GELU",
    "Hardtanh",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "MaxPool1d",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "ReLU6",
    "Residual",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Tanh",
]
