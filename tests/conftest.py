"""pytest configuration shared by every test module.

The Numba CUDA simulator tests in tests/cudasim/ need ``NUMBA_ENABLE_CUDASIM=1`` in the
environment before numba is first imported, so they run in a pytest process of their own:
``NUMBA_ENABLE_CUDASIM=1 pytest tests/cudasim``.  A plain ``pytest`` skips collecting them.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

collect_ignore = [] if SIMULATOR else ["cudasim"]


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
