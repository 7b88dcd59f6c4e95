"""GEMM on the CPU: fastnn's blocked kernel or SciPy's BLAS, whichever is faster for the
shape, and the fused epilogues (bias + activation, multiply by f'(u)) the dense ops need.

Both engines live in kernels/cpu/gemm.pyx.  Which one runs a product (and, for small
products, whether on the team or on one thread) is measured on the first product of each
shape class and remembered in fastnn's autotune cache (:func:`_choose_engine`);
:func:`prefers_blas` is the prior.  :func:`matmul` is the one entry point the dense and
backprop wrappers use.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time
from collections.abc import Iterator

import numpy as np

from fastnn import _autotune, _isa, _threads
from fastnn._machine import best_seconds, l2_bytes, llc_bytes
from fastnn._threads import (
    blas_for_call,
    get_num_threads,
    limit_blas_threads,
    sync_blas_threads,
    team_size,
)
from fastnn.kernels.cpu import gemm as _k

sync_blas_threads()


#: The best instruction set the blocked kernel can run with on this CPU ("avx2",
#: "avx512", ...); the one it runs is measured once per CPU (fastnn._isa, family "gemm").
VARIANT = _k.variant_name()


#: Bounds of the measured flops-per-thread threshold (a busy or odd machine can give a
#: wild measurement; outside these a split is surely worth it, or surely not).
FLOPS_PER_THREAD_RANGE = (2.0**16, 2.0**23)
_calibrated = False
#: Called with :func:`calibration`'s values after each calibration: other
#: compiled copies of the GEMM (fastnn.jax's XLA handler library) follow this process's
#: measurement.
CALIBRATION_HOOKS: list = []
#: When a calibration put off on a busy machine is tried again (time.monotonic()).
_next_try = 0.0
RETRY_SECONDS = 1.0


def calibrate(force: bool = False) -> float:
    """Measure, once per process on the first product, where this machine's GEMM paths
    cross over, and set them:

    - the flops from which a second thread pays: a split into two halves saves half the
      single-thread time and costs one fork-join, so it pays from
      ``2 * fork_join * rate`` (rate: one thread's blocked-GEMM FLOP/s on a 96^3
      product), clamped to FLOPS_PER_THREAD_RANGE;
    - the longest reduction the unpacked path runs (:func:`_measure_short_k`);
    - how far ahead a few-row product prefetches the rows of B it reads in place
      (:func:`_measure_few_prefetch`);
    - the widest product with a transposed A that runs column tiles rather than packed
      tiles (:func:`_measure_narrow_t_n`);
    - at AVX-512, the speed of the 3-vector register tile against the 2-vector one
      (:func:`_t48_time`: measured once per CPU and build, then read from the autotune
      cache), which decides the tile of each product;
    - and, measured by nothing, the cache sizes the system reports (a few-row product whose B
      is larger than the last level packs it; half the L2 holds the B panels a product
      runs past each A micro-panel).

    Together a few milliseconds (the tile speed a few more, the first time).  Returns the
    flops per thread.  While other processes hold CPUs (and unless ``force``), nothing is
    measured (a fork-join timed then measures them): the kernel's defaults stay, and
    :func:`matmul` tries again a second later.
    """
    global _calibrated, _next_try
    for module in TILE_MODULES:  # what the system reports: nothing to time
        kernels = importlib.import_module(f"fastnn.kernels.cpu.{module}")
        kernels.set_llc_bytes(float(llc_bytes()))
        kernels.set_b_block_bytes(B_BLOCK_L2 * l2_bytes())
    if not force and _threads.others_busy(get_num_threads()):
        _next_try = time.monotonic() + RETRY_SECONDS
        return _k.flops_per_thread()
    _calibrated = True
    level = _isa.level_code("gemm")
    overhead = _k.fork_join_seconds(max(2, get_num_threads()), 64)  # the cap: calibration
    a = np.ones((96, 96), dtype=np.float32)
    args = (a, a, None, 1.0, 0.0, False, False, 0, None, None, 1, level)
    rate = 2.0 * 96**3 / best_seconds(lambda: _k.blocked(*args))
    low, high = FLOPS_PER_THREAD_RANGE
    flops = min(high, max(low, 2.0 * overhead * rate))
    _k.set_flops_per_thread(flops)
    _k.set_short_k(_measure_short_k(level))
    ratio = _t48_time(level)
    ahead = _measure_few_prefetch(level)
    _few_prefetch_source[0] = "measured"
    narrow = _measure_narrow_t_n(level)
    _narrow_t_source[0] = "measured"
    for module in TILE_MODULES:
        tuned = importlib.import_module(f"fastnn.kernels.cpu.{module}")
        tuned.set_t48_time(ratio)
        tuned.set_few_prefetch(ahead)
        tuned.set_narrow_t_n(narrow)
    forget_plain()  # their runners split work by the old threshold
    for hook in CALIBRATION_HOOKS:
        hook(*calibration())
    return flops


def calibration() -> tuple[float, int, float, int, int]:
    """This process's GEMM calibration as the kernels hold it: (flops per thread, short
    k, tile speed, few-row prefetch rows, column-tile width), the arguments of each of
    CALIBRATION_HOOKS."""
    return (
        _k.flops_per_thread(),
        _k.short_k(),
        _k.t48_time(),
        _k.few_prefetch(),
        _k.narrow_t_n(),
    )


def ensure_calibrated() -> None:
    """:func:`calibrate` unless this process has (or a try put off on a busy machine
    is not due yet): for every caller of the blocked GEMM, before its first product."""
    if not _calibrated and time.monotonic() >= _next_try:
        calibrate()


#: The kernel modules that compile the blocked GEMM in, each with its own copy of the
#: tile speed (kernels/cpu/gemm_tuning.pxi).
TILE_MODULES = ("gemm", "conv_pointwise", "conv_im2col")
#: Share of the L2 cache that the packed B panels run past each A micro-panel fill
#: (kernels/cpu/gemm_blocked.h: fnn_gemm_b_block_bytes): the rest holds the output tiles,
#: the A block's next panels and what the hardware prefetches.
B_BLOCK_L2 = 0.5
#: The autotune cache's key for the tile speed (the cache adds the CPU model and build).
T48_KEY = "gemm:t48-time"
#: Bounds of a believable tile speed ratio.
T48_RANGE = (0.5, 2.0)
#: Rounds of the tile speed measurement, each timing both tiles in turn; the ratio is the
#: median of the rounds' ratios (a best over three rounds read 1.14 once on an Intel Xeon
#: @ 2.80GHz where every other reading was 0.86-0.95, and was cached for the build).
T48_ROUNDS = 5
#: How the tile speed in force was set (see :func:`tile_speed`).
_t48_source = "prior"


def _t48_time(level: int) -> float:
    """Time per multiply-add of AVX-512's 3-vector register tile relative to its
    2-vector tile: both timed on one thread, alternately, on a 192 x 960 x 256 product
    (whole tiles of either width; the median of T48_ROUNDS rounds' ratios), once per CPU
    and build (the autotune cache keeps it).
    1.0, the prior (each product then takes the tile that pads its columns less), where
    the AVX-512 kernel does not run or autotuning is off."""
    global _t48_source
    if _k.variant_name(level) != "avx512":
        _t48_source = "unused (no AVX-512 kernel)"
        return 1.0
    known = _autotune.lookup(T48_KEY)
    if known is not None:
        with contextlib.suppress(ValueError):
            ratio = float(known)
            _t48_source = "cached"
            return ratio
    if not _autotune.autotune_enabled():
        _t48_source = "prior"
        return 1.0
    a = np.ones((192, 256), dtype=np.float32)
    b = np.ones((256, 960), dtype=np.float32)
    ratios = []
    for _ in range(T48_ROUNDS):
        took = {}
        for name in ("avx512-t32", "avx512-t48"):
            args = (a, b, None, 1.0, 0.0, False, False, 0, None, None, 1, _k.VARIANTS[name])
            took[name] = best_seconds(lambda args=args: _k.blocked(*args), warm_up=True)
        ratios.append(took["avx512-t48"] / took["avx512-t32"])
    low, high = T48_RANGE
    ratio = min(high, max(low, float(np.median(ratios))))
    _autotune.store(T48_KEY, f"{ratio:.4f}")
    _t48_source = "measured"
    return ratio


def tile_speed() -> tuple[float, str]:
    """The time per multiply-add of the 3-vector tile relative to the 2-vector one, and
    how it was set ("measured", "cached", "prior", or unused), calibrating first (for
    ``fastnn info``)."""
    ensure_calibrated()
    return _k.t48_time(), _t48_source


#: Reduction lengths the unpacked-path measurement tries, shortest first.  Not beyond 16:
#: at k = 32 the unpacked path's time against the packed one depends on the shape more
#: than one measurement can see (two threads, Intel Xeon @ 2.80GHz, unpacked / packed:
#: 2048x2048 0.55, 257x257 0.75, 512x512 0.94, 64x4096 1.31, 8x4096 1.75; at k = 16
#: 0.67-0.72 on large results, 1.00-1.15 on a few rows).
SHORT_K_TRIALS = (1, 2, 4, 8, 16)


def _measure_short_k(level: int) -> int:
    """The longest k in SHORT_K_TRIALS at which a one-thread 256 x 1024 product runs
    faster unpacked than blocked (each timed twice, alternately), trying the lengths in
    order and stopping at the first where packing wins (0: never; then only k = 0
    products, which read nothing, run unpacked).  1024 columns put B's rows 4 KiB apart,
    the unpacked path's worst case in place (it copies them apart where rows enough
    use them)."""
    out = 0
    for k in SHORT_K_TRIALS:
        a = np.ones((256, k), dtype=np.float32)
        b = np.ones((k, 1024), dtype=np.float32)

        def run(a=a, b=b) -> None:
            _k.blocked(a, b, None, 1.0, 0.0, False, False, 0, None, None, 1, level)

        unpacked = packed = float("inf")
        for _ in range(2):
            _k.set_short_k(k)
            unpacked = min(unpacked, best_seconds(run))
            _k.set_short_k(k - 1)
            packed = min(packed, best_seconds(run))
        if unpacked >= packed:
            break
        out = k
    return out


#: Prefetch distances (rows of B) that :func:`_measure_few_prefetch` tries, the prior
#: (gemm_blocked.h's fnn_gemm_few_prefetch) first.  Two threads, Intel(R) Xeon(R)
#: Processor @ 2.80GHz, time at 8 rows / none: 7x1024x1024 0.81, 8x256x4096 0.70,
#: 16x512x512 0.84; 16 rows lost 1.35x on 7x1024x1024 (rows 4 KiB apart share an L1
#: set: lines fetched too early are evicted before use).
FEW_PREFETCH_TRIALS = (8, 0, 4, 16)
#: A distance replaces the prior only when it is faster by more than this fraction.
FEW_PREFETCH_MARGIN = 0.03
#: How the distance in force was set: "prior" until a calibration measures it.
_few_prefetch_source = ["prior"]


def few_prefetch() -> tuple[int, str]:
    """(rows of B ahead that a few-row product prefetches, "measured" or "prior"),
    calibrating first (unless the machine is busy: then the prior)."""
    ensure_calibrated()
    return _k.few_prefetch(), _few_prefetch_source[0]


def _measure_few_prefetch(level: int) -> int:
    """The prefetch distance in FEW_PREFETCH_TRIALS at which a one-thread 7 x 512 @ 512 x
    1024 product (one row tile, B read in place, its rows 4 KiB apart) runs fastest: the
    best of three alternating rounds each; the prior unless another beats it by
    FEW_PREFETCH_MARGIN.  About a millisecond."""
    a = np.ones((7, 512), dtype=np.float32)
    b = np.ones((512, 1024), dtype=np.float32)

    def run() -> None:
        _k.blocked(a, b, None, 1.0, 0.0, False, False, 0, None, None, 1, level)

    best = dict.fromkeys(FEW_PREFETCH_TRIALS, float("inf"))
    for _ in range(3):
        for rows in FEW_PREFETCH_TRIALS:
            _k.set_few_prefetch(rows)
            best[rows] = min(best[rows], best_seconds(run, repeats=2))
    prior = FEW_PREFETCH_TRIALS[0]
    fastest = min(best, key=lambda rows: best[rows])
    return fastest if best[fastest] < (1 - FEW_PREFETCH_MARGIN) * best[prior] else prior


#: Widths (columns of result) that :func:`_measure_narrow_t_n` tries, narrowest first:
#: whole tiles of 8 columns, up to 32, where the packed tiles (16-48 wide) are 67-100%
#: full.  The prior (gemm_blocked.h: fnn_gemm_narrow_t_n) is 24.  AMD EPYC, two threads,
#: TN, time column tiles / packed: 1024 x 7 x 1024 0.23, 1024 x 16 x 64 0.53, 300 x 16 x
#: 1024 0.44, 1024 x 24 x 256 0.66, 4096 x 24 x 64 0.79; 1024 x 32 x 256 0.85 but 256 x 32 x
#: 64 1.08: at 32 columns the short reductions decide, against a packed kernel that a
#: core with two FMA ports runs faster still.
NARROW_T_TRIALS = (8, 16, 24, 32)
#: The (rows, reduction) of the products each width is timed on: a short reduction over
#: many rows (where column tiles gain least), and a long one over a few tiles of rows.
NARROW_T_SHAPES = ((1024, 64), (256, 512))
#: How the width in force was set: "prior" until a calibration measures it.
_narrow_t_source = ["prior"]


def narrow_t_n() -> tuple[int, str]:
    """(the widest product with a transposed A that runs column tiles, "measured" or
    "prior"), calibrating first (unless the machine is busy: then the prior)."""
    ensure_calibrated()
    return _k.narrow_t_n(), _narrow_t_source[0]


def _measure_narrow_t_n(level: int) -> int:
    """The widest of NARROW_T_TRIALS at which column tiles beat packed tiles on every
    NARROW_T_SHAPES product (op(A) = a.T, one thread; the best of three alternating
    rounds each), trying the widths in order and stopping at the first where packing wins
    (0: never).  A few milliseconds."""
    out = 0
    for n in NARROW_T_TRIALS:
        won = True
        for rows, k in NARROW_T_SHAPES:
            a = np.ones((k, rows), dtype=np.float32)
            b = np.ones((k, n), dtype=np.float32)

            def run(a=a, b=b) -> None:
                _k.blocked(a, b, None, 1.0, 0.0, True, False, 0, None, None, 1, level)

            tiles = packed = float("inf")
            for _ in range(3):
                _k.set_narrow_t_n(n)
                tiles = min(tiles, best_seconds(run, repeats=2))
                _k.set_narrow_t_n(n - 1)
                packed = min(packed, best_seconds(run, repeats=2))
            won = won and tiles < packed
        if not won:
            break
        out = n
    _k.set_narrow_t_n(out)
    return out


def prefers_blas(m: int, n: int, k: int, epilogue: bool) -> bool:
    """The prior for whether SciPy's BLAS beats the blocked kernel for an (m x k) @ (k x n)
    product: the engine timed first on a new shape class, and the choice where nothing is
    timed (autotuning off, products over MEASURE_FLOPS_LIMIT).

    Measured on the development machine (AVX2, Zen 4), one thread, CPU time, interleaved
    (bench/scripts/cpu_dense.py gemm-engines --threads 1 --clock thread): the blocked
    kernel is within noise of OpenBLAS on most shapes and ahead on small, skinny and
    transposed ones (few rows of A: 35 x 8457 x 2560 +28%; 512^3 +10%; 4096 x 128 x 4096
    TN +14%); OpenBLAS is ahead by 7-11% on large squares
    (1536^3, 2048^3).  A fused epilogue saves the blocked kernel one pass over the
    result, worth ~40 / K of a GEMM's time, so with one BLAS needs a deeper K to win.
    Without AVX2 the blocked kernel is a portable build with no tuning: BLAS, with its
    per-CPU kernels, wins there.  A result with one row or one column (a matrix-vector
    product) runs on the blocked kernel's thin path, which reads the matrix once in
    place as BLAS's gemv does (2 threads: 1024 x 1024 @ 1024 x 1 33 us, BLAS 39 us).
    """
    if not _k.blas_fits(m, n, k):
        return False
    if VARIANT == "generic":
        return m * n * k >= 32**3
    return min(m, n) >= 1024 and k >= (1024 if epilogue else 512)


#: Products of more flops than this are not timed on first use (timing both engines
#: would take over a second); the prior decides.  Below it the timing is kept in the
#: autotune cache per CPU and build: the prior, fitted on one CPU, picks BLAS for 1024^3,
#: which on an Intel Xeon @ 2.80GHz (two threads) takes 9.1 ms there against 7.6 ms on
#: the blocked kernel's 3-vector tile.
MEASURE_FLOPS_LIMIT = 1e10
#: Products up to this many flops have their engine timed again once in each process,
#: whatever the cache remembers: timing both engines then costs a few milliseconds, and
#: a verdict reached on a busy machine (or by an older build) lasts one process only.
REMEASURE_FLOPS_LIMIT = 2e7
#: The engines a choice can name: (BLAS?, on one thread?).  The one-thread variants are
#: candidates only for products small enough to re-time each process (a team's fork-join
#: or a memory-bound product can make one thread the faster way, whatever the flops).
ENGINES = {
    "blas": (True, False),
    "blocked": (False, False),
    "blas-1": (True, True),
    "blocked-1": (False, True),
}
#: (m, n, k, transposes, epilogue, dtype, threads, autotune generation) -> ENGINES value
_engine_memo: dict[tuple, tuple[bool, bool]] = {}
_ENGINE_MEMO_LIMIT = 4096
#: "blas" or "blocked" to force an engine (tests; :func:`forced_engine`), None to choose.
_forced: list[str | None] = [None]


def engine_forced() -> bool:
    """Whether :func:`forced_engine` pins the engine now."""
    return _forced[0] is not None


@contextlib.contextmanager
def forced_engine(name: str | None) -> Iterator[None]:
    """Run every product inside the ``with`` block on engine ``name`` ("blas" or
    "blocked"; None: the measured choice).  Small dense layers then take the GEMMs too,
    never the plain loops of _small_dense."""
    if name not in (None, "blas", "blocked"):
        raise ValueError(f"engine must be 'blas', 'blocked' or None, got {name!r}")
    previous = _forced[0]
    _forced[0] = name
    try:
        yield
    finally:
        _forced[0] = previous


def _bucket(x: int) -> int | tuple[int, int]:
    """Sizes up to 16 as they are, larger ones in half-octaves (two leading bits)."""
    if x <= 16:
        return x
    bits = x.bit_length()
    return (bits, (x >> (bits - 2)) & 1)


def _choose_engine(key: tuple, args: tuple, epilogue: bool) -> tuple[bool, bool]:
    """(BLAS?, on one thread?) for the products of ``key`` (see :func:`matmul`): measured
    on the first product of its shape class (sizes in half-octaves, transposes, epilogue,
    dtype, threads) through fastnn's autotune cache, which keeps the answer across
    processes; :func:`prefers_blas` is the prior (the first candidate timed, and the
    answer when autotuning is off, the product too large to time or the machine busy).
    Products small enough to re-time in each process also try both engines on one
    thread when the team has more."""
    m, n, k = key[:3]
    if not _k.blas_fits(m, n, k):
        choice = ENGINES["blocked"]
    else:
        name, engines = _engine_candidates(key, args, epilogue)
        first = next(iter(engines))
        flops = 2.0 * m * n * k
        if not _autotune.autotune_enabled() or flops > MEASURE_FLOPS_LIMIT:
            choice = ENGINES[first]
        elif _threads.others_busy(key[-2]):
            # other processes hold CPUs: a timing now would measure them, and the cache
            # would keep its verdict; this process runs the remembered choice or the prior
            choice = ENGINES.get(_autotune.lookup(name) or "", ENGINES[first])
        else:
            again = flops <= REMEASURE_FLOPS_LIMIT
            choice = ENGINES[_autotune.choose(name, engines, repeats=5, remeasure=again)]
            if again and key[-2] > 1 and flops >= 2.0 * _k.flops_per_thread():
                _unconfirmed[key] = (_now() + CONFIRM_AFTER[0], 0)
    if len(_engine_memo) >= _ENGINE_MEMO_LIMIT:
        _engine_memo.clear()
        _unconfirmed.clear()
    _engine_memo[key] = choice
    return choice


def _engine_candidates(key: tuple, args: tuple, epilogue: bool) -> tuple[str, dict]:
    """The autotune key of ``key``'s shape class and its candidates (name -> a
    zero-argument run of ``args``), the prior's favourite first; products small enough
    to re-time in each process also try both engines on one thread when the team has
    more."""
    m, n, k = key[:3]
    prior = prefers_blas(m, n, k, epilogue)
    shape_class = (_bucket(m), _bucket(n), _bucket(k), *key[3:-1])
    name = "gemm-engine|" + "|".join(map(str, shape_class)).replace(" ", "")
    order = ["blas", "blocked"] if prior else ["blocked", "blas"]
    if 2.0 * m * n * k <= REMEASURE_FLOPS_LIMIT and key[-2] > 1:
        order += [f"{engine}-1" for engine in order]
    return name, {engine: _engine_run(ENGINES[engine], args) for engine in order}


#: Seconds after a product's engine was timed in this process at which it is timed once
#: more (:func:`_autotune.reconsider`: each candidate's best over every timing counts).
#: Only products that the team splits, whose candidates include one-thread runs: a
#: 2-vCPU VM can run one of its vCPUs slow for seconds at a time (the same one-thread
#: product measured 91 us on one vCPU and 200 us on the other, AMD EPYC), and a timing
#: taken then chose one thread for a product that runs 1.7x faster on two (linear
#: 1024x100->10: 59 us against 34).  The delays grow tenfold, so a slow spell of any
#: length is passed by one of them; three timings of a few milliseconds each at most.
CONFIRM_AFTER = (0.2, 2.0, 20.0)
#: matmul keys timed in this process and not yet timed again at every CONFIRM_AFTER
#: delay -> (when the next timing is due, by _now; its index in CONFIRM_AFTER).
_unconfirmed: dict[tuple, tuple[float, int]] = {}
#: The clock of CONFIRM_AFTER (tests replace it).
_now = time.monotonic
_k.set_clock(lambda: _now())  # the lean paths' deadlines read it too
_k.set_blas_pin(limit_blas_threads())  # the lean paths split BLAS products inside it


def _confirm(key: tuple, args: tuple, epilogue: bool, choice: tuple[bool, bool]) -> tuple:
    """``key``'s engine, timed again when its next CONFIRM_AFTER delay has passed (put
    off while other processes hold CPUs)."""
    due, step = _unconfirmed[key]
    now = _now()
    if now < due:
        return choice
    if _threads.others_busy(key[-2]):
        _unconfirmed[key] = (now + CONFIRM_AFTER[step], step)
        return choice
    name, engines = _engine_candidates(key, args, epilogue)
    choice = ENGINES[_autotune.reconsider(name, engines, repeats=5)]
    _engine_memo[key] = choice
    if step + 1 < len(CONFIRM_AFTER):
        _unconfirmed[key] = (_now() + CONFIRM_AFTER[step + 1], step + 1)
    else:
        del _unconfirmed[key]
    return choice


def _engine_run(choice: tuple[bool, bool], args: tuple):
    """A zero-argument callable running matmul's ``args`` on the engine ``choice``
    (an ENGINES value) names."""
    use_blas, alone = choice
    engine_args = args[:-1] + (1,) if alone else args
    engine = _blas if use_blas else _blocked
    return lambda: engine(*engine_args)


def _blas_plan(m: int, n: int, k: int, threads: int) -> str:
    """How _blas runs an (m x k) @ (k x n) product on ``threads``: "split" (blocks over
    our threads, BLAS pinned to one), "threaded" (one call with BLAS's own threads: too
    narrow to split, yet two threads' work), or "one" (one call on the BLAS as it is: a
    small product must not switch SciPy's BLAS between 1 and N threads when products of
    both kinds take turns, two thread-count changes, ~5 us)."""
    if _k.blas_threads(m, n, k, threads) != 1:
        return "split"
    if threads > 1 and 2.0 * m * n * k >= 2.0 * _k.flops_per_thread():
        return "threaded"
    return "one"


def _blas(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads) -> np.ndarray:
    """The product through SciPy's BLAS, then the epilogue in a pass of its own."""
    m = a.shape[1] if trans_a else a.shape[0]
    k = a.shape[0] if trans_a else a.shape[1]
    n = b.shape[0] if trans_b else b.shape[1]
    plan = _blas_plan(m, n, k, threads)
    if plan != "split":  # one call, outside any parallel region
        if plan == "threaded":
            blas_for_call()
        out = _k.blas(a, b, c, alpha, beta, trans_a, trans_b, 1)
    else:
        # Our threads each make a one-thread BLAS call on a block of the result: an
        # OpenBLAS pool left spinning after a threaded call would slow the kernels after.
        with limit_blas_threads():
            out = _k.blas(a, b, c, alpha, beta, trans_a, trans_b, threads)
    if act != 0 or bias is not None or u is not None:
        _k.epilogue(out, act, bias, u, threads)
    return out


