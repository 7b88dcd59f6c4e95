"""The CUDA C sources of the ``cupy`` backend (kernels/cuda/*.cu) and the kernel
instantiations each one provides.

This module does not import CuPy: the tests use it to compile every source with nvcc and
to run the kernels in a CPU emulator.  A kernel is named by a C++ name expression such as
``"activation_forward<float, 1>"``: the template name, the element type, then the extra
template arguments listed in :data:`KERNELS`.  :func:`expression` builds these strings, so
the list given to ``cupy.RawModule(name_expressions=...)`` and the names looked up in it
always agree.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "EXTRA_ACTIVATIONS",
    "KERNELS",
    "LOSSES",
    "ROW_THREADS",
    "THREADS",
    "ctype",
    "expression",
    "expressions",
    "source_dir",
    "source_text",
]

#: Threads per block of the 1-D kernels and block reductions (FASTNN_THREADS in common.cuh).
THREADS = 256

#: Threads per block of the row kernels (softmax, cross-entropy): few for short rows.
ROW_THREADS = (32, 256)

#: Tile of the column-sum kernel (FASTNN_COLUMN_TILE x FASTNN_COLUMN_LANES in reduce.cu).
COLUMN_TILE, COLUMN_LANES = 32, 8

#: Activation codes of common.cuh.
ACTIVATIONS = {None: 0, "relu": 1, "sigmoid": 2, "tanh": 3, "relu6": 4}

#: Codes of activation.cu's extra_forward / extra_backward (not common.cuh's: no other
#: kernel knows them).
EXTRA_ACTIVATIONS = {"hardtanh": 5, "leaky_relu": 6, "silu": 7, "gelu": 8, "gelu_tanh": 9}

#: Loss codes of loss.cu.
LOSSES = {"mse": 0, "binary_cross_entropy": 1}

_ACTS = tuple(ACTIVATIONS.values())
_FUNCTIONS = tuple(v for k, v in ACTIVATIONS.items() if k is not None)
_BOOLS = (False, True)
#: The activations a convolution fuses (None, relu, relu6).
_CONV_ACTS = (0, 1, 4)

#: file -> {template name -> the extra template arguments of each instantiation}.  Every
#: kernel is instantiated for float and double in addition.
KERNELS: dict[str, dict[str, tuple[tuple, ...]]] = {
    "activation.cu": {
        "activation_forward": tuple((a,) for a in _FUNCTIONS),
        "activation_backward": tuple((a,) for a in _FUNCTIONS),
        "extra_forward": tuple((a,) for a in EXTRA_ACTIVATIONS.values()),
        "extra_backward": tuple((a,) for a in EXTRA_ACTIVATIONS.values()),
    },
    "epilogue.cu": {
        "bias_activation": tuple((a, b) for a in _ACTS for b in _BOOLS),
        "derivative_multiply": tuple((a,) for a in _FUNCTIONS),
        "gemm_epilogue": tuple((b,) for b in _BOOLS),
    },
    "reduce.cu": {
        "sum_strided_partial": ((),),
        "sum_columns_partial": ((),),
        "sum_finish": ((),),
    },
    "softmax.cu": {
        "softmax_rows": tuple((log, t) for log in _BOOLS for t in ROW_THREADS),
        "softmax_strided": tuple((log,) for log in _BOOLS),
        "softmax_backward_rows": tuple((log, t) for log in _BOOLS for t in ROW_THREADS),
        "softmax_backward_strided": tuple((log,) for log in _BOOLS),
    },
    "loss.cu": {
        "loss_none": tuple((loss,) for loss in LOSSES.values()),
        "loss_partial": tuple((loss,) for loss in LOSSES.values()),
        "loss_backward": tuple((loss,) for loss in LOSSES.values()),
        "cross_entropy_rows": tuple((t,) for t in ROW_THREADS),
        "cross_entropy_grad_rows": tuple((b, t) for b in _BOOLS for t in ROW_THREADS),
        "output_sensitivity": tuple((loss, a) for loss in LOSSES.values() for a in _ACTS),
    },
    "im2col.cu": {"im2col": ((),), "col2im": ((),)},
    "conv_direct.cu": {
        "conv_direct_forward": tuple((a, b) for a in _CONV_ACTS for b in _BOOLS),
        "conv_direct_backward_input": ((),),
        "conv_direct_backward_weight": ((),),
    },
    "batch_norm.cu": {
        "bn_stats_partial": ((),),
        "bn_stats_finish": ((),),
        "bn_running_stats": ((),),
        "bn_affine": ((0,), (1,), (2,)),  # batch_norm.cu's codes: none, relu, relu6
        "bn_grad_partial": ((0,), (1,), (2,)),
        "bn_grad_finish": ((),),
        "bn_grad_input": ((0,), (1,), (2,)),
    },
    "pool.cu": {
        "max_pool_forward": tuple((b,) for b in _BOOLS),
        "max_pool_check_indices": ((),),
        "max_pool_backward_gather": ((),),
        "max_pool_backward_scatter": ((),),
        "avg_pool_forward": ((),),
        "avg_pool_backward": ((),),
    },
    "adaptive_pool.cu": {
        "adaptive_avg_forward": ((),),
        "adaptive_avg_backward": ((),),
        "adaptive_max_forward": tuple((b,) for b in _BOOLS),
        "adaptive_max_check_indices": ((),),
        "adaptive_max_backward_gather": ((),),
    },
    "dropout_add.cu": {
        "dropout_forward": ((),),
        "dropout_backward": ((),),
        "residual_add": ((0,), (1,), (2,)),
    },
    "optim.cu": {  # the option flags: fastnn/_backends/cupy/optim.py
        "sgd_update": ((False, False, False), *((True, n, f) for n in _BOOLS for f in _BOOLS)),
        "adagrad_update": ((),),
        "rmsprop_update": tuple((c, m) for c in _BOOLS for m in _BOOLS),
        "adadelta_update": ((),),
        "adam_update": tuple((a, d) for a in _BOOLS for d in _BOOLS),
    },
}

_CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}


def ctype(dtype: object) -> str:
    """The C type of a float32 / float64 dtype."""
    return _CTYPES[np.dtype(dtype)]


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(int(value))  # type: ignore[call-overload]


def expression(name: str, c_type: str, *extra: object) -> str:
    """The name expression of one instantiation: ``name<c_type, extra...>``."""
    return f"{name}<{', '.join([c_type, *map(_literal, extra)])}>"


def expressions(file: str, c_type: str) -> list[str]:
    """Every name expression of ``file`` for one element type."""
    return [
        expression(name, c_type, *extra)
        for name, instances in KERNELS[file].items()
        for extra in instances
    ]


def source_dir() -> Path:
    """The folder of the .cu sources (kernels/cuda, installed as fastnn/kernels/cuda)."""
    return Path(str(resources.files("fastnn.kernels").joinpath("cuda")))


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)
_PRAGMA_ONCE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+once[ \t]*$", re.MULTILINE)


@functools.cache
def source_text(file: str) -> str:
    """The source of ``file`` with every ``#include "local.cuh"`` replaced by that file's
    text (each header once): what NVRTC compiles, complete in itself."""
    folder = source_dir()
    seen: set[str] = set()

    def expand(name: str) -> str:
        text = (folder / name).read_text()

        def include(match: re.Match) -> str:
            header = match.group(1)
            if header in seen:
                return f"// {header}: included above"
            seen.add(header)
            return f"// ---- begin {header} ----\n{expand(header)}\n// ---- end {header} ----"

        return _INCLUDE.sub(include, _PRAGMA_ONCE.sub("", text))

    return expand(file)
