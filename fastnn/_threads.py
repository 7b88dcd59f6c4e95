"""Thread count shared by every CPU kernel: ``set_num_threads`` / ``get_num_threads``, and
control of the BLAS library that the kernels call.

The default is ``OMP_NUM_THREADS`` when it is set to a positive integer, otherwise the
number of CPUs this process may run on (read once, at import).  CPU kernels pass the count
explicitly to their OpenMP regions (``prange(..., num_threads=n)``).

BLAS: the kernels call SciPy's BLAS through ``scipy.linalg.cython_blas`` (SciPy's bundled
OpenBLAS in a wheel install; not necessarily the library numpy's ``@`` uses).  Through
threadpoolctl its thread pool follows ``set_num_threads`` (see :func:`sync_blas_threads`),
and :func:`limit_blas_threads` pins it to one thread while a kernel calls BLAS from inside
its own OpenMP region, so the two thread pools never oversubscribe the cores.  numpy's
own BLAS is left alone.
"""

from __future__ import annotations

import collections
import contextlib
import operator
import os
import threading
import time
from collections.abc import Sequence

__all__ = [
    "adaptive_teams",
    "blas_for_call",
    "blas_num_threads",
    "default_num_threads",
    "get_num_threads",
    "limit_blas_threads",
    "set_num_threads",
    "sync_blas_threads",
    "team_size",
]


