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

# Tests never read or write the user's autotune cache: they tune into a file of their own
# (set before fastnn is imported, so that every process the tests start inherits it).
os.environ["FASTNN_AUTOTUNE_CACHE"] = os.path.join(
    tempfile.mkdtemp(prefix="fastnn-tests-"), "autotune.json"
)
os.environ.pop("FASTNN_AUTOTUNE", None)

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

collect_ignore = [] if SIMULATOR else ["cudasim"]


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def autotune_default():
    """Every test starts with autotuning on and the session's temporary cache."""
    import fastnn

    fastnn.autotune(True)
    yield
    fastnn.autotune(True)
