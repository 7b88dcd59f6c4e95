"""The dispatcher: backend detection, explicit choice, fallbacks, no eager GPU imports."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _dispatch
from tests.api.test_errors import FakeCudaArray


def test_backends_lists_every_backend_with_a_reason():
    status = fastnn.backends()
    assert list(status) == ["cpu", "reference", "numba-cuda", "cupy"]
    for name, (available, reason) in status.items():
        assert isinstance(available, bool), name
        assert isinstance(reason, str) and reason, name
    assert status["reference"][0] is True
    assert status["cpu"][0] is True, status["cpu"][1]


def test_backends_stays_a_function_after_every_backend_module_loads():
    _dispatch.registered()  # imports every available backend's op modules
    assert callable(fastnn.backends)


def test_every_public_op_has_a_reference_implementation():
    for op in fastnn.OPS:
        assert "reference" in _dispatch.registered(op), op


def test_array_kind_recognises_arrays_without_importing_gpu_packages():
    assert _dispatch.array_kind(np.ones(3)) == "numpy"
    assert _dispatch.array_kind(np.float32(1.0)) == "numpy"
    assert _dispatch.array_kind(np.ones(3).view(np.recarray)) == "numpy"
    assert _dispatch.array_kind([1.0]) is None
    assert _dispatch.array_kind(3.0) is None
    assert _dispatch.array_kind(FakeCudaArray((3,))) == "cuda"


def test_numpy_goes_to_cpu_by_default_and_backend_keyword_overrides():
    x = np.ones(3, np.float32)
    assert _dispatch.resolve("relu", "numpy") is _dispatch.registered("relu")["cpu"]
    reference = _dispatch.registered("relu")["reference"]
    assert _dispatch.resolve("relu", "numpy", "reference") is reference
    with fastnn.use_backend("reference"):
        assert _dispatch.resolve("relu", "numpy") is reference
        assert _dispatch.resolve("relu", "numpy", "cpu") is _dispatch.registered("relu")["cpu"]
    assert _dispatch.active_backend() is None
    np.testing.assert_array_equal(fastnn.relu(x, backend="reference"), x)


def test_use_backend_is_per_thread_and_nests():
    seen = {}

    def worker():
        seen["thread"] = _dispatch.active_backend()

    with fastnn.use_backend("reference"):
        with fastnn.use_backend("cpu"):
            assert _dispatch.active_backend() == "cpu"
        assert _dispatch.active_backend() == "reference"
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen["thread"] is None


def test_cpu_falls_back_to_reference_for_an_op_without_a_kernel(monkeypatch):
    def only_reference(x):
        return x

    monkeypatch.setitem(_dispatch._REGISTRY, "_only_reference", {"reference": only_reference})
    monkeypatch.setattr(_dispatch, "_DEFAULT_CACHE", {})
    monkeypatch.setattr(_dispatch, "_NAMED_CACHE", {})
    assert _dispatch.resolve("_only_reference", "numpy") is only_reference
    assert _dispatch.resolve("_only_reference", "numpy", "cpu") is only_reference


def test_host_backend_refuses_gpu_arrays():
    with pytest.raises(ValueError, match="backend 'reference' runs on numpy.ndarray arrays"):
        fastnn.relu(FakeCudaArray((3,)), backend="reference")


def test_gpu_array_without_a_gpu_backend_says_why():
    status = fastnn.backends()
    if status["numba-cuda"][0] or status["cupy"][0]:
        pytest.skip("a GPU backend is available on this machine")
    with pytest.raises(RuntimeError, match="no backend can run CUDA array") as info:
        fastnn.relu(FakeCudaArray((3,)))
    assert status["cupy"][1] in str(info.value)


def _run(code: str, **env: str) -> str:
    import os

    full_env = {**os.environ, **env}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, check=True
    )
    return result.stdout.strip()


def test_import_fastnn_imports_no_gpu_package():
    code = (
        "import sys, numpy as np, fastnn\n"
        "fastnn.relu(np.ones(3, np.float32))\n"
        "fastnn.conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))\n"
        "print(sorted(m for m in ('cupy', 'numba', 'numba.cuda') if m in sys.modules))"
    )
    assert _run(code) == "[]"


def test_num_threads_default_follows_omp_num_threads():
    assert _run("import fastnn; print(fastnn.get_num_threads())", OMP_NUM_THREADS="3") == "3"


def test_set_num_threads_round_trip():
    before = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        fastnn.set_num_threads(np.int64(2))
        assert fastnn.get_num_threads() == 2
    finally:
        fastnn.set_num_threads(before)