def default_num_threads() -> int:
    """``OMP_NUM_THREADS`` if set to a positive integer, else the CPUs available to us."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: The thread count every kernel uses; read on each call, so it must be cheap to get.
_num_threads: int = default_num_threads()


def get_num_threads() -> int:
    """The number of threads fastnn's CPU kernels (and the BLAS they call) use."""
    return _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (>= 1) in every CPU kernel, BLAS calls included."""
    global _num_threads
    if isinstance(n, bool):
        raise TypeError(f"set_num_threads: n must be an int, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = n
    if _blas_libs is not None:
        _apply_blas_threads()


# ---------------------------------------------------------------------------------------
# Team size: the cap, or fewer threads while other processes hold the cores
# ---------------------------------------------------------------------------------------

#: How long one sample of the machine's load is trusted (seconds).
TEAM_SAMPLE_SECONDS = 0.02
_adaptive = os.environ.get("FASTNN_ADAPTIVE_THREADS", "1").strip().lower() not in (
    "0", "false", "no", "off",
)  # fmt: skip
_team_free = 0
_team_calls = 0
_sampler: threading.Thread | None = None
_sampler_lock = threading.Lock()


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


_machine_cpus = _cpus()


def _own_running() -> int:
    """Runnable threads of this process (state R in /proc/self/task/*/stat): ours, torch's
    and numpy's pools alike; -1 when /proc cannot tell."""
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return -1
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # the thread ended meanwhile
        if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R":
            count += 1
    return count


def _free_cpus(reader_apart: bool = False) -> int:
    """CPUs not held by other processes: the CPUs we may run on minus the runnable
    threads of the whole machine (/proc/loadavg's 4th field) that are not this process's
    (threads of this process, torch's included, share our time slices anyway and are left
    to the cap).  ``reader_apart``: the calling thread is not one of the team's (the
    sampler thread), and is itself running while it reads."""
    try:
        with open("/proc/loadavg", "rb") as handle:
            running = int(handle.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return _machine_cpus
    baseline = _num_threads + (1 if reader_apart else 0)
    if running <= baseline:  # the quiet case: no more than our team can be running
        return _machine_cpus
    # Every thread of our team (and the reader) counts as running: one may fall asleep
    # between the reads.  So does any more of this process's threads seen running in a
    # look just before or just after: a pool of ours that starts or stops spinning
    # between the reads is not another process.
    ours = max(_own_running(), baseline)
    if running > ours:
        ours = max(ours, _own_running())
    return _machine_cpus - max(0, running - ours)


def wait_for_own_quiet(limit: float, poll: float = 0.001) -> bool:
    """Sleep until no thread of this process but the caller has been running for two
    looks in a row, or ``limit`` seconds have passed; False when /proc cannot tell.

    Thread pools spin after a call (numpy's OpenBLAS ~0.1 s, libgomp's ~5-10 ms): a
    measurement taken meanwhile measures them too (the autotuner and the benchmark
    harness wait here first)."""
    end = time.perf_counter() + limit
    quiet = 0
    while quiet < 2:
        running = _own_running()
        if running < 0:
            return False
        quiet = quiet + 1 if running <= 1 else 0
        if time.perf_counter() >= end:
            break
        time.sleep(poll)
    return True


#: Looks, and seconds between them, that :func:`others_busy` takes before it says busy.
BUSY_LOOKS = 3
BUSY_GAP_SECONDS = 0.001


def others_busy(threads: int) -> bool:
    """Whether other processes hold so many CPUs that fewer than ``threads`` are free, in
    each of BUSY_LOOKS looks: for one-off decisions (time a choice now or not, calibrate
    now or later) that a single look would get wrong whenever it catches a thread of this
    process starting or stopping (a few hundred microseconds of looking, taken only when
    the first look says busy)."""
    for look in range(BUSY_LOOKS):
        if _free_cpus() >= threads:
            return False
        if look + 1 < BUSY_LOOKS:
            time.sleep(BUSY_GAP_SECONDS)
    return True


#: Samples in a row that must agree before the team changes: shrinking takes two busy
#: samples (one may catch a neighbour between its calls), growing takes more, because a
#: team one too large for the free CPUs waits at every barrier for a parked member
#: (10-300x slower), while one too small for a few samples costs at most its share.
TEAM_SHRINK_SAMPLES = 2
TEAM_GROW_SAMPLES = 5


def next_team_free(current: int, recent: Sequence[int]) -> int:
    """The free-CPU count the team follows after ``recent`` samples (oldest first, the
    newest last): lower when the last TEAM_SHRINK_SAMPLES all lie below ``current`` (to
    the largest of them), higher when the last TEAM_GROW_SAMPLES all lie above it (to the
    smallest of them), else unchanged."""
    shrink = recent[-TEAM_SHRINK_SAMPLES:]
    if len(shrink) == TEAM_SHRINK_SAMPLES and max(shrink) < current:
        return max(shrink)
    grow = recent[-TEAM_GROW_SAMPLES:]
    if len(grow) == TEAM_GROW_SAMPLES and min(grow) > current:
        return min(grow)
    return current


def _sample_while_used() -> None:
    """The sampler thread: refresh the free-CPU count every TEAM_SAMPLE_SECONDS while
    kernels keep asking for it (:func:`next_team_free`); exit after a second without
    calls."""
    global _team_free, _sampler
    seen, idle = -1, 0.0
    recent: collections.deque[int] = collections.deque(maxlen=TEAM_GROW_SAMPLES)
    while _adaptive and idle < 1.0:
        recent.append(_free_cpus(reader_apart=True))
        _team_free = next_team_free(_team_free, tuple(recent))
        time.sleep(TEAM_SAMPLE_SECONDS)
        if _team_calls == seen:
            idle += TEAM_SAMPLE_SECONDS
        else:
            seen, idle = _team_calls, 0.0
    with _sampler_lock:
        _sampler = None


def team_size() -> int:
    """The threads a CPU kernel should open its parallel region with now: the
    :func:`get_num_threads` cap, lowered while other processes keep CPUs busy (a team
    larger than the free CPUs waits at every barrier for a member the scheduler parked:
    15-50x slowdowns beside another multi-threaded job instead of ~2x).  A daemon thread
    samples the load every TEAM_SAMPLE_SECONDS while kernels run (two small /proc reads,
    ~50 us), so a call only reads the last sample.  Autotune keys keep using the cap.
    FASTNN_ADAPTIVE_THREADS=0 (or ``adaptive_teams(False)``) always uses the cap."""
    global _team_calls, _sampler, _team_free
    n = _num_threads
    if n == 1 or not _adaptive:
        return n
    _team_calls += 1
    if _sampler is None:
        with _sampler_lock:
            if _sampler is None:
                _team_free = _free_cpus()
                _sampler = threading.Thread(
                    target=_sample_while_used, name="fastnn-load-sampler", daemon=True
                )
                _sampler.start()
    free = _team_free
    return n if free >= n else (free if free > 1 else 1)


def _after_fork_in_child() -> None:
    """A forked child has no sampler thread: the next call starts its own."""
    global _sampler, _sampler_lock
    _sampler = None
    _sampler_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def adaptive_teams(enabled: bool | None = None) -> bool:
    """Whether :func:`team_size` follows the machine's load; ``enabled`` sets it."""
    global _adaptive, _team_free
    if enabled is not None:
        _adaptive = bool(enabled)
        _team_free = _free_cpus() if _adaptive else _team_free
    return _adaptive


# ---------------------------------------------------------------------------------------
# The BLAS behind scipy.linalg.cython_blas
# ---------------------------------------------------------------------------------------

_blas_lock = threading.RLock()
_blas_libs: list | None = None  # threadpoolctl LibControllers, found on first use
_blas_private = False  # True when those libraries are SciPy's own (nobody else calls them)
_blas_current: int | None = None  # the thread count we last gave them
_blas_pins = 0  # how many limit_blas_threads blocks are open


def _scipy_blas_libs() -> tuple[list, bool]:
    """threadpoolctl controllers of the BLAS scipy.linalg.cython_blas calls: the libraries
    shipped inside SciPy's installation (scipy.libs/, scipy/.dylibs/) when there are any,
    else every loaded BLAS (SciPy then uses a system BLAS, probably shared with numpy).
    The flag says which of the two it is."""
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library if nothing did yet)
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    site = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    own = [
        lib
        for lib in libs
        if os.path.relpath(os.path.abspath(lib.filepath), site).split(os.sep)[0]
        in ("scipy", "scipy.libs")
    ]
    return (own, True) if own else (list(libs), False)


def _set_blas_threads(n: int) -> None:
    """Give the BLAS ``n`` threads unless it has them already (caller holds the lock)."""
    global _blas_current
    if n == _blas_current:
        return
    for lib in _blas_libs or ():
        if lib.get_num_threads() != n:
            # threadpoolctl lets only the first Python thread that set a limit change a
            # shared pool; _blas_lock serialises every change made here, so go straight
            # to the library from whichever thread holds the lock.
            setter = getattr(lib, "_real_set_num_threads", lib.set_num_threads)
            setter(n)
    _blas_current = n


def _apply_blas_threads() -> None:
    with _blas_lock:
        _set_blas_threads(1 if _blas_pins else _num_threads)


def sync_blas_threads() -> None:
    """Make SciPy's BLAS use ``get_num_threads()`` threads from now on (and on every later
    ``set_num_threads``).  CPU kernel modules that call BLAS run this when imported."""
    global _blas_libs, _blas_private
    with _blas_lock:
        if _blas_libs is None:
            try:
                _blas_libs, _blas_private = _scipy_blas_libs()
            except Exception:  # no threadpoolctl support for this BLAS: leave it alone
                _blas_libs, _blas_private = [], False
        _apply_blas_threads()


def blas_for_call() -> None:
    """Before a BLAS call made outside any OpenMP region: give the BLAS its
    ``get_num_threads()`` threads back if a :func:`limit_blas_threads` block left it
    at one.  Two comparisons when nothing needs to change."""
    if _blas_current != _num_threads and _blas_pins == 0 and _blas_libs:
        _apply_blas_threads()


def blas_num_threads() -> int | None:
    """The thread count SciPy's BLAS reports now (None if it cannot be controlled)."""
    if _blas_libs is None:
        sync_blas_threads()
    counts = {lib.get_num_threads() for lib in _blas_libs or ()}
    return counts.pop() if len(counts) == 1 else None


class _BlasPin:
    """The context manager :func:`limit_blas_threads` returns (one object for every block:
    the state is the module's pin count).  A class, not a generator: entering and leaving
    costs a few hundred nanoseconds, which a small product split over threads feels."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _blas_pins
        if _blas_libs is None:
            sync_blas_threads()
        with _blas_lock:
            _blas_pins += 1
            if _blas_pins == 1:
                _set_blas_threads(1)

    def __exit__(self, *exc: object) -> None:
        global _blas_pins
        with _blas_lock:
            _blas_pins -= 1
            if _blas_pins == 0 and not _blas_private:
                _set_blas_threads(_num_threads)


_BLAS_PIN = _BlasPin()


def limit_blas_threads() -> contextlib.AbstractContextManager[None]:
    """Pin SciPy's BLAS to one thread inside the block: wrap any OpenMP region whose
    threads call BLAS.  Blocks may nest and may be open in several Python threads at once.

    When the last block closes, a BLAS that SciPy ships for itself stays at one thread
    until fastnn next makes one call large enough for its threads (:func:`blas_for_call`), so a
    loop of convolutions does not pay two thread-count changes per call; a system BLAS
    that numpy may share gets its ``get_num_threads()`` threads back at once."""
    return _BLAS_PIN
