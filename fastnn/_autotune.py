"""``fastnn.autotune``: remember the fastest algorithm per problem key in a JSON cache.

With autotuning on, ``algo="auto"`` convolutions time every candidate algorithm once per
key (op, shapes, parameters, dtype, threads, backend) and reuse the winner.  Choices are
kept in memory and persisted to a JSON file, by default ``$XDG_CACHE_HOME/fastnn/
autotune.json`` (``~/.cache/...``); the ``cache`` argument or the ``FASTNN_AUTOTUNE_CACHE``
environment variable points elsewhere.  Several processes may write the file at once: each
write takes an exclusive lock, merges with what is on disk and replaces the file
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
from pathlib import Path
from typing import Any

__all__ = ["autotune", "autotune_enabled", "cache_path", "choose", "lookup", "store"]

_FORMAT = 1
_state = {"enabled": False, "cache": None}
_memory: dict[str, str] = {}
_lock = threading.Lock()


def autotune(enabled: bool = True, cache: str | os.PathLike[str] | None = None) -> None:
    """Turn autotuning of ``algo="auto"`` on or off.

    ``cache`` is the JSON file that keeps the choices across processes (default: the
    ``FASTNN_AUTOTUNE_CACHE`` environment variable, else ``~/.cache/fastnn/autotune.json``
    under ``$XDG_CACHE_HOME`` when set).
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"autotune: enabled must be a bool, got {enabled!r}")
    if cache is not None and not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"autotune: cache must be a path or None, got {type(cache).__name__}")
    with _lock:
        new_cache = Path(cache) if cache is not None else None
        if new_cache != _state["cache"]:
            _memory.clear()
        _state["enabled"] = enabled
        _state["cache"] = new_cache


def autotune_enabled() -> bool:
    """Whether ``algo="auto"`` times the candidates (True) or uses the built-in heuristic."""
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


def lookup(key: str) -> str | None:
    """The remembered choice for ``key`` (memory first, then the cache file), or None."""
    choice = _memory.get(key)
    if choice is not None:
        return choice
    entries = _read(cache_path())
    with _lock:
        _memory.update(entries)
    return entries.get(key)


def store(key: str, choice: str) -> None:
    """Remember ``choice`` for ``key`` in memory and in the cache file (merged, atomic)."""
    with _lock:
        _memory[key] = choice
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            entries = _read(path)
            entries[key] = choice
            _write_atomic(path, entries)
    except OSError:
        pass  # a read-only cache directory costs a re-tune next time, never an error


def choose(key: str, candidates: dict[str, Callable[[], Any]], repeats: int = 3) -> str:
    """Return the remembered choice for ``key`` or time each candidate (best of
    ``repeats`` after one warm-up call), store the fastest and return its name."""
    if not candidates:
        raise ValueError("autotune.choose: no candidates to time")
    known = lookup(key)
    if known in candidates:
        return known
    best_name, best_time = next(iter(candidates)), float("inf")
    for name, run in candidates.items():
        run()
        elapsed = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            elapsed = min(elapsed, time.perf_counter() - start)
        if elapsed < best_time:
            best_name, best_time = name, elapsed
    store(key, best_name)
    return best_name


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
