"""fastnn.jax's GPU call path (fastnn/jax/_gpu.py) without a GPU: the route decision for a
GPU platform, and the buffer_callback writer on stand-ins for XLA's device buffers.

A GPU platform is jax's default backend reporting "gpu" (patched here).  XLA's callback
buffers are :class:`DeviceBuffer`: ``__cuda_array_interface__`` over host memory, read-only
for operands, as jaxlib's ``Buffer`` gives it on CUDA.  CuPy is the emulator of
tests/gpu/test_cupy_backend_emulator.py (fastnn's real cupy backend and CUDA C kernels,
run on the CPU), extended with ``ExternalStream``, ``Device`` contexts and
``pointerGetAttributes``; every emulated launch records the stream and device current at
the time.  ``jax.experimental.buffer_callback`` is replaced by :func:`emulated_callback`,
which runs the real writer inside a ``pure_callback`` on fresh NaN-filled result buffers
and returns those buffers: what comes back is what the writer wrote into them in place.

``test_real_gpu_smoke`` is the check for a machine with a CUDA jax and CuPy; it runs the
bridge there for real and is skipped elsewhere.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="pip install 'fastnn[jax]' (CI installs it)")

import jax.numpy as jnp  # noqa: E402

import fastnn  # noqa: E402
import fastnn.jax as fj  # noqa: E402
from fastnn._dispatch import active_backend  # noqa: E402
from fastnn.jax import _gpu, _route  # noqa: E402
from tests.gpu import test_cupy_backend_emulator as emu  # noqa: E402
from tests.jax_bridge.jax_helpers import assert_close, normal, precision, value_and_grads  # noqa: E402

DTYPES = ("float32", "float64")
XLA_STREAM = 0x5EED  # the cudaStream_t XLA hands the callback (ctx.stream)
XLA_DEVICE = 1  # the device holding XLA's buffers (not the current one, 0)


class DeviceBuffer:
    """jaxlib's callback Buffer on CUDA: shape, dtype, writeable, and a version-2
    ``__cuda_array_interface__`` (C-contiguous, no strides, no stream) over ``array``."""

    def __init__(self, array: np.ndarray, writeable: bool):
        self.array = np.ascontiguousarray(array)
        self.shape, self.dtype, self.writeable = self.array.shape, self.array.dtype, writeable

    @property
    def __cuda_array_interface__(self) -> dict:
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.array.ctypes.data, not self.writeable),
            "version": 2,
        }


class HostBuffer(DeviceBuffer):
    """jaxlib's Buffer on the CPU: ``__array__``; the CUDA interface raises (jax's error
    type is no AttributeError)."""

    @property
    def __cuda_array_interface__(self) -> dict:
        raise RuntimeError("UNIMPLEMENTED: Buffer.__cuda_array_interface__ is only on CUDA")

    def __array__(self, dtype=None, copy=None):
        return self.array


def run_writer(write, specs, ins, buffer=DeviceBuffer):
    """Call a buffer_callback writer as XLA would: NaN-filled result buffers, read-only
    operand buffers, a context with XLA's stream; returns the result buffers' arrays."""
    outs = [buffer(np.full(s.shape, np.nan, s.dtype), writeable=True) for s in specs]
    write(
        types.SimpleNamespace(stream=XLA_STREAM), outs, *(buffer(np.asarray(a), False) for a in ins)
    )
    return [o.array for o in outs]


def emulated_callback(calls: list):
    """A stand-in for buffer_callback: the writer runs on :class:`DeviceBuffer` s inside a
    pure_callback; ``calls`` records each writer."""

    def buffer_callback(write, specs):
        calls.append(write)

        def apply(*args):
            run = lambda *ins: tuple(run_writer(write, specs, ins))  # noqa: E731
            return jax.pure_callback(run, specs, *args, vmap_method="sequential")

        return apply

    return buffer_callback


class EmulatedGpu:
    """CuPy's stream and device state on the emulator, and what each launch saw."""

    def __init__(self, fake_cupy: types.ModuleType):
        self.stream, self.device, self.launches = 0, 0, []
        gpu = self

        class Device:
            def __init__(self, device=None):
                self.id = gpu.device if device is None else int(device)
                self.compute_capability = "emulated"

            def synchronize(self):
                pass

            def __enter__(self):
                self.saved, gpu.device = gpu.device, self.id
                return self

            def __exit__(self, *exc):
                gpu.device = self.saved

        class ExternalStream:
            def __init__(self, ptr: int):
                self.ptr = ptr

            def __enter__(self):
                self.saved, gpu.stream = gpu.stream, self.ptr
                return self

            def __exit__(self, *exc):
                gpu.stream = self.saved

        fake_cupy.cuda.Device, fake_cupy.cuda.ExternalStream = Device, ExternalStream
        fake_cupy.cuda.runtime.pointerGetAttributes = lambda ptr: types.SimpleNamespace(
            device=XLA_DEVICE
        )


