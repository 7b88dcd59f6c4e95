"""pytest configuration shared by every test module.

Autotuning is on, as for users, but into a temporary cache (FASTNN_AUTOTUNE_CACHE below),
so that no test reads or writes the user's; tests that change the autotune state restore
it (:func:`autotune_default`).

The Numba CUDA simulator tests in tests/cudasim/ need ``NUMBA_ENABLE_CUDASIM=1`` in the
environment before numba is first imported, so they run in a pytest process of their own:
``NUMBA_ENABLE_CUDASIM=1 pytest tests/cudasim``.  A plain ``pytest`` skips collecting them.
"""

from __future__ import annotations

import os
import tempfile
import zlib

import numpy as np
import pytest

from tests.utils import ACTIVATIONS, FLOAT_DTYPES, REDUCTIONS

# Tests never read or write the user's autotune cache: they tune into a file of their own
# (set before fastnn is imported, so that every process the tests start inherits it).
os.environ["FASTNN_AUTOTUNE_CACHE"] = os.path.join(
    tempfile.mkdtemp(prefix="fastnn-tests-"), "autotune.json"
)
os.environ.pop("FASTNN_AUTOTUNE", None)
# The benchmark tables the tests run in this process leave the C allocator as configured
# (tests/benchmarks/test_bench_allocator.py checks the benchmarks' setting in processes
# of its own): memory freed by one test is returned as before, whatever ran earlier.
os.environ["FASTNN_BENCH_ALLOCATOR"] = "default"

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

collect_ignore = [] if SIMULATOR else ["cudasim"]


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request) -> type:
    """Each floating dtype the kernels support, one per test run (a test that parametrizes
    ``dtype`` itself overrides this)."""
    return request.param


@pytest.fixture(params=REDUCTIONS)
def reduction(request) -> str:
    """Each loss reduction, one per test run."""
    return request.param


@pytest.fixture(params=ACTIVATIONS, ids=str)
def activation(request) -> str | None:
    """Each activation of the fused dense / backprop ops (None: none), one per test run
    (a module that parametrizes ``activation`` itself overrides this)."""
    return request.param


@pytest.fixture(scope="module")
def one_thread():
    """fastnn on one thread for a whole module (``pytest.mark.usefixtures("one_thread")``):
    for modules of tiny kernels, where OpenMP threads on a busy machine cost far more
    than they save."""
    import fastnn

    threads = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(threads)


@pytest.fixture(params=[1, 2], ids=lambda t: f"threads{t}")
def threads(request) -> int:
    """fastnn on one, then two threads for one test (the count is the fixture's value);
    the count before is restored after."""
    import fastnn

    before = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(before)


@pytest.fixture(params=["auto", "blas", "blocked"])
def gemm_engine(request, monkeypatch) -> str:
    """Run the test with the CPU GEMM's measured engine choice, then forcing each engine."""
    from fastnn._backends.cpu import _gemm

    with _gemm.forced_engine(None if request.param == "auto" else request.param):
        yield request.param


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def fixed_teams():
    """Kernels run with exactly get_num_threads() threads: the team sizing that follows
    the machine's load (fastnn._threads.team_size) is tested on its own in
    test_cpu_threads.py; elsewhere it would make thread-count assertions depend on what
    else the machine runs."""
    from fastnn import _threads

    before = _threads.adaptive_teams()
    _threads.adaptive_teams(False)
    yield
    _threads.adaptive_teams(before)


@pytest.fixture(autouse=True)
def autotune_default():
    """Every test starts with autotuning on and the session's temporary cache."""
    import fastnn

    fastnn.autotune(True)
    yield
    fastnn.autotune(True)
