"""The ``cupy`` backend where it cannot run (no CuPy, no GPU): ``import fastnn`` never
touches CuPy, ``backends()`` says why the backend is unavailable, and an op asked to run
there raises RuntimeError with that reason."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

import fastnn
from fastnn._backends import cupy as cupy_backend

CUPY_RUNS_HERE = fastnn.backends()["cupy"][0]

# Run in a fresh interpreter: record every attempt to import cupy (found or not).
_IMPORT_WATCH = """
import sys

attempts = []

class Watch:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "cupy" or name.startswith("cupy."):
            attempts.append(name)
        return None

sys.meta_path.insert(0, Watch)
import numpy as np
import fastnn
fastnn.relu(np.ones(3, dtype=np.float32))
fastnn.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))
print(sorted(set(attempts)))
"""


def test_import_fastnn_never_imports_cupy():
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_WATCH], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.mark.skipif(CUPY_RUNS_HERE, reason="CuPy and a GPU are present: the backend runs")
def test_backends_say_why_cupy_is_unavailable():
    available, reason = fastnn.backends()["cupy"]
    assert available is False
    assert reason == cupy_backend.probe() and reason


@pytest.mark.skipif(CUPY_RUNS_HERE, reason="CuPy and a GPU are present: the backend runs")
def test_an_op_asked_to_run_on_cupy_raises_runtime_error_with_the_reason():
    reason = fastnn.backends()["cupy"][1]
    x = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match="cupy") as info:
        fastnn.relu(x, backend="cupy")
    assert reason in str(info.value)
    with fastnn.use_backend("cupy"), pytest.raises(RuntimeError, match="unavailable"):
        fastnn.softmax(x)


def _fake_cupy(device_count):
    module = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=device_count)
    module.cuda = types.SimpleNamespace(runtime=runtime)
    return module


def test_probe_explains_a_missing_driver_and_a_missing_gpu(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver:\n  CUDA driver version is too old")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(no_driver))
    assert cupy_backend.probe() == (
        "no usable CUDA GPU or driver: cudaErrorInsufficientDriver: CUDA driver version is too old"
    )
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    assert cupy_backend.probe() == "no CUDA GPU is available"
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    assert cupy_backend.probe().startswith("cupy is not installed")


@pytest.mark.skipif(CUPY_RUNS_HERE, reason="CuPy and a GPU are present: the backend runs")
def test_gpu_smoke_script_skips_without_a_gpu(capsys):
    from bench import gpu_smoke

    assert gpu_smoke.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "skipped: no GPU" in out and "cupy" in out
