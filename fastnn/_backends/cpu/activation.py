"""Elementwise activations and activation_backward on the CPU: kernels/cpu/activation.pyx.

relu / sigmoid / tanh run the kernels of activation_loops.h, hardtanh (relu6),
leaky_relu, silu and gelu those of activation_extra.h.  The kernels take any float array
(non-contiguous ones are copied once), allocate the C-contiguous result or write into the
``out`` array the caller has checked (fastnn/ops/_out.py), and split large arrays over
threads, so these wrappers stay one line: per-call overhead matters for tiny arrays.
"""

from __future__ import annotations

import numpy as np

from fastnn._dispatch import register
from fastnn._machine import llc_bytes
from fastnn._threads import team_size
from fastnn.kernels.cpu import activation as _k

#: relu streams its result (non-temporal stores) from calls whose arrays hold this many
#: times the last-level cache: below it, the result stays in cache for its reader.
#: Measured (AMD EPYC, 32 MiB L3; relu forward, input + output): at 16 MiB plain stores
#: ran 228 us and streaming 305 (one thread), at 32 MiB 236 vs 616 (two threads), at
#: 64 MiB streaming won on one and two threads (1631 vs 1824, 642 vs 722 us).
STREAM_LLC_MULTIPLE = 2
_k.set_stream_bytes(STREAM_LLC_MULTIPLE * llc_bytes())

#: Activation names -> the kernels' codes.
CODES = {None: _k.IDENTITY, "relu": _k.RELU, "sigmoid": _k.SIGMOID, "tanh": _k.TANH}
#: activation_backward's names served by backward_extra -> its codes.
_EXTRA_BACKWARD = {"hardtanh": _k.HARDTANH, "leaky_relu": _k.LEAKY_RELU}
_GELU = {"none": _k.GELU, "tanh": _k.GELU_TANH}

_RELU, _SIGMOID, _TANH = _k.RELU, _k.SIGMOID, _k.TANH
_HARDTANH, _LEAKY_RELU, _SILU = _k.HARDTANH, _k.LEAKY_RELU, _k.SILU
_activate, _extra, _backward_extra = _k.activate, _k.activate_extra, _k.backward_extra


@register("relu", "cpu")
def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _activate(_RELU, x, team_size(), out)


@register("sigmoid", "cpu")
def sigmoid(x: np.ndarray) -> np.ndarray:
    return _activate(_SIGMOID, x, team_size())


@register("tanh", "cpu")
def tanh(x: np.ndarray) -> np.ndarray:
    return _activate(_TANH, x, team_size())


@register("hardtanh", "cpu")
def hardtanh(x: np.ndarray, out: np.ndarray | None, lo: float, hi: float) -> np.ndarray:
    return _extra(_HARDTANH, x, team_size(), lo, hi, out)


@register("relu6", "cpu")
def relu6(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return _extra(_HARDTANH, x, team_size(), 0.0, 6.0, out)


@register("leaky_relu", "cpu")
def leaky_relu(x: np.ndarray, out: np.ndarray | None, slope: float) -> np.ndarray:
    return _extra(_LEAKY_RELU, x, team_size(), slope, 0.0, out)


@register("silu", "cpu")
def silu(x: np.ndarray) -> np.ndarray:
    return _extra(_SILU, x, team_size())


@register("gelu", "cpu")
def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    return _extra(_GELU[approximate], x, team_size())


@register("silu_backward", "cpu")
def silu_backward(gy: np.ndarray, x: np.ndarray) -> np.ndarray:
    return _backward_extra(_SILU, gy, x, team_size())


@register("gelu_backward", "cpu")
def gelu_backward(gy: np.ndarray, x: np.ndarray, approximate: str) -> np.ndarray:
    return _backward_extra(_GELU[approximate], gy, x, team_size())


@register("activation_backward", "cpu")
def activation_backward(
    name: str, gy: np.ndarray, y: np.ndarray, p0: float = 0.0, p1: float = 0.0
) -> np.ndarray:
    code = _EXTRA_BACKWARD.get(name)
    if code is not None:
        return _backward_extra(code, gy, y, team_size(), p0, p1)
    return _k.backward(CODES[name], gy, y, team_size())
