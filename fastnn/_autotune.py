"""``fastnn.autotune``: choose kernels by measurement, and remember the choice.

With autotuning on (the default), the first call of an ``algo="auto"`` convolution times
the few candidate algorithms that the static prior ranks highest, once per key (op and
pass, shapes, parameters, dtype, threads, backend), and every later call reuses the
winner; kernel families choose their instruction-set level the same way, once per CPU.
With it off (``fastnn.autotune(False)`` or ``FASTNN_AUTOTUNE=0``), the static prior alone
decides, and nothing is timed.

Choices are kept in memory and persisted to a JSON file, by default
``$XDG_CACHE_HOME/fastnn/autotune.json`` (``~/.cache/...``); the ``cache`` argument or the
``FASTNN_AUTOTUNE_CACHE`` environment variable points elsewhere.  Every key stored there
carries the CPU model, the fastnn version and a fingerprint of the compiled kernels
(fastnn._machine.context), so a cache copied to another machine, or kept across an
upgrade or a rebuild, is never trusted.  Several processes may write the file at once:
each write takes an exclusive lock, merges with what is on disk and replaces the file
atomically, so no process loses another's entries or reads a torn file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastnn import _machine

__all__ = [
    "autotune",
    "autotune_enabled",
    "cache_path",
    "choose",
    "generation",
    "is_recording",
    "lookup",
    "reconsider",
    "recording",
    "store",
]

#: The cache file's format; 3: choices timed warm (MIN_SAMPLE_SECONDS), the format-2
#: choices, timed over single cold calls, are measured again; 4: samples sized from a
#: warm call (WARM_CALL_SECONDS), the format-3 choices are measured again.
_FORMAT = 4


def _enabled_from_env() -> bool:
    return os.environ.get("FASTNN_AUTOTUNE", "1").strip().lower() not in ("0", "false", "no", "off")


_state: dict[str, Any] = {"enabled": _enabled_from_env(), "cache": None, "generation": 0}
_memory: dict[str, str] = {}
#: Keys timed by this process (see ``choose(..., remeasure=True)``) -> each candidate's
#: best time so far (seconds per call; :func:`reconsider` adds to them).
_timed_here: dict[str, dict[str, float]] = {}
_lock = threading.Lock()
_local = threading.local()
#: Recordings open in any thread: with none, :func:`is_recording` answers without the
#: thread-local lookup (a missing attribute of a threading.local costs ~0.5 us).
_recordings = [0]
_RECORDINGS_LOCK = threading.Lock()
#: Held while candidates are timed.  Threads can reach a first use at once (XLA runs
#: independent host callbacks of one jitted program on several threads): without it they
#: would time each other's kernels, and could remember different choices for one key.
_measuring = threading.RLock()


def autotune(enabled: bool = True, cache: str | os.PathLike[str] | None = None) -> None:
    """Turn the measurement of ``algo="auto"`` choices on (the default) or off.

    Off, the static prior decides (reproducible across runs and machines; pin one
    algorithm with an explicit ``algo=`` for bit-for-bit results).  ``cache`` is the JSON
    file that keeps the choices across processes (default: the ``FASTNN_AUTOTUNE_CACHE``
    environment variable, else ``~/.cache/fastnn/autotune.json`` under
    ``$XDG_CACHE_HOME`` when set).
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"autotune: enabled must be a bool, got {enabled!r}")
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"autotune: cache must be a path or None, got {type(cache).__name__}")
    with _lock:
        new_cache = Path(cache) if cache is not None else None
        if new_cache != _state["cache"]:
            _memory.clear()
            _timed_here.clear()
        _state["enabled"] = enabled
        _state["cache"] = new_cache
        _state["generation"] += 1


def generation() -> int:
    """A number that changes whenever :func:`autotune` changes the settings: callers that
    memoise a choice key it by this, so a new setting or cache is seen at once."""
    return _state["generation"]


def is_recording() -> bool:
    """Whether this thread is inside :func:`recording` (every choice must be noted)."""
    return _recordings[0] > 0 and getattr(_local, "record", None) is not None


def autotune_enabled() -> bool:
    """Whether ``algo="auto"`` measures its candidates (True) or trusts the prior."""
    return bool(_state["enabled"])