@pytest.fixture(scope="module")
def emulator():
    if emu.CXX is None:
        pytest.skip("the CUDA emulator needs g++")
    with emu.installed() as fake:
        yield fake


@pytest.fixture
def gpu(emulator, monkeypatch):
    """jax reports a GPU; buffer_callback is emulated; emulated launches are recorded."""
    state = EmulatedGpu(emulator)
    launch = emu.EmulatedKernel.__call__

    def recording(self, *args, **kwargs):
        state.launches.append((state.stream, state.device))
        return launch(self, *args, **kwargs)

    monkeypatch.setattr(emu.EmulatedKernel, "__call__", recording)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    state.calls = []
    monkeypatch.setattr(_route, "_buffer_callback", emulated_callback(state.calls))
    jax.clear_caches()  # traces made for the CPU must not serve the GPU (and back)
    yield state
    jax.clear_caches()


@pytest.fixture
def restore_route():
    before = fj.get_route()
    yield
    fj.set_route(before)


# ---------------------------------------------------------------------------------------
# The writer on device buffers
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_writer_runs_on_device_views_on_xla_stream(gpu, dtype):
    rng = np.random.default_rng(1)
    x, y = (rng.standard_normal((3, 5)).astype(dtype) for _ in range(2))
    seen = []

    def host(a, b):  # several results, one of another shape
        seen.append((a, b, gpu.stream, gpu.device, active_backend()))
        return fastnn.relu(a), fastnn.sigmoid(b), fastnn.relu(b[:2])

    specs = [jax.ShapeDtypeStruct(s, dtype) for s in ((3, 5), (3, 5), (2, 5))]
    outs = run_writer(_gpu.writer(host, _route._write_host), specs, (x, y))
    a, b, stream, device, backend = seen[0]
    assert isinstance(a, emu.FakeArray) and isinstance(b, emu.FakeArray)
    assert (stream, device, backend) == (XLA_STREAM, XLA_DEVICE, "cupy")
    assert {launch for launch in gpu.launches} == {(XLA_STREAM, XLA_DEVICE)}
    assert (gpu.stream, gpu.device) == (0, 0)  # put back after the call
    for got, want in zip(outs, (fastnn.relu(x), fastnn.sigmoid(y), fastnn.relu(y[:2]))):
        assert got.dtype == np.dtype(dtype)
        assert_close(got, want, dtype)


def test_writer_takes_operands_without_copy(gpu):
    x = np.arange(6.0).reshape(2, 3)
    buffers = []

    def host(a):
        buffers.append(a)
        return (a + 1,)

    write = _gpu.writer(host, _route._write_host)
    operand = DeviceBuffer(x, writeable=False)
    out = DeviceBuffer(np.full((2, 3), np.nan), writeable=True)
    write(types.SimpleNamespace(stream=XLA_STREAM), [out], operand)
    assert np.shares_memory(buffers[0], operand.array)
    np.testing.assert_array_equal(out.array, x + 1)


def test_writer_rejects_a_result_of_another_dtype(gpu):
    write = _gpu.writer(lambda a: (a.astype(np.float32),), _route._write_host)
    spec = jax.ShapeDtypeStruct((4,), np.float64)
    with pytest.raises(RuntimeError, match="float32.*for an XLA buffer of float64"):
        run_writer(write, [spec], (np.ones(4),))


def test_writer_on_host_buffers_runs_the_cpu_path(gpu):
    """Traced while the default backend is a GPU, lowered for the CPU: host buffers."""
    seen = []

    def host(a):
        seen.append(type(a))
        return (fastnn.tanh(a),)

    x = np.linspace(-2, 2, 7)
    spec = jax.ShapeDtypeStruct((7,), np.float64)
    (out,) = run_writer(_gpu.writer(host, _route._write_host), [spec], (x,), HostBuffer)
    assert seen == [np.ndarray] and not gpu.launches
    np.testing.assert_array_equal(out, fastnn.tanh(x))


