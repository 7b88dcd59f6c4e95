"""fastnn.bench.allocator: a benchmark process keeps freed memory for reuse, so that a
library's repeated large allocations stop taking page faults (each case runs in a fresh
interpreter: the setting lasts a process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fastnn.bench.allocator import ENV

# Allocate and free a 64 MiB array (above the largest threshold glibc adapts to) until
# warm, then count the page faults of five more.
_PROBE = r"""
import resource
import numpy as np
from fastnn.bench.allocator import steady_allocator

print(steady_allocator())
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2):
    a = np.ones(16 << 20, np.float32); del a
before = faults()
for _ in range(5):
    a = np.ones(16 << 20, np.float32); del a
print(faults() - before)
"""


def _probe(mode: str | None) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if mode is not None:
        env[ENV] = mode
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    note, faults = done.stdout.strip().splitlines()
    return note, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_allocator_reuses_freed_memory():
    note, faults = _probe(None)
    assert note.startswith("freed memory kept"), note
    assert faults < 100, f"{faults} page faults for memory allocated again"
    note, faults = _probe("default")
    assert "as configured" in note, note
    assert faults >= 100, "glibc's defaults map a 64 MiB block afresh on every allocation"


def test_unknown_mode_is_refused(monkeypatch):
    from fastnn.bench import allocator

    monkeypatch.setattr(allocator, "_applied", [])
    monkeypatch.setenv(ENV, "jemalloc")
    with pytest.raises(ValueError, match=ENV):
        allocator.steady_allocator()
