"""Arrays in and out of the numba-cuda backend (simulator): kinds, streams, validation.

CuPy cannot run here, so a stand-in module named ``cupy`` (an ``ndarray`` type, a current
stream, ``asarray``/``ascontiguousarray``) and a stand-in ``cuda.as_cuda_array`` check the
plumbing of fastnn/_backends/numba_cuda/_device.py: CuPy arrays in -> CuPy arrays out,
launched on CuPy's current stream, strided CuPy inputs made contiguous by CuPy itself.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from numba import cuda

import fastnn
from fastnn import _dispatch
from fastnn._backends.numba_cuda import _device
from fastnn.kernels.numba_cuda.reduce import reduce_kernels
from tests.cudasim.devices import check, dev, host

pytestmark = pytest.mark.cudasim

F32 = np.float32


class _CupyArray:
    """The stand-in ``cupy.ndarray``: host memory, the attributes fastnn reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    flags = property(lambda self: self.data.flags)

    @property
    def __cuda_array_interface__(self) -> dict:
        return {"shape": self.shape, "typestr": self.dtype.str, "version": 3}

    def reshape(self, *shape):
        return _CupyArray(self.data.reshape(*shape))


_CupyArray.__module__ = "cupy"


@pytest.fixture
def fake_cupy(monkeypatch):
    """Install the stand-in CuPy; record the streams and conversions fastnn asks for."""
    calls = {"streams": [], "contiguous": 0, "wrapped": 0}
    module = types.ModuleType("cupy")
    module.ndarray = _CupyArray

    def ascontiguousarray(a):
        calls["contiguous"] += 1
        return _CupyArray(np.ascontiguousarray(a.data))

    def asarray(a):
        return _CupyArray(a.copy_to_host())

    def external_stream(ptr):
        calls["streams"].append(ptr)
        return cuda.default_stream()

    def as_cuda_array(obj, sync=True):
        assert sync is False  # fastnn orders its work on the caller's stream itself
        calls["wrapped"] += 1
        return cuda.to_device(obj.data)

    module.ascontiguousarray = ascontiguousarray
    module.asarray = asarray
    stream = types.SimpleNamespace(ptr=0x1234)
    module.cuda = types.SimpleNamespace(get_current_stream=lambda: stream)
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
    monkeypatch.setattr(cuda, "external_stream", external_stream)
    _device._external_stream.cache_clear()
    yield calls
    _device._external_stream.cache_clear()


def test_cupy_arrays_in_cupy_arrays_out(rng, fake_cupy):
    x = rng.standard_normal((3, 4)).astype(F32)
    w = rng.standard_normal((5, 4)).astype(F32)
    strided = _CupyArray(np.asfortranarray(x))  # CuPy copies it, not fastnn's kernel
    got = fastnn.linear(strided, _CupyArray(w), activation="relu", backend="numba-cuda")
    assert type(got) is _CupyArray and got.shape == (3, 5)
    want = fastnn.linear(x, w, activation="relu", backend="reference")
    np.testing.assert_allclose(got.data, want, rtol=1e-5, atol=1e-5)
    assert fake_cupy["streams"] == [0x1234]  # launched on CuPy's current stream
    assert fake_cupy["contiguous"] == 2 and fake_cupy["wrapped"] == 2

    gi, gw, gb = fastnn.linear_backward(
        _CupyArray(np.ones((3, 5), F32)), _CupyArray(x), _CupyArray(w), backend="numba-cuda"
    )
    assert all(type(g) is _CupyArray for g in (gi, gw, gb))
    np.testing.assert_allclose(gb.data, np.full(5, 3, F32))


def test_cupy_targets_are_checked_on_the_device(rng, fake_cupy):
    logits = _CupyArray(rng.standard_normal((4, 3)).astype(F32))
    with pytest.raises(ValueError, match=r"target must be in \[0, 3\)"):
        fastnn.cross_entropy(logits, _CupyArray(np.array([0, 1, 2, 3])), backend="numba-cuda")
    assert fake_cupy["streams"] == [0x1234] and fake_cupy["wrapped"] == 1


def test_other_cuda_array_objects_are_refused_by_the_simulator():
    class Foreign:
        shape, dtype, ndim = (2,), np.dtype(F32), 1
        __cuda_array_interface__ = {"shape": (2,), "typestr": "<f4", "version": 3}

    assert _dispatch.array_kind(Foreign()) == "cuda"
    with pytest.raises(TypeError, match="simulator"):
        fastnn.relu(Foreign())


def test_results_are_new_device_arrays(rng):
    x = rng.standard_normal((2, 3)).astype(F32)
    d = dev(x)
    out = fastnn.relu(d)
    assert out is not d and host(d).tolist() == x.tolist()
    out_host = host(out)
    out[0, 0] = 123.0  # writing the result leaves the input alone
    assert host(d)[0, 0] == x[0, 0] and out_host[0, 0] != 123.0
    assert _device.stream() == 0  # outside an op: the default stream


def test_mixed_devices_and_dtypes_are_rejected(rng):
    x = rng.standard_normal((2, 3)).astype(F32)
    with pytest.raises(ValueError, match="same device"):
        fastnn.mse_loss(dev(x), x)
    with pytest.raises(TypeError, match="same dtype"):
        fastnn.mse_loss(dev(x), dev(x.astype(np.float64)))
    with pytest.raises(TypeError, match="float32 or float64"):
        fastnn.relu(dev(x.astype(np.int32)))


def test_value_range(rng):
    value_range = _dispatch.registered("_value_range")["numba-cuda"]
    x = rng.standard_normal(50).astype(F32)
    assert value_range(dev(x)) == (float(x.min()), float(x.max()))
    x[35] = np.nan
    low, high = value_range(dev(x))
    assert np.isnan(low) and np.isnan(high)
    ints = np.array([[7, -3], [2, 9]], np.int64)
    assert value_range(dev(ints)) == (-3, 9)
    assert value_range(dev(np.array(4.0))) == (4.0, 4.0)


def test_value_range_kernel_over_several_blocks(rng):
    """Small blocks, so that the grid-stride loop and the per-block partials all work."""
    x = rng.standard_normal(45).astype(F32)
    x[[7, 30]] = [-9.0, 9.0]
    partial = cuda.device_array((2, 3), F32)
    reduce_kernels(np.dtype(F32)).value_range[3, 4](dev(x), partial)
    low, high = host(partial)
    assert low.min() == -9.0 and high.max() == 9.0
    assert low.max() > -9.0  # each block saw its own share


def test_float64_everywhere_simple(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    check(fastnn.gemm(dev(a), dev(b), alpha=2.0), 2 * a @ b, "gemm float64")