def test_numba_path_waits_for_xla_then_for_its_own_stream(monkeypatch):
    """Without CuPy: Numba views, fastnn's numba-cuda backend, synchronised both ways."""
    from numba import cuda

    events = []

    class NumbaArray(np.ndarray):
        def copy_to_device(self, other):
            events.append("copy")
            np.copyto(self, other, casting="no")

    def as_cuda_array(buf, sync=True):
        assert sync is False
        return emu._from_interface(buf).view(NumbaArray)

    waits = types.SimpleNamespace(synchronize=lambda: events.append("default stream done"))
    monkeypatch.setattr(_gpu, "device_backend", lambda: "numba-cuda")
    monkeypatch.setattr(cuda, "as_cuda_array", as_cuda_array, raising=False)
    monkeypatch.setattr(cuda, "default_stream", lambda: waits)
    monkeypatch.setattr(cuda, "external_stream", lambda ptr: types.SimpleNamespace(
        synchronize=lambda: events.append(f"xla stream {ptr:#x} done")))  # fmt: skip

    def host(a, b):
        events.append(("host", active_backend(), type(a).__name__))
        return a * b, a - b

    x, y = np.arange(4.0), np.full(4, 3.0)
    specs = [jax.ShapeDtypeStruct((4,), np.float64)] * 2
    outs = run_writer(_gpu.writer(host, _route._write_host), specs, (x, y))
    assert events == [
        f"xla stream {XLA_STREAM:#x} done",
        ("host", "numba-cuda", "NumbaArray"),
        "copy",
        "copy",
        "default stream done",
    ]
    np.testing.assert_array_equal(outs[0], x * y)
    np.testing.assert_array_equal(outs[1], x - y)


def test_device_backend_prefers_cupy_then_numba(monkeypatch):
    status = {"cpu": (True, ""), "reference": (True, ""), "cupy": (False, "no cupy")}
    status["numba-cuda"] = (True, "numba")
    monkeypatch.setattr(fastnn, "backends", lambda: status)
    assert _gpu.device_backend() == "numba-cuda"
    status["cupy"] = (True, "cupy")
    assert _gpu.device_backend() == "cupy"
    status["cupy"], status["numba-cuda"] = (False, "no cupy"), (False, "no driver")
    with pytest.raises(RuntimeError, match="cupy: no cupy; numba-cuda: no driver"):
        _gpu.device_backend()


# ---------------------------------------------------------------------------------------
# The route decision
# ---------------------------------------------------------------------------------------


def _spy_writers(monkeypatch) -> list:
    made = []
    writer = _gpu.writer

    def spy(host, host_write):
        made.append(host)
        return writer(host, host_write)

    monkeypatch.setattr(_gpu, "writer", spy)
    return made


@pytest.mark.parametrize("route", ["auto", "ffi", "buffer_callback"])
def test_gpu_platform_takes_the_gpu_path(gpu, monkeypatch, restore_route, route):
    fj.set_route(route)
    made = _spy_writers(monkeypatch)
    x = jnp.asarray(np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4))
    y = jax.jit(fj.relu)(x)  # relu has a C handler: not taken on a GPU
    assert len(made) == 1 and gpu.calls and gpu.launches
    np.testing.assert_array_equal(np.asarray(y), np.maximum(np.asarray(x), 0))


def test_gpu_platform_refuses_pure_callback(gpu, restore_route):
    fj.set_route("pure_callback")
    with pytest.raises(ValueError, match="'pure_callback' would copy .* to the host"):
        jax.jit(fj.sigmoid)(jnp.ones(3))


