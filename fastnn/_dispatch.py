"""The dispatcher: a registry ``{op: {backend: implementation}}``, backend detection from
the arrays of a call, and the controls ``use_backend()`` / ``backends()``.

Data flows one way: ``fastnn.ops`` validates the arguments once, then asks
:func:`resolve` for the implementation that should run them.  Backends are packages under
``fastnn._backends``; each exposes ``probe() -> str | None`` (``None`` when it can run, else
the reason it cannot) and ``load()``, which imports its op modules so that their
``@register`` decorators fill the registry.  GPU packages (cupy, numba) are imported only by
a GPU backend's ``probe``/``load``, and only when a GPU array or an explicit request needs
them: ``import fastnn`` never imports them and never fails because they are missing.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fastnn._kinds import KIND_NAMES, array_kind

__all__ = [
    "BACKENDS",
    "array_kind",
    "backends",
    "lean",
    "register",
    "register_lean",
    "registered",
    "resolve",
    "use_backend",
]

#: Every backend fastnn knows, in the order ``backends()`` lists them.
BACKENDS: tuple[str, ...] = ("cpu", "reference", "numba-cuda", "cupy")

_MODULES = {
    "cpu": "fastnn._backends.cpu",
    "reference": "fastnn._backends.reference",
    "numba-cuda": "fastnn._backends.numba_cuda",
    "cupy": "fastnn._backends.cupy",
}

#: Array kinds each backend runs on.  "numpy" is host memory; "cupy", "numba" and "cuda"
#: (any other object with ``__cuda_array_interface__``) are GPU memory.
_SERVES = {
    "cpu": frozenset({"numpy"}),
    "reference": frozenset({"numpy"}),
    "numba-cuda": frozenset({"cupy", "numba", "cuda"}),
    "cupy": frozenset({"cupy", "numba", "cuda"}),
}

#: The order in which backends are tried when the call names none.
_DEFAULT_ORDER = {
    "numpy": ("cpu", "reference"),
    "cupy": ("cupy", "numba-cuda"),
    "numba": ("numba-cuda", "cupy"),
    "cuda": ("numba-cuda", "cupy"),
}

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {}
_DEFAULT_CACHE: dict[tuple[str, str], Callable[..., Any]] = {}
#: (op, kind, backend) -> implementation, for calls that name their backend.
_NAMED_CACHE: dict[tuple[str, str, str], Callable[..., Any]] = {}
_STATUS: dict[str, tuple[bool, str]] = {}
_LOADED: set[str] = set()
_LOCK = threading.RLock()
_ACTIVE: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastnn_backend", default=None)
#: op -> the lean path of the default backend of NumPy arrays (see :func:`register_lean`).
_LEAN: dict[str, Callable[..., Any]] = {}


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------


def register(op: str, backend: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``func`` the implementation of ``op`` on ``backend``.

    The function receives arguments already validated and normalised by ``fastnn.ops``
    (see ``fastnn/_backends/__init__.py`` for the calling convention of every op).
    """
    if backend not in _MODULES:
        raise ValueError(f"register: unknown backend {backend!r}; expected one of {BACKENDS}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        with _LOCK:
            _REGISTRY.setdefault(op, {})[backend] = func
            _DEFAULT_CACHE.clear()
            _NAMED_CACHE.clear()
        return func

    return decorate


def register_lean(op: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``func`` the lean path of ``op``: ``fastnn.ops`` hands it the
    arguments of a call that runs on the cpu backend (named, or no backend named or
    active) with the op's other defaults, before any check.  ``func`` returns the result,
    or None having done nothing when the call is not one it remembers how to run (the
    call then takes the checked path).  Only the default backend of NumPy arrays (cpu)
    registers one: a small call then costs little more than its kernel."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        with _LOCK:
            _LEAN[op] = func
        return func

    return decorate


def lean(op: str, backend: str | None = None) -> Callable[..., Any] | None:
    """``op``'s lean path (see :func:`register_lean`) for a call that names ``backend``
    (None or "cpu", whose path it is), or None: another backend named, or active through
    :func:`use_backend` when the call names none, or the cpu backend not loaded yet."""
    if backend is None:
        if _ACTIVE.get() is None:
            return _LEAN.get(op)
    elif backend == "cpu":
        return _LEAN.get(op)
    return None


def registered(op: str | None = None) -> dict[str, Any]:
    """The registry after loading every available backend: ``{op: [backends]}``, or, for
    one ``op``, ``{backend: implementation}``.  For introspection and tests."""
    for name in BACKENDS:
        if _status(name)[0]:
            _load(name)
    if op is not None:
        return dict(_REGISTRY.get(op, {}))
    return {name: sorted(impls) for name, impls in sorted(_REGISTRY.items())}


# ---------------------------------------------------------------------------------------
# Backend status and loading
# ---------------------------------------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def _status(name: str) -> tuple[bool, str]:
    status = _STATUS.get(name)
    if status is None:
        with _LOCK:
            status = _STATUS.get(name)
            if status is None:
                try:
                    module = importlib.import_module(_MODULES[name])
                    reason = module.probe()
                except Exception as exc:  # a broken install must not break import fastnn
                    reason = f"{type(exc).__name__}: {exc}"
                if reason is None:
                    status = (True, module.describe())
                else:
                    status = (False, reason)
                _STATUS[name] = status
    return status


def _load(name: str) -> None:
    if name in _LOADED:
        return
    with _LOCK:
        if name in _LOADED:
            return
        importlib.import_module(_MODULES[name]).load()
        _LOADED.add(name)
        _DEFAULT_CACHE.clear()
        _NAMED_CACHE.clear()


def backends() -> dict[str, tuple[bool, str]]:
    """Every backend and whether it can run here: ``{name: (available, reason)}``.

    For an available backend the string describes it; for an unavailable one it says why
    (package missing, no CUDA driver, no GPU, ...).
    """
    return {name: _status(name) for name in BACKENDS}


# ---------------------------------------------------------------------------------------
# Choosing an implementation
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Run every op inside the ``with`` block on backend ``name``.

    The choice is per thread (and per asyncio task).  An explicit ``backend=`` keyword on
    an op still wins.  An unavailable backend raises ``RuntimeError`` when an op runs.
    """
    token = _ACTIVE.set(_check_name(name))
    try:
        yield name
    finally:
        _ACTIVE.reset(token)


def active_backend() -> str | None:
    """The backend chosen by an enclosing ``use_backend`` block, or None."""
    return _ACTIVE.get()


def resolve(op: str, kind: str, backend: str | None = None) -> Callable[..., Any]:
    """The implementation of ``op`` for arrays of ``kind``.

    ``backend`` (or an enclosing ``use_backend``) names the backend; otherwise the first
    available backend for the kind that implements ``op`` runs: numpy arrays go to "cpu",
    which falls back to "reference" for an op that has no CPU kernel.
    """
    if backend is None:
        backend = _ACTIVE.get()
        if backend is None:
            impl = _DEFAULT_CACHE.get((op, kind))
            if impl is not None:
                return impl
            return _resolve_default(op, kind)
    impl = _NAMED_CACHE.get((op, kind, backend))
    if impl is None:
        impl = _resolve_named(op, kind, backend)
        _NAMED_CACHE[(op, kind, backend)] = impl
    return impl


def _resolve_named(op: str, kind: str, name: str) -> Callable[..., Any]:
    _check_name(name)
    available, reason = _status(name)
    if not available:
        raise RuntimeError(f"{op}: backend {name!r} is unavailable: {reason}")
    if kind not in _SERVES[name]:
        served = " or ".join(sorted(KIND_NAMES[k] for k in _SERVES[name]))
        raise ValueError(
            f"{op}: backend {name!r} runs on {served} arrays, got {KIND_NAMES[kind]} arrays"
        )
    _load(name)
    impls = _REGISTRY.get(op, {})
    impl = impls.get(name)
    if impl is None and name == "cpu":
        # The CPU backend falls back to the NumPy reference for ops it has no kernel for.
        _load("reference")
        impl = _REGISTRY.get(op, {}).get("reference")
    if impl is None:
        raise NotImplementedError(f"{op}: backend {name!r} has no implementation of {op}")
    return impl


def _resolve_default(op: str, kind: str) -> Callable[..., Any]:
    reasons = []
    for name in _DEFAULT_ORDER[kind]:
        available, reason = _status(name)
        if not available:
            reasons.append(f"{name}: {reason}")
            continue
        _load(name)
        impl = _REGISTRY.get(op, {}).get(name)
        if impl is not None:
            _DEFAULT_CACHE[(op, kind)] = impl
            return impl
        reasons.append(f"{name}: no implementation of {op}")
    raise RuntimeError(
        f"{op}: no backend can run {KIND_NAMES[kind]} arrays here ({'; '.join(reasons)})"
    )