def _blocked(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads) -> np.ndarray:
    """The product on fastnn's blocked kernel, the epilogue fused into its write-out."""
    level = _isa.level_code("gemm")  # measured once per CPU (fastnn._isa)
    return _k.blocked(a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads, level)


#: (a.shape, b.shape, trans_a, trans_b, dtype, threads, autotune generation) -> (the
#: runner of the plain product op(a) @ op(b) on the engine chosen for it, and its matmul
#: key while that key awaits a re-timing, else None) (see :func:`plain`).
_plain_memo: dict[tuple, tuple] = {}


def _plain_runner(
    m: int, n: int, k: int, ta: bool, tb: bool, choice: tuple[bool, bool], threads: int
):
    """A two-argument function computing ``op(a) @ op(b)`` (op transposing as ``ta``
    and ``tb`` say) for an (m x k) @ (k x n) product the way :func:`matmul` would with
    the engine ``choice`` names."""
    use_blas, alone = choice
    threads = 1 if alone else threads
    if not use_blas:
        return lambda a, b: _blocked(a, b, None, 1.0, 0.0, ta, tb, 0, None, None, threads)
    plan = _blas_plan(m, n, k, threads)
    if plan == "split":
        return lambda a, b: _blas(a, b, None, 1.0, 0.0, ta, tb, 0, None, None, threads)
    blas, for_call = _k.blas, blas_for_call  # _blas's one-call path without its checks
    if plan == "one":
        return lambda a, b: blas(a, b, None, 1.0, 0.0, ta, tb, 1)

    def threaded_call(a, b):
        for_call()
        return blas(a, b, None, 1.0, 0.0, ta, tb, 1)

    return threaded_call