@pytest.mark.parametrize("route", ["auto", "buffer_callback", "pure_callback"])
def test_cpu_platform_takes_the_cpu_routes(monkeypatch, restore_route, route):
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")  # also where a GPU is
    fj.set_route(route)
    jax.clear_caches()
    made = _spy_writers(monkeypatch)
    with jax.default_device(jax.devices("cpu")[0]):
        x = jnp.asarray(np.linspace(-3, 3, 12).reshape(3, 4), dtype=jnp.float32)
        y = jax.jit(lambda v: fj.softmax(v, axis=0))(x)  # axis 0: a callback, no handler
    assert not made
    np.testing.assert_allclose(np.asarray(y), fastnn.softmax(np.asarray(x), 0), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# fastnn.jax end to end on the emulated GPU, against the CPU
# ---------------------------------------------------------------------------------------


def _cases(rng, dtype):
    x = normal(rng, (2, 3, 7, 6), dtype)
    w, b = normal(rng, (4, 3, 3, 2), dtype), normal(rng, (4,), dtype)
    f, fw, fb = normal(rng, (5, 6), dtype), normal(rng, (3, 6), dtype), normal(rng, (3,), dtype)
    labels = jnp.asarray(rng.integers(0, 3, 5))
    return {
        "conv2d": (lambda x, w, b: fj.conv2d(x, w, b, stride=(2, 1), padding=1), (x, w, b)),
        "max_pool2d": (lambda x: fj.max_pool2d(x, 2, padding=1), (x,)),
        "avg_pool2d": (lambda x: fj.avg_pool2d(x, 3, 2, ceil_mode=True), (x,)),
        "linear_relu": (lambda x, w, b: fj.linear(x, w, b, activation="relu"), (f, fw, fb)),
        "log_softmax": (lambda x: fj.log_softmax(x, axis=1), (f,)),
        "cross_entropy": (lambda x: fj.cross_entropy(x[:, :3], labels, "none"), (f,)),
        "batch_norm": (lambda x: fj.batch_norm(x, training=True)[0], (x,)),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_values_and_gradients_match_the_cpu(emulator, monkeypatch, dtype):
    with precision(dtype):
        cases = _cases(np.random.default_rng(5), dtype)
        want = {name: value_and_grads(fn, args, tuple(range(len(args))))
                for name, (fn, args) in cases.items()}  # fmt: skip
        with monkeypatch.context() as patch:
            patch.setattr(jax, "default_backend", lambda: "gpu")
            calls = []
            patch.setattr(_route, "_buffer_callback", emulated_callback(calls))
            EmulatedGpu(emulator)
            jax.clear_caches()
            got = {name: value_and_grads(fn, args, tuple(range(len(args))))
                   for name, (fn, args) in cases.items()}  # fmt: skip
        jax.clear_caches()
    assert len(calls) >= 2 * len(cases)  # a forward and a backward kernel each, at least
    for name in cases:
        (out, grads), (ref, ref_grads) = got[name], want[name]
        assert_close(out, ref, dtype, scale=10)
        for g, r in zip(grads, ref_grads):
            assert_close(g, r, dtype, scale=10)


# ---------------------------------------------------------------------------------------
# On a real GPU
# ---------------------------------------------------------------------------------------


def _real_gpu() -> bool:
    try:
        return jax.default_backend() == "gpu" and _gpu.device_backend() == "cupy"
    except RuntimeError:
        return False


@pytest.mark.skipif(not _real_gpu(), reason="needs a CUDA jax (jax[cuda12]) and CuPy")
@pytest.mark.parametrize("dtype", DTYPES)
def test_real_gpu_smoke(dtype):
    """On a GPU: fastnn.jax (CuPy on XLA's stream) against XLA's own ops."""
    from jax import lax

    with precision(dtype):
        rng = np.random.default_rng(3)
        x, w = normal(rng, (4, 3, 16, 16), dtype), normal(rng, (8, 3, 3, 3), dtype)

        def ours(x, w):
            return fj.max_pool2d(fj.relu(fj.conv2d(x, w, padding=1)), 2)

        def xla(x, w):
            y = lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)])
            return lax.reduce_window(jax.nn.relu(y), -jnp.inf, lax.max, (1, 1, 2, 2),
                                     (1, 1, 2, 2), "VALID")  # fmt: skip

        out, grads = value_and_grads(ours, (x, w), (0, 1))
        ref, ref_grads = value_and_grads(xla, (x, w), (0, 1))
        assert out.devices() == ref.devices()
        assert_close(out, ref, dtype, scale=100)
        for g, r in zip(grads, ref_grads):
            assert_close(g, r, dtype, scale=100)


def test_gpu_smoke_jax_rows_on_the_emulated_gpu(gpu):
    """The GPU smoke script's fastnn.jax row: the jitted step runs through the GPU writer
    and agrees with XLA's ops; on a CPU jax there is no row and a reason."""
    from fastnn.bench.tables.gpu_smoke import Row, max_relative_error
    from fastnn.bench.tables.gpu_smoke_jax import jax_rows
    from fastnn.bench.timing import TimingPlan

    rows, reason = jax_rows("tiny", TimingPlan.rounds(1, settle=0.0), Row, max_relative_error)
    assert reason == "" and len(rows) == 1
    assert rows[0].passed and rows[0].error <= 1e-3, rows[0]
    assert rows[0].backend == "jax/cupy" and rows[0].baseline == "xla"
    assert gpu.calls and gpu.launches  # the writer ran, kernels launched on the emulator


def test_gpu_smoke_jax_rows_skip_off_the_gpu():
    from fastnn.bench.tables.gpu_smoke import Row, max_relative_error
    from fastnn.bench.tables.gpu_smoke_jax import jax_rows
    from fastnn.bench.timing import TimingPlan

    rows, reason = jax_rows("tiny", TimingPlan.rounds(1, settle=0.0), Row, max_relative_error)
    assert rows == [] and "not a GPU" in reason
