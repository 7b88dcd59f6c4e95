"""The benchmark shapes, one table per family, used by ``fastnn bench`` and by bench/.

The convolution and GEMM shapes are those of docs/BENCHMARKS.md (LeNet-5, ResNet-50,
VGG-16, DeepBench, 1-D spectra); the rest are chosen to cover the cache hierarchy (a few
KB, L2/L3-resident, DRAM-sized) and the small tensors where dispatch overhead dominates.

Three suites pick from the tables with :func:`pick`:

- ``"full"``  every shape at its published batch size;
- ``"quick"`` a representative subset, batch sizes cut so that even the slow NumPy
  reference backend finishes the whole quick report in about two minutes on 2 cores
  (a cut batch shows in the shape's name, e.g. ``R50-res2-3x3/N2``);
- ``"tiny"``  small odd shapes (stride, padding, dilation) for the tests, which check
  that every implementation computes the same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

__all__ = [
    "CONV1D",
    "CONV2D",
    "DISPATCH",
    "ELEMENTWISE",
    "GEMM",
    "LENET",
    "LINEAR",
    "MLP",
    "POOL",
    "ROWS",
    "SUITES",
    "ConvShape",
    "GemmShape",
    "LinearShape",
    "MlpShape",
    "PoolShape",
    "pick",
]

SUITES = ("tiny", "quick", "full")


@dataclass(frozen=True)
class ConvShape:
    """A convolution: input (n, c, *size), weight (k, c, *kernel); 1-D when len(size) 1."""

    name: str
    n: int
    c: int
    size: tuple[int, ...]
    k: int
    kernel: tuple[int, ...]
    stride: int | tuple[int, ...] = 1
    pad: int | tuple[int, ...] = 0
    dilation: int | tuple[int, ...] = 1
    source: str = ""

    @property
    def nd(self) -> int:
        return len(self.size)


@dataclass(frozen=True)
class GemmShape:
    """C (m, n) = op(A) (m, k) @ op(B) (k, n); ``trans`` as in DeepBench: "NN", "TN"..."""

    name: str
    m: int
    n: int
    k: int
    trans: str = "NN"
    source: str = ""


@dataclass(frozen=True)
class LinearShape:
    """A dense layer: input (n, fan_in) -> (n, fan_out), then ``activation``."""

    name: str
    n: int
    fan_in: int
    fan_out: int
    activation: str | None = "relu"


@dataclass(frozen=True)
class PoolShape:
    """A pooling layer on (n, c, *size)."""

    name: str
    n: int
    c: int
    size: tuple[int, ...]
    kernel: int
    stride: int
    pad: int = 0


@dataclass(frozen=True)
class MlpShape:
    """An MLP: batch ``n``, layer widths ``widths`` (input first), one ``activation``."""

    name: str
    n: int
    widths: tuple[int, ...]
    activation: str = "sigmoid"


# ---------------------------------------------------------------------------------------
# Convolutions (docs/BENCHMARKS.md)
# ---------------------------------------------------------------------------------------

_LECUN, _R50, _VGG, _DB = "LeCun et al. 1998", "ResNet-50", "VGG-16", "DeepBench training set"

CONV2D = (
    ConvShape("LeNet5-C1", 128, 1, (32, 32), 6, (5, 5), 1, 0, source=_LECUN),
    ConvShape("LeNet5-C3", 128, 6, (14, 14), 16, (5, 5), 1, 0, source=_LECUN),
    ConvShape("MNIST-3x3", 128, 1, (28, 28), 32, (3, 3), 1, 1, source="common small CNN"),
    ConvShape("R50-conv1", 32, 3, (224, 224), 64, (7, 7), 2, 3, source=_R50),
    ConvShape("R50-res2-3x3", 32, 64, (56, 56), 64, (3, 3), 1, 1, source=_R50),
    ConvShape("R50-res2-1x1", 32, 64, (56, 56), 256, (1, 1), 1, 0, source=_R50),
    ConvShape("R50-res3-3x3", 32, 128, (28, 28), 128, (3, 3), 1, 1, source=_R50),
    ConvShape("R50-res4-3x3", 32, 256, (14, 14), 256, (3, 3), 1, 1, source=_R50),
    ConvShape("R50-res5-1x1", 32, 2048, (7, 7), 512, (1, 1), 1, 0, source=_R50),
    ConvShape("VGG16-conv1_2", 8, 64, (224, 224), 64, (3, 3), 1, 1, source=_VGG),
    ConvShape("VGG16-conv4_2", 16, 512, (28, 28), 512, (3, 3), 1, 1, source=_VGG),
    ConvShape("DS2-conv1", 16, 1, (161, 700), 32, (5, 20), 2, 0, source=_DB),
    ConvShape("DS2-conv2", 16, 32, (79, 341), 32, (5, 10), 2, 0, source=_DB),
    ConvShape("OCR-conv1", 16, 1, (48, 480), 16, (3, 3), 1, 1, source=_DB),
    ConvShape("Face-conv", 8, 3, (108, 108), 64, (3, 3), 2, 1, source=_DB),
)

CONV1D = (
    ConvShape("Spec-stem", 32, 1, (1000,), 64, (5,), 1, 2, source="Raman ResNet (Ho et al.)"),
    ConvShape("Spec-res", 32, 100, (1000,), 100, (5,), 1, 2, source="Raman ResNet (Ho et al.)"),
    ConvShape("Spec-res-s2", 32, 100, (1000,), 100, (5,), 2, 2, source="Raman ResNet"),
    ConvShape("Spec-wide", 32, 1, (4096,), 16, (21,), 1, 10, source="vis-NIR range"),
    ConvShape("DeepSpectra-c1", 32, 1, (1000,), 8, (7,), 3, 3, source="DeepSpectra"),
)

#: quick suite: shape name -> batch size (None: the published one)
CONV2D_QUICK = {
    "LeNet5-C1": None,
    "LeNet5-C3": None,
    "MNIST-3x3": 32,
    "R50-res2-3x3": 2,
    "R50-res4-3x3": 4,
    "DS2-conv1": 1,
}
CONV2D_BACKWARD_QUICK = {"LeNet5-C1": None, "LeNet5-C3": None, "R50-res3-3x3": 2}
CONV1D_QUICK = {"Spec-stem": None, "Spec-res": 4, "DeepSpectra-c1": None}
CONV1D_BACKWARD_QUICK = {"Spec-stem": None, "Spec-res": 2}

CONV2D_TINY = (
    ConvShape("tiny-s2-p1", 2, 3, (9, 11), 4, (3, 3), 2, 1),
    ConvShape("tiny-d2-rect", 1, 2, (10, 7), 3, (3, 2), (1, 2), (2, 0), dilation=(2, 1)),
    ConvShape("tiny-N0", 0, 2, (6, 6), 3, (3, 3), 1, 1),
)
CONV1D_TINY = (
    ConvShape("tiny-s2-p2", 2, 3, (17,), 4, (5,), 2, 2),
    ConvShape("tiny-d3", 1, 1, (20,), 2, (3,), 1, 3, dilation=3),
)

# ---------------------------------------------------------------------------------------
# GEMM and dense layers (DeepBench, VGG fc6, MLPs)
# ---------------------------------------------------------------------------------------

GEMM = (
    GemmShape("square-256", 256, 256, 256),
    GemmShape("square-512", 512, 512, 512),
    GemmShape("square-1024", 1024, 1024, 1024),
    GemmShape("square-2048", 2048, 2048, 2048),
    GemmShape("DB-1760x128x1760", 1760, 128, 1760, source="DeepBench"),
    GemmShape("DB-2560x64x2560", 2560, 64, 2560, source="DeepBench"),
    GemmShape("DB-4096x128x4096-TN", 4096, 128, 4096, "TN", source="DeepBench"),
    GemmShape("DB-3072x128x1024-TN", 3072, 128, 1024, "TN", source="DeepBench"),
    GemmShape("DB-35x8457x2560", 35, 8457, 2560, source="DeepBench"),
    GemmShape("DB-1024x700x512", 1024, 700, 512, source="DeepBench"),
    GemmShape("DB-512x16x500000", 512, 16, 500000, source="DeepBench"),
    GemmShape("VGG-fc6", 128, 4096, 25088, source="VGG-16"),
)
GEMM_QUICK = {"square-1024": None, "DB-1760x128x1760": None, "DB-3072x128x1024-TN": None}
GEMM_TINY = (GemmShape("tiny-NN", 7, 5, 9), GemmShape("tiny-TN", 6, 4, 3, "TN"))

LINEAR = (
    LinearShape("MLP-784x512", 128, 784, 512),
    LinearShape("MLP-512x10", 128, 512, 10, None),
    LinearShape("LeNet-F5", 128, 400, 120),
    LinearShape("wide-4096x4096", 256, 4096, 4096),
    LinearShape("VGG-fc6", 128, 25088, 4096),
)
LINEAR_QUICK = {"MLP-784x512": None, "wide-4096x4096": 64}
LINEAR_TINY = (LinearShape("tiny-relu", 5, 7, 3), LinearShape("tiny-tanh", 3, 4, 6, "tanh"))

MLP = (
    MlpShape("MNIST-784-512-256-10", 128, (784, 512, 256, 10)),
    MlpShape("wide-1024x3", 256, (1024, 1024, 1024, 1024, 10), "tanh"),
)
MLP_QUICK = {"MNIST-784-512-256-10": None}
MLP_TINY = (MlpShape("tiny-3-5-4-2", 6, (3, 5, 4, 2)),)

# ---------------------------------------------------------------------------------------
# Pooling, elementwise ops, rows of classes
# ---------------------------------------------------------------------------------------

POOL = (
    PoolShape("LeNet-S2", 128, 6, (28, 28), 2, 2),
    PoolShape("R50-maxpool", 32, 64, (112, 112), 3, 2, 1),
    PoolShape("VGG-pool1", 8, 64, (224, 224), 2, 2),
    PoolShape("Spec-pool", 32, 64, (1000,), 2, 2),
    PoolShape("Spec-pool-k3", 32, 100, (1000,), 3, 2, 1),
)
POOL_QUICK = {"LeNet-S2": None, "R50-maxpool": 8, "Spec-pool": None}
POOL_TINY = (
    PoolShape("tiny-2d-k3s2p1", 2, 3, (9, 8), 3, 2, 1),
    PoolShape("tiny-1d", 2, 2, (11,), 2, 2),
)

#: elementwise ops (activations): name -> number of elements
ELEMENTWISE = {
    "4K (L1)": 4096,
    "256K (L2)": 256 * 1024,
    "1M (L3)": 1 << 20,
    "16M (DRAM)": 16 << 20,
}
ELEMENTWISE_QUICK = {"256K (L2)": None, "16M (DRAM)": None}
ELEMENTWISE_TINY = {"tiny-37": 37}

#: softmax and losses: name -> (rows, classes)
ROWS = {
    "MNIST-128x10": (128, 10),
    "ImageNet-256x1000": (256, 1000),
    "ImageNet-4096x1000": (4096, 1000),
}
ROWS_QUICK = {"MNIST-128x10": None, "ImageNet-4096x1000": None}
ROWS_TINY = {"tiny-5x7": (5, 7)}

#: the LeNet-5 training step: name -> batch size
LENET = {"LeNet5-train": 128}
LENET_QUICK = {"LeNet5-train": 32}
LENET_TINY = {"LeNet5-train/N3": 3}

#: dispatch overhead: tiny tensors where the time is all Python and library overhead
#: (the same in every suite)
DISPATCH = {
    "relu-8": 8,
    "gemm-4x4x4": GemmShape("gemm-4x4x4", 4, 4, 4),
    "linear-1x16x4": LinearShape("linear-1x16x4", 1, 16, 4),
    "conv2d-1x1x5x5-k3": ConvShape("conv2d-1x1x5x5-k3", 1, 1, (5, 5), 1, (3, 3)),
    "softmax-1x10": (1, 10),
}

# ---------------------------------------------------------------------------------------

T = TypeVar("T")


def _rename(shape: T, batch: int) -> T:
    """``shape`` with batch size ``batch``, the cut noted in its name."""
    return replace(shape, name=f"{shape.name}/N{batch}", n=batch)  # type: ignore[type-var]


def pick(
    suite: str,
    full: Sequence[T] | Mapping[str, T],
    quick: Mapping[str, int | None],
    tiny: Sequence[T] | Mapping[str, T],
) -> list[tuple[str, T]]:
    """The ``(name, shape)`` pairs of ``suite`` from a family's tables.

    ``full`` and ``tiny`` are sequences of named shapes or dicts ``name -> value``;
    ``quick`` maps the chosen names to a cut batch size (None keeps the batch; for a dict
    table the value replaces the entry when it is an int).
    """
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    table = tiny if suite == "tiny" else full
    items = list(table.items()) if isinstance(table, Mapping) else [(s.name, s) for s in table]
    if suite != "quick":
        return items
    chosen = []
    for name, shape in items:
        if name not in quick:
            continue
        batch = quick[name]
        if batch is None:
            chosen.append((name, shape))
        elif hasattr(shape, "n"):
            cut = _rename(shape, batch)
            chosen.append((cut.name, cut))
        else:
            chosen.append((f"{name}/N{batch}", batch))
    return chosen