def plain(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` (op transposing as ``trans_a`` and ``trans_b`` say) for 2-d
    float arrays of one dtype whose shapes chain: :func:`matmul` with no options but the
    transposes, for small products whose time is mostly the call's own.  The
    first product of each shape (per thread count and autotune setting) goes through
    matmul, which chooses the engine; later ones call that engine's runner directly,
    except the one in which the engine's next re-timing (CONFIRM_AFTER) falls due: that
    goes through matmul again, and the runner follows its verdict."""
    if _forced[0] is not None:
        return matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    threads = team_size()
    generation = _autotune.generation()
    out = _k.plain(a, b, threads, generation, trans_a, trans_b)  # a remembered engine
    if out is not None:
        return out
    key = (a.shape, b.shape, trans_a, trans_b, a.dtype.char, threads, generation)
    memo = _plain_memo.get(key)
    if memo is not None:
        run, pending = memo
        # a product whose engine awaits a re-timing goes through matmul when it is due,
        # and once more after its last one (its runner then joins the lean path)
        if pending is None or (pending in _unconfirmed and _now() < _unconfirmed[pending][0]):
            return run(a, b)
    out = matmul(a, b, trans_a=trans_a, trans_b=trans_b)
    if _calibrated:  # else the threshold that splits the work may still change
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        n = b.shape[0] if trans_b else b.shape[1]
        engine_key = matmul_key(m, n, k, trans_a, trans_b, False, a.dtype.char, threads,
                                generation)  # fmt: skip
        choice = _engine_memo.get(engine_key)
        if choice is not None:
            if len(_plain_memo) >= _ENGINE_MEMO_LIMIT:
                _plain_memo.clear()
            pending = engine_key if engine_key in _unconfirmed else None
            runner = _plain_runner(m, n, k, trans_a, trans_b, choice, threads)
            _plain_memo[key] = (runner, pending)
            way = lean_way(engine_key)
            if way is not None:
                _k.remember_plain(m, n, k, a.dtype.num, threads, generation,
                                  way[0] == _k.LINEAR_BLAS, way[1], way[2], way[3],
                                  trans_a, trans_b)  # fmt: skip
    return out


def lean_plain(a, b, trans_a: bool = False, trans_b: bool = False) -> np.ndarray | None:
    """``op(a) @ op(b)`` on the engine remembered for its shape (:func:`plain`
    remembers them in the kernel module), or None: unknown shape, an engine forced, or
    not two 2-d NumPy arrays of one float dtype whose shapes chain."""
    if _forced[0] is not None:
        return None
    return _k.plain(a, b, team_size(), _autotune.generation(), trans_a, trans_b)


def matmul_key(
    m: int, n: int, k: int, trans_a: bool, trans_b: bool, epilogue: bool, dtype_char: str,
    threads: int, generation: int,
) -> tuple:  # fmt: skip
    """The key under which :func:`matmul` remembers a product's engine (_engine_memo,
    _unconfirmed; :func:`lean_way` reads it)."""
    return (m, n, k, trans_a, trans_b, epilogue, dtype_char, threads, generation)


def lean_way(key: tuple) -> tuple[int, int, int, float] | None:
    """How a lean path in the kernel module (gemm.pyx: plain, linear) runs the products
    of :func:`matmul`'s ``key``: (``_k.LINEAR_BLOCKED`` or ``_k.LINEAR_BLAS``, threads,
    the blocked kernel's level, until when: the time (:data:`_now`) at which its engine's
    next re-timing falls due, inf when none is pending); None while there is nothing to
    hand over (no choice yet, the machine not calibrated) or the engine needs this module
    (a BLAS call on BLAS's own threads, :func:`_blas_plan`'s "threaded": its thread
    counts).  A BLAS product split over the team runs lean inside the pin this module
    handed over (``_k.set_blas_pin``), as :func:`_blas` runs it: the general path around
    it cost ~9 us a call (linear 1024x100->10 on the AMD EPYC: 47 us against 38 us for
    its BLAS split and epilogue).  A product awaiting a re-timing runs lean until it is
    due: the general path around it cost ~4 us a call, for the 22 s that the re-timings
    take."""
    if not _calibrated:
        return None
    choice = _engine_memo.get(key)
    if choice is None:
        return None
    pending = _unconfirmed.get(key)
    until = math.inf if pending is None else pending[0]
    use_blas, alone = choice
    run_threads = 1 if alone else key[-2]
    if use_blas:
        if _blas_plan(key[0], key[1], key[2], run_threads) == "threaded":
            return None
        return _k.LINEAR_BLAS, run_threads, -1, until
    return _k.LINEAR_BLOCKED, run_threads, _isa.level_code("gemm"), until


def forget_plain() -> None:
    """Forget every plain product's memoised runner and what the lean paths remember (a
    setting they depend on changed)."""
    _plain_memo.clear()
    _k.forget_plain()
    _k.forget_linear()


def _level_changed(family: str, code: int) -> None:
    """The lean paths keep the blocked kernel's level: a new one makes them choose again."""
    if family == "gemm":
        _k.forget_plain()
        _k.forget_linear()


_isa.LEVEL_HOOKS.append(_level_changed)


def matmul(
    a: np.ndarray,
    b: np.ndarray,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    c: np.ndarray | None = None,
    alpha: float = 1.0,
    beta: float = 0.0,
    act: int = 0,
    bias: np.ndarray | None = None,
    u: np.ndarray | None = None,
) -> np.ndarray:
    """A new C-contiguous ``alpha * op(a) @ op(b) + beta * c`` followed by the epilogue:
    ``act(. + bias)``, or ``. * act'(u)`` when ``u`` is given (act is a kernel code).
    The engine (BLAS or the blocked kernel) is the faster one for the shape, measured."""
    m = a.shape[1] if trans_a else a.shape[0]
    k = a.shape[0] if trans_a else a.shape[1]
    n = b.shape[0] if trans_b else b.shape[1]
    threads = team_size()
    ensure_calibrated()
    epilogue = act != 0 or bias is not None or u is not None
    args = (a, b, c, alpha, beta, trans_a, trans_b, act, bias, u, threads)
    if _forced[0] is None:
        key = matmul_key(m, n, k, trans_a, trans_b, epilogue, a.dtype.char, threads,
                         _autotune.generation())  # fmt: skip
        choice = _engine_memo.get(key)
        if choice is None:
            choice = _choose_engine(key, args, epilogue)
        elif _unconfirmed and key in _unconfirmed:
            choice = _confirm(key, args, epilogue, choice)
    else:
        choice = ENGINES[_forced[0]]
    use_blas, alone = choice
    if alone:
        args = args[:-1] + (1,)
    return _blas(*args) if use_blas else _blocked(*args)