def cache_path() -> Path:
    """The JSON file that persists autotuning choices."""
    if _state["cache"] is not None:
        return _state["cache"]
    env = os.environ.get("FASTNN_AUTOTUNE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastnn" / "autotune.json"


def _full(key: str) -> str:
    return f"{_machine.context()}|{key}"


def lookup(key: str) -> str | None:
    """The remembered choice for ``key`` on this machine and build (memory first, then
    the cache file), or None."""
    full = _full(key)
    choice = _memory.get(full)
    if choice is not None:
        return choice
    entries = _read(cache_path())
    with _lock:
        _memory.update(entries)
    return entries.get(full)


def store(key: str, choice: str) -> None:
    """Remember ``choice`` for ``key`` in memory and in the cache file (merged, atomic)."""
    full = _full(key)
    with _lock:
        _memory[full] = choice
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            entries = _read(path)
            entries[full] = choice
            _write_atomic(path, entries)
    except OSError:
        pass  # a read-only cache directory costs a re-tune next time, never an error


@dataclass
class Record:
    """What the choices made inside :func:`recording` were: ``choices`` maps each key to
    the chosen candidate, ``timed`` lists the keys that were measured (the others came
    from the cache), ``seconds`` is the time spent measuring."""

    choices: dict[str, str] = field(default_factory=dict)
    timed: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def recording() -> Iterator[Record]:
    """Collect the choices made by this thread inside the ``with`` block."""
    record = Record()
    previous = getattr(_local, "record", None)
    _local.record = record
    with _RECORDINGS_LOCK:
        _recordings[0] += 1
    try:
        yield record
    finally:
        _local.record = previous
        with _RECORDINGS_LOCK:
            _recordings[0] -= 1


def _note(key: str, choice: str, seconds: float | None) -> None:
    record = getattr(_local, "record", None)
    if record is not None:
        record.choices[key] = choice
        if seconds is not None:
            record.timed.append(key)
            record.seconds += seconds


#: A candidate slower than this factor times the best so far after HOPELESS_SAMPLES
#: timed samples is not timed again (it cannot win, and the slow ones are what makes
#: tuning expensive).
HOPELESS = 1.5
#: Timed samples a candidate gets before it can be found hopeless: on a busy or noisy
#: machine one sample can catch a burst of outside load, and the true winner dropped after
#: it stays in the cache (a 960 -> 320 1x1 weight gradient kept an algorithm at 2.7 ms
#: over one at 1.6 ms on the 2-vCPU AMD EPYC).
HOPELESS_SAMPLES = 2


def choose(
    key: str,
    candidates: dict[str, Callable[[], Any]],
    repeats: int = 3,
    errors: tuple[type[BaseException], ...] = (MemoryError,),
    remeasure: bool = False,
) -> str:
    """Return the remembered choice for ``key``, or time the candidates and remember the
    fastest.

    ``candidates`` maps names to zero-argument callables, best first by the prior (on a
    tie the earlier one wins).  Each runs once to warm up, then the candidates take
    turns for ``repeats`` rounds; each one's best time counts (see :func:`_measure`).  A
    candidate that raises one of ``errors`` (out of memory) is dropped.

    ``remeasure``: time the candidates once in each process even when the cache file
    remembers a choice (for choices that cost a few milliseconds to make: a verdict
    reached while the machine was busy, or by an older build, then lasts one process).
    """
    if not candidates:
        raise ValueError("autotune.choose: no candidates to time")
    trusted = not remeasure or _full(key) in _timed_here
    known = lookup(key) if trusted else None
    if known in candidates:
        _note(key, known, None)
        return known
    with _measuring:
        trusted = not remeasure or _full(key) in _timed_here
        known = lookup(key) if trusted else None  # another thread may have timed it
        if known in candidates:
            _note(key, known, None)
            return known
        start = time.perf_counter()
        _quiet_before_timing()
        best = _measure(candidates, repeats, errors)
        best_name = min(best, key=lambda name: best[name]) if best else next(iter(candidates))
        store(key, best_name)
        _timed_here[_full(key)] = best
    _note(key, best_name, time.perf_counter() - start)
    return best_name


def reconsider(
    key: str,
    candidates: dict[str, Callable[[], Any]],
    repeats: int = 3,
    errors: tuple[type[BaseException], ...] = (MemoryError,),
) -> str:
    """Time the candidates of a choice this process has timed before (``choose(...,
    remeasure=True)``) once more, and remember the fastest by each candidate's best time
    over every timing of this process.  A timing taken while the machine ran slow for a
    while (another process, a host that runs a virtual CPU on a busy core) made the
    candidates that use more threads look slow; a later one, taken apart from it in time,
    corrects the verdict, while a slow burst in the later one cannot undo a good first.
    A key this process has not timed is timed as by :func:`choose`."""
    full = _full(key)
    if full not in _timed_here:
        return choose(key, candidates, repeats, errors, remeasure=True)
    with _measuring:
        start = time.perf_counter()
        _quiet_before_timing()
        best = dict(_timed_here.get(full, {}))
        for name, seconds in _measure(candidates, repeats, errors).items():
            best[name] = min(seconds, best.get(name, float("inf")))
        best = {name: best[name] for name in candidates if name in best}
        best_name = min(best, key=lambda name: best[name]) if best else next(iter(candidates))
        store(key, best_name)
        _timed_here[full] = best
    _note(key, best_name, time.perf_counter() - start)
    return best_name


#: The longest wait (seconds) for this process's other threads to stop spinning before a
#: choice is timed.
QUIET_WAIT_SECONDS = 0.2


def _quiet_before_timing() -> None:
    """Let thread pools of this process that still spin from their last call (numpy's
    OpenBLAS, torch's or fastnn's OpenMP) go to sleep first: timed beside them, a
    two-thread candidate waits at its barriers and the choice comes out wrong (a GEMM of
    1024x7 @ 7x257 timed right after numpy's product chose BLAS, 184 us, over the blocked
    kernel, 51 us, on the 2-vCPU AMD EPYC)."""
    from fastnn._threads import wait_for_own_quiet

    wait_for_own_quiet(QUIET_WAIT_SECONDS)


#: The shortest timed sample (seconds): a faster candidate is timed over several calls in
#: a row, after one untimed call, so that it is measured warm, as it runs in a loop of
#: calls, not cold after the other candidates have taken the caches (single cold calls
#: of a few microseconds favour whichever candidate touches less memory).
MIN_SAMPLE_SECONDS = 1e-4
#: The most calls in one sample.
MAX_SAMPLE_CALLS = 32
#: A candidate whose warm-up call took less than this (seconds) is called a second time,
#: and once untimed before each of its samples.  Its first call, and the first call after
#: the other candidates ran, can include waking this process's thread team (libgomp
#: sleeps after its spin, and a woken thread costs ~5-50 us on these VMs): sized from
#: that call, a two-thread product of 10 us got one call per sample, each paying the
#: wake-up, and read 16-22 us (257x257x1, blocked kernel; 10.2 us in a loop), so the
#: one-thread engines won products the team runs 1.3-1.5x faster (Intel Xeon @ 2.80GHz,
#: 2 vCPUs).  Above it, a wake-up is a few percent of a sample.
WARM_CALL_SECONDS = 1e-3
#: A candidate whose first call took less than this (seconds) is called a second time
#: before it is classified and sized, by the faster call.  A first call can hold one-time
#: work (the instruction-set probe of a kernel family, the first touch of per-thread
#: buffers): a 0.4 ms depthwise kernel whose first call took 1.4 ms was taken for a slow
#: one, got no untimed call before its samples, and was timed cold right after im2col
#: had flushed the caches (while the next candidate ran on the input it had just read):
#: it lost at 0.4-1.4 ms to a kernel it beats 1.3x in a loop (MobileNetV2's 576-channel
#: 14x14 depthwise layer; AMD EPYC, 2 vCPUs).  The second call costs at most this much.
SECOND_WARM_UP_SECONDS = 1e-2


def _measure(
    candidates: dict[str, Callable[[], Any]],
    repeats: int,
    errors: tuple[type[BaseException], ...],
) -> dict[str, float]:
    """Best time per call of each candidate: one warm-up call each (two when the first
    is faster than SECOND_WARM_UP_SECONDS: the faster one sizes the samples), then
    ``repeats`` rounds that time every candidate once, in turn (a burst of load from
    elsewhere then hits them alike, instead of all the samples of one).  A candidate
    faster than MIN_SAMPLE_SECONDS is timed over enough calls in a row to last that long;
    one faster than WARM_CALL_SECONDS gets an untimed call before each sample.  A
    candidate slower than HOPELESS times the best so far after HOPELESS_SAMPLES samples
    is not timed again; one that raises one of ``errors`` is dropped.  Ties go to the
    earlier candidate (the prior's favourite)."""
    alive, calls, quick = {}, {}, {}
    for name, run in candidates.items():
        try:
            took = _call_time(run)
            if took < SECOND_WARM_UP_SECONDS:  # the first may have woken threads, or
                took = min(took, _call_time(run))  # done a kernel's one-time work
        except errors:
            continue
        alive[name] = run
        took = max(took, 1e-7)
        calls[name] = max(1, min(MAX_SAMPLE_CALLS, int(MIN_SAMPLE_SECONDS / took)))
        quick[name] = took < WARM_CALL_SECONDS
    best = {name: float("inf") for name in alive}
    samples = dict.fromkeys(alive, 0)
    for _ in range(max(1, repeats)):
        leader = min(best.values(), default=float("inf"))
        for name, run in alive.items():
            if samples[name] >= HOPELESS_SAMPLES and best[name] > HOPELESS * leader:
                continue
            samples[name] += 1
            n = calls[name]
            try:
                if quick[name]:
                    run()  # untimed: its data back in the caches, its threads awake
                begin = time.perf_counter()
                for _ in range(n):
                    run()
            except errors:
                best[name] = float("inf")
                continue
            best[name] = min(best[name], (time.perf_counter() - begin) / n)
    return {name: t for name, t in best.items() if t != float("inf")}


def _call_time(run: Callable[[], Any]) -> float:
    """Seconds one call of ``run`` takes."""
    begin = time.perf_counter()
    run()
    return time.perf_counter() - begin


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        return {}
    entries = data.get("entries", {})
    return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, str)}


def _write_atomic(path: Path, entries: dict[str, str]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".autotune-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"format": _FORMAT, "entries": entries}, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: os.replace keeps the file whole; merges may race
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
