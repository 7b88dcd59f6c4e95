"""Which instruction-set level each CPU kernel family runs: chosen by measurement, once per
CPU, not fixed for the CPU the code was tuned on.

The kernels are compiled for several levels ("base": the portable build; "avx2": AVX2 +
FMA; "avx512": AVX-512F) and the CPU caps what can run (kernels/cpu/cpu_features.h).  But
what can run is not what is fastest: AVX-512 doubles the work per instruction, yet a core
with one 512-bit FMA port (AMD Zen 4) gains little from it, and a kernel bound by loads
or shuffles can lose.  So each family that has a choice times a small, representative
problem at every level this CPU supports, once, and keeps the fastest in the autotune
cache (keyed by CPU model and build: fastnn._autotune).  Until then, and whenever
autotuning is off, a static prior decides.

Overrides, strongest first: :func:`forced` (tests, experiments), the environment
variables ``FASTNN_ISA_<FAMILY>`` (e.g. ``FASTNN_ISA_WINOGRAD=avx2``), ``FASTNN_ISA``
(every family), and ``FASTNN_CONV_ISA`` (the direct convolution, as before).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from fastnn import _autotune, _threads

__all__ = ["FAMILIES", "LEVELS", "forced", "level", "level_code", "report", "supported"]

LEVELS = ("base", "avx2", "avx512")
#: Kernel families with a choice, and their static prior (capped by the CPU).  The
#: direct convolution's AVX-512 build measured slower than its AVX2 build on a Zen 4 and
#: faster on some layers of a Xeon, hence its conservative prior.  The two depthwise
#: variants are measured apart: on the AMD EPYC (Zen 4) the plane-by-plane kernel ran
#: fastest at AVX2 while the channels-in-lanes one ran MobileNetV2's 7x7 to 28x28 layers
#: 5-28% faster at AVX-512 (16 channels a vector), in the same process.  The
#: channel-blocked kernel's layers with too few channels for its AVX-512 blocks (16 per
#: group) run either its narrow AVX-512 tile ("avx512") or its AVX2 tile ("avx2"): the
#: same lanes per block, a 512-bit FMA for two 256-bit ones, which pays only where the
#: CPU has two 512-bit FMA ports (on the AMD EPYC, Zen 4: 0.93-1.01 of the time).
FAMILIES = {
    "gemm": "avx512",
    "conv_direct": "avx2",
    "conv_blocked": "avx512",
    "conv_blocked_narrow": "avx512",
    "winograd": "avx512",
    "depthwise": "avx2",
    "depthwise_lanes": "avx512",
    "elementwise": "avx512",
}
#: The kernel modules whose elementwise loops (kernels/cpu/elementwise_level.h: the
#: activations, softmax, losses, batch norm, the sensitivity ops...) follow the
#: "elementwise" family's level.  Its prior: on the AMD EPYC (Zen 4) the AVX-512 loops ran
#: sigmoid, tanh, silu and gelu 1.4-1.6x faster than the AVX2 ones, softmax and the
#: streaming ones (relu, batch norm) within 3%.
ELEMENTWISE_MODULES = (
    "activation",
    "backprop",
    "batch_norm",
    "conv_bias",
    "dense",
    "elementwise",
    "loss",
    "pool_adaptive",
    "softmax",
)

_chosen: dict[str, tuple[str, str]] = {}  # family -> (level, how it was chosen)
#: How a level stands in for a measurement put off while other processes held the CPUs
#: (a probe timed then measures them: on an Intel Xeon @ 2.80GHz beside a test run, the
#: direct convolution's portable build once timed fastest and was cached for the build,
#: and ran ~4x slower than AVX-512 afterwards: 128x1x28x28 -> 32, 2.8 ms against 0.72).
#: The measurement is tried again on a use RETRY_SECONDS later.
BUSY = "prior (machine busy: measured later)"
RETRY_SECONDS = 1.0
_retry_at: dict[str, float] = {}
_forced: dict[str, str] = {}
_lock = threading.RLock()


def supported() -> tuple[str, ...]:
    """The levels this CPU can run, lowest first."""
    from fastnn.kernels.cpu import conv_winograd

    return LEVELS[: conv_winograd.level(len(LEVELS) - 1) + 1]


def _check(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}; expected one of {tuple(FAMILIES)}")


def _cap(name: str) -> str:
    levels = supported()
    return name if name in levels else levels[-1]


def _from_env(family: str) -> str | None:
    names = [f"FASTNN_ISA_{family.upper()}", "FASTNN_ISA"]
    if family == "conv_direct":
        names.insert(1, "FASTNN_CONV_ISA")
    for var in names:
        value = os.environ.get(var, "").strip().lower()
        if value in LEVELS:
            return value
    return None


def level(family: str) -> str:
    """The level ``family`` runs at on this CPU ("base", "avx2" or "avx512")."""
    if family in _forced:
        return _forced[family]
    got = _chosen.get(family)
    if got is None or _retry_due(family, got):
        got = _resolve(family)
    return got[0]


def _retry_due(family: str, got: tuple[str, str]) -> bool:
    """Whether ``family``'s level ``got`` stands in for a measurement put off while the
    machine was busy, and its retry is due."""
    return got[1] is BUSY and time.monotonic() >= _retry_at[family]


def level_code(family: str) -> int:
    """:func:`level` as the kernels number it (0 base, 1 AVX2, 2 AVX-512)."""
    return LEVELS.index(level(family))


def report() -> dict[str, tuple[str, str]]:
    """family -> (level, how it was chosen: "forced", "environment", "measured",
    "cached", "prior" or :data:`BUSY`), resolving every family."""
    out = {}
    for family in FAMILIES:
        if family in _forced:
            out[family] = (_forced[family], "forced")
        else:
            level(family)
            out[family] = _chosen[family]
    return out


@contextlib.contextmanager
def forced(family: str, name: str) -> Iterator[str]:
    """Run ``family`` at level ``name`` (capped at what the CPU supports) inside the
    ``with`` block; yields the level in force."""
    _check(family)
    if name not in LEVELS:
        raise ValueError(f"unknown level {name!r}; expected one of {LEVELS}")
    capped = _cap(name)
    with _lock:
        previous = _forced.get(family)
        _forced[family] = capped
        _apply(family, capped)
    try:
        yield capped
    finally:
        with _lock:
            if previous is None:
                _forced.pop(family, None)
            else:
                _forced[family] = previous
            _apply(family, level(family))


def _resolve(family: str) -> tuple[str, str]:
    _check(family)
    with _lock:
        known = _chosen.get(family)
        if known is not None and not _retry_due(family, known):
            return known
        env = _from_env(family)
        if env is not None:
            got = (_cap(env), "environment")
        elif _autotune.autotune_enabled() and len(supported()) > 1:
            key = f"isa:{family}"
            cached = _autotune.lookup(key)
            if cached in supported():
                got = (cached, "cached")
            elif _threads.others_busy(1):  # no CPU free: the prior for now, nothing kept
                got = (_cap(FAMILIES[family]), BUSY)
                _retry_at[family] = time.monotonic() + RETRY_SECONDS
            else:
                got = (_measure(family), "measured")
                _autotune.store(key, got[0])
        else:
            got = (_cap(FAMILIES[family]), "prior")
        _chosen[family] = got
        _apply(family, got[0])
        return got


#: Called with (family, level code) whenever a level is put in force: other compiled
#: copies of the kernels (fastnn.jax's XLA handler library) follow the CPU backend's.
LEVEL_HOOKS: list[Callable[[str, int], None]] = []


def _apply(family: str, name: str) -> None:
    """Push a level into kernels that keep it as global state."""
    if family == "conv_direct":
        from fastnn.kernels.cpu import conv_direct

        conv_direct.set_isa(name)
    elif family == "elementwise":
        _set_elementwise(ELEMENTWISE_MODULES, LEVELS.index(name))
    for hook in LEVEL_HOOKS:
        hook(family, LEVELS.index(name))


def _set_elementwise(modules: tuple[str, ...], code: int) -> None:
    for module in modules:
        importlib.import_module(f"fastnn.kernels.cpu.{module}").set_elementwise_level(code)


def _reset() -> None:
    """Forget every choice (tests)."""
    with _lock:
        _chosen.clear()


# ---------------------------------------------------------------------------------------
# Measurement: a representative problem per family, every level in alternating rounds
# ---------------------------------------------------------------------------------------

#: Rounds of the measurement (each runs every level once); the best round counts.
ROUNDS = 5
#: A lower level replaces the prior only when it is faster by more than this fraction.
MARGIN = 0.03


def _measure(family: str) -> str:
    runs = _PROBES[family]()
    levels = supported()
    best = {name: float("inf") for name in levels}
    for name in levels:
        runs(name)  # warm-up
    for _ in range(ROUNDS):
        for name in levels:
            start = time.perf_counter()
            runs(name)
            best[name] = min(best[name], time.perf_counter() - start)
    prior = _cap(FAMILIES[family])
    fastest = min(levels, key=lambda name: best[name])
    return fastest if best[fastest] < (1 - MARGIN) * best[prior] else prior


def _probe_gemm() -> Callable[[str], None]:
    """A mix of the products dense layers make (batch x in -> out, weight transposed):
    one shape alone misleads, since tile widths suit some widths of the result and not
    others (the AVX-512 tile is 32 columns wide)."""
    from fastnn.kernels.cpu import gemm

    rng = np.random.default_rng(0)
    shapes = ((64, 784, 300), (256, 256, 256), (1024, 100, 16))
    pairs = [
        (
            rng.standard_normal((m, k), dtype=np.float32),
            rng.standard_normal((n, k), dtype=np.float32),
        )
        for m, k, n in shapes
    ]

    def run(name: str) -> None:
        for a, w in pairs:
            gemm.blocked(a, w, None, 1.0, 0.0, False, True, 0, None, None, 1, LEVELS.index(name))

    return run


def _probe_conv_direct() -> Callable[[str], None]:
    from fastnn._backends.cpu import _conv_direct as host
    from fastnn.kernels.cpu import conv_direct

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 28, 28), dtype=np.float32)
    w = rng.standard_normal(32 * 8 * 25, dtype=np.float32)
    shape = (2, 8, 28, 28, 32, 1, 5, 5, 24, 24, 1, 1, 1, 1, 0, 0, 0, 0)

    def run(name: str) -> None:
        previous = conv_direct.current_isa()
        conv_direct.set_isa(name)
        try:
            host.forward(x, w, None, shape, 1)
        finally:
            conv_direct.set_isa(previous)

    return run


def _probe_conv_blocked() -> Callable[[str], None]:
    """Two layers of the kinds the channel-blocked kernel serves (a strided 3x3 and a
    pointwise one), blocked as the plan blocks real layers."""
    from fastnn.kernels.cpu import conv_blocked as k

    rng = np.random.default_rng(0)
    layers = []
    for c, hw, kk, r, st, pad in ((32, 28, 64, 3, 2, 1), (64, 14, 64, 1, 1, 0)):
        x = rng.standard_normal((2, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal((kk, c, r, r), dtype=np.float32)
        ho = (hw + 2 * pad - r) // st + 1
        y = np.empty((2, kk, ho, ho), dtype=np.float32)
        layers.append((x, w, y, r, st, pad, ho))

    def run(name: str) -> None:
        code = LEVELS.index(name)
        for x, w, y, r, st, pad, ho in layers:
            wp = k.pack(w, 1, code, 1)
            k.convolve(
                x, wp, None, y, 1, (r, r), (st, st), (1, 1), (pad, pad), pad == 0,
                2 if ho < 8 else 4, 64, x.shape[1], code, 1,
            )  # fmt: skip

    return run


def _probe_conv_blocked_narrow() -> Callable[[str], None]:
    """Layers of 16 output channels, as the plan blocks them: LeNet-5's C3 (6 -> 16,
    5x5 on 14x14) and a pointwise 32 -> 16 on 28x28 (MobileNetV2's first projection);
    "avx512" runs the narrow AVX-512 tile, the others their level's own tile."""
    from fastnn._backends.cpu import _conv_blocked as host
    from fastnn.kernels.cpu import conv_blocked as k

    rng = np.random.default_rng(0)
    layers = []
    for c, hw, r in ((6, 14, 5), (32, 28, 1)):
        x = rng.standard_normal((2, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal((16, c, r, r), dtype=np.float32)
        ho = hw - r + 1
        y = np.empty((2, 16, ho, ho), dtype=np.float32)
        layers.append((x, w, y, r, ho))

    def run(name: str) -> None:
        code = host.NARROW if name == "avx512" else LEVELS.index(name)
        for x, w, y, r, ho in layers:
            wp = k.pack(w, 1, code, 1)
            k.convolve(
                x, wp, None, y, 1, (r, r), (1, 1), (1, 1), (0, 0), True, ho, 1, x.shape[1],
                code, 1,
            )  # fmt: skip

    return run


def _probe_winograd() -> Callable[[str], None]:
    """Layers of the kinds Winograd serves, blocked as the plan blocks them: F(4x4) on a
    large map with few channels (64 x 56x56: full vectors of tiles, transforms dominate)
    and on a small map with many (256 x 14x14: a tile row fills a quarter of an AVX-512
    vector, the products dominate).  One layer alone misleads: a 64 x 28x28 layer picked
    AVX2 on an "Intel(R) Xeon(R) Processor @ 2.80GHz" whose ResNet layers all ran
    2-39% faster at AVX-512."""
    from fastnn._backends.cpu import _conv_winograd as host
    from fastnn.kernels.cpu import conv_winograd as k

    rng = np.random.default_rng(0)
    layers = []
    for n, c, hw in ((1, 64, 56), (2, 256, 14)):
        x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal(c * c * 9, dtype=np.float32)
        y = np.empty(n * c * hw * hw, dtype=np.float32)
        layers.append((x, w, y, n, c, hw))

    def run(name: str) -> None:
        code = LEVELS.index(name)
        for x, w, y, n, c, hw in layers:
            p = host.plan(n, c, c, 1, hw, hw, 4, 4, 1, isa=code)
            k.convolve(x, None, w, False, None, y, c, 1, hw, hw, 1, 1, 4, code, p.pb, p.kc, 1, 1)

    return run


def _probe_depthwise() -> Callable[[str], None]:
    from fastnn.kernels.cpu import conv_depthwise as k

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 28, 28), dtype=np.float32)
    w = rng.standard_normal(64 * 9, dtype=np.float32)
    y = np.empty(2 * 64 * 28 * 28, dtype=np.float32)
    shape = (2, 64, 28, 28, 64, 64, 3, 3, 28, 28, 1, 1, 1, 1, 1, 1, 1, 1)
    return lambda name: k.forward(x, w, None, y, shape, 1, LEVELS.index(name))


def _probe_depthwise_lanes() -> Callable[[str], None]:
    """The channels-in-lanes variant on the small planes it serves: a 7x7 layer and a
    strided 14x14 one (forward and input gradient), wide in channels as such layers are."""
    from fastnn.kernels.cpu import conv_depthwise as k

    rng = np.random.default_rng(0)
    layers = []
    for c, hw, st in ((128, 7, 1), (96, 14, 2)):
        ho = (hw - 1) // st + 1
        x = rng.standard_normal((2, c, hw, hw), dtype=np.float32)
        w = rng.standard_normal(c * 9, dtype=np.float32)
        y = np.empty(2 * c * ho * ho, dtype=np.float32)
        gx = np.empty(x.size, dtype=np.float32)
        shape = (2, c, hw, hw, c, c, 3, 3, ho, ho, st, st, 1, 1, 1, 1, 1, 1)
        layers.append((x, w, y, gx, shape))

    def run(name: str) -> None:
        code = LEVELS.index(name)
        for x, w, y, gx, shape in layers:
            k.forward(x, w, None, y, shape, 1, code, True)
            k.backward_input(y, w, gx, shape, 1, code, True)

    return run


def _probe_elementwise() -> Callable[[str], None]:
    """The loops whose speed the level decides: exp-based activations and a softmax over
    rows (streaming ones such as relu run at memory speed at every level)."""
    from fastnn.kernels.cpu import activation, softmax

    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 14, dtype=np.float32)
    out = np.empty_like(x)
    rows = rng.standard_normal((64, 100), dtype=np.float32)
    modules = ("activation", "softmax")

    def run(name: str) -> None:
        previous = activation.elementwise_level()
        _set_elementwise(modules, LEVELS.index(name))
        try:
            activation.activate(activation.SIGMOID, x, 1, out)
            activation.activate(activation.TANH, x, 1, out)
            activation.activate_extra(activation.GELU, x, 1, out=out)
            softmax.forward(1, rows, 1, 1)
        finally:
            _set_elementwise(modules, previous)

    return run


_PROBES: dict[str, Callable[[], Callable[[str], None]]] = {
    "gemm": _probe_gemm,
    "conv_direct": _probe_conv_direct,
    "conv_blocked": _probe_conv_blocked,
    "conv_blocked_narrow": _probe_conv_blocked_narrow,
    "winograd": _probe_winograd,
    "depthwise": _probe_depthwise,
    "depthwise_lanes": _probe_depthwise_lanes,
    "elementwise": _probe_elementwise,
}
