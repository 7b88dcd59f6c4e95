"""fastnn.distributed in one process without mpiexec: a world of one that changes
nothing, the sampler's partition property, SyncBatchNorm's conversion, the
gradient-ready hook of Module.backward, argument checks and the NCCL path against a
stand-in ``cupy.cuda.nccl``.  The multi-process tests are in test_distributed_mpi.py."""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest

from fastnn import distributed as dist
from fastnn import nn, optim
from fastnn.distributed import _world, nccl
from fastnn.distributed.syncbn import _combine

pytestmark = pytest.mark.skipif(
    _world.launched_by_mpi(), reason="these tests run in a single process (no mpiexec)"
)


def small_model(seed: int = 0, batchnorm: bool = True) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    layers = [nn.Conv2d(1, 3, 3, rng=rng, dtype=np.float64)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(3, dtype=np.float64))
    layers += [nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4, rng=rng, dtype=np.float64)]
    return nn.Sequential(*layers)


def train(model: nn.Module, steps: int = 3, reduce: bool = False) -> None:
    data = np.random.default_rng(1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        x = data.standard_normal((5, 1, 6, 6))
        y = data.integers(0, 4, 5)
        loss = nn.CrossEntropyLoss()
        loss(model(x), y)
        model.backward(loss.backward(), need_input_grad=False)
        if reduce:
            dist.allreduce_gradients(model)
            dist.allreduce_gradients(model, overlap=True)
        opt.step()
        opt.zero_grad()


def test_single_process_world_is_plain_fastnn():
    assert dist.init() == 1 and dist.world_size() == 1 and dist.rank() == 0
    assert dist.comm() is None and dist.is_main_process()
    dist.barrier()
    plain, wrapped = small_model(), small_model()
    dist.broadcast_parameters(wrapped)
    wrapped = dist.convert_sync_batchnorm(wrapped)
    train(plain)
    train(wrapped, reduce=True)
    for (name, a), b in zip(plain.state_dict().items(), wrapped.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert dist.buckets_of(wrapped) is None  # nothing set up in a world of one


def test_launcher_detection():
    assert not _world.launched_by_mpi({"HOME": "/root"})
    assert _world.launched_by_mpi({"PMI_RANK": "0", "PMI_SIZE": "2"})
    assert _world.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "4"})
    assert _world.launched_by_mpi({"PMI_FD": "5"})


def test_import_needs_no_mpi4py():
    code = (
        "import sys; import fastnn.distributed as d; d.init(); "
        "assert 'mpi4py' not in sys.modules; print(d.world_size())"
    )
    env = {k: v for k, v in os.environ.items() if k not in _world.LAUNCHER_VARIABLES}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize(
    ("n", "world", "drop_last"),
    [(10, 2, False), (11, 2, False), (11, 2, True), (7, 3, False), (7, 3, True), (1, 4, False)],
)
def test_sampler_partitions_every_epoch(n, world, drop_last):
    samplers = [
        dist.DistributedSampler(n, seed=3, drop_last=drop_last, rank=r, world_size=world)
        for r in range(world)
    ]
    orders = []
    for epoch in range(3):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        shares = [sampler.indices() for sampler in samplers]
        assert len({len(share) for share in shares}) == 1
        assert all(len(share) == len(s) for share, s in zip(shares, samplers))
        every = np.concatenate(shares)
        if drop_last:
            assert len(every) == n - n % world and len(set(every.tolist())) == len(every)
        else:
            assert set(every.tolist()) == set(range(n))  # every index at least once
            assert len(every) == -(-n // world) * world  # padded by repeats
        orders.append(np.stack(shares, axis=1).ravel()[: min(n, len(every))])
    if n > 3:
        assert not np.array_equal(orders[0], orders[1])  # a new order each epoch
    assert list(samplers[0]) == samplers[0].indices().tolist()


def test_sampler_without_shuffle_strides():
    s = dist.DistributedSampler(7, shuffle=False, rank=1, world_size=3)
    assert s.indices().tolist() == [1, 4, 0]  # padding repeats index 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n": -1}, ValueError),
        ({"n": 2.5}, TypeError),
        ({"n": 4, "rank": 2, "world_size": 2}, ValueError),
        ({"n": 4, "shuffle": 1}, TypeError),
        ({"n": 4, "world_size": 0}, ValueError),
        ({"n": 4, "seed": -2}, ValueError),
    ],
)
def test_sampler_checks_arguments(kwargs, error):
    with pytest.raises(error):
        dist.DistributedSampler(**kwargs)


def test_combined_statistics_are_the_whole_batch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 3)) * 5 + 100
    parts = [x[:2], x[2:7], x[7:], x[:0]]
    rows = [
        np.concatenate(
            [[len(p)], p.mean(0) if len(p) else [0] * 3, p.var(0) if len(p) else [0] * 3]
        )
        for p in parts
    ]
    count, mean, var = _combine(np.array(rows), 3)
    assert count == 9
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-12)


def test_convert_sync_batchnorm_shares_state():
    model = nn.Sequential(
        nn.Residual(nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))), nn.BatchNorm1d(2)
    )
    params = [id(p) for p in model.parameters()]
    running = model.state_dict()
    converted = dist.convert_sync_batchnorm(model)
    assert converted is model
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("SyncBatchNorm") == 2 and "BatchNorm2d" not in kinds
    assert [id(p) for p in model.parameters()] == params
    assert model.state_dict().keys() == running.keys()
    alone = dist.convert_sync_batchnorm(nn.BatchNorm1d(3))
    assert isinstance(alone, dist.SyncBatchNorm)
    with pytest.raises(TypeError):
        dist.convert_sync_batchnorm("model")


def test_sync_batchnorm_eval_and_world_of_one_match_batchnorm():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 5))
    plain = nn.BatchNorm1d(3, dtype=np.float64)
    sync = dist.SyncBatchNorm.from_batchnorm(nn.BatchNorm1d(3, dtype=np.float64))
    for module in (plain, sync):
        module.weight.data[...] = [1.0, 2.0, 0.5]
    for training in (True, False):
        plain.train(training), sync.train(training)
        np.testing.assert_array_equal(plain(x), sync(x))
        g = rng.standard_normal(x.shape)
        np.testing.assert_array_equal(plain.backward(g), sync.backward(g))


def test_grad_ready_hook():
    model = small_model(batchnorm=False)
    seen: list[str] = []
    removers = [
        layer.register_grad_ready_hook(lambda m: seen.append(type(m).__name__)) for layer in model
    ]
    assert "backward" not in vars(nn.Linear(2, 2))  # unhooked modules keep the class method
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    out = model(x)
    model.backward(np.ones_like(out))
    assert seen == ["Linear", "Flatten", "ReLU", "Conv2d"]  # in backward order
    assert all(p.grad is not None for p in model.parameters())
    for remove in removers:
        remove()
    assert all("backward" not in vars(layer) for layer in model)
    model(x)
    model.backward(np.ones_like(out))
    assert len(seen) == 4
    with pytest.raises(TypeError):
        model.register_grad_ready_hook(3)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda m: dist.allreduce_gradients("m"), TypeError),
        (lambda m: dist.allreduce_gradients(m, average=1), TypeError),
        (lambda m: dist.allreduce_gradients(m, overlap="yes"), TypeError),
        (lambda m: dist.allreduce_gradients(m, bucket_bytes=0), ValueError),
        (lambda m: dist.allreduce_gradients(m, bucket_bytes=2.0), TypeError),
        (lambda m: dist.broadcast_parameters(m, root=1), ValueError),
        (lambda m: dist.broadcast_parameters(m, root=True), TypeError),
        (lambda m: dist.init(timeout=-1), ValueError),
        (lambda m: dist.init(timeout="1"), TypeError),
        (lambda m: dist.save_checkpoint("x.npz", "m"), TypeError),
    ],
)
def test_argument_checks(call, error):
    with pytest.raises(error):
        call(small_model())


def test_save_checkpoint_and_log(tmp_path, capsys):
    model = small_model()
    dist.save_checkpoint(tmp_path / "m.npz", model)
    restored = small_model(seed=5).load(tmp_path / "m.npz")
    assert restored.state_dict().keys() == model.state_dict().keys()
    dist.log("hello", 3)
    assert capsys.readouterr().out == "hello 3\n"


# ------------------------------------------------------------------ NCCL (a stand-in)


class _Pointer:
    def __init__(self, array: np.ndarray) -> None:
        self.ptr = array.ctypes.data


class _DeviceArray:
    """What NcclTransport reads of a CuPy array: data.ptr, size, dtype."""

    def __init__(self, array: np.ndarray) -> None:
        self.host, self.data, self.size, self.dtype = (
            array,
            _Pointer(array),
            array.size,
            array.dtype,
        )


def _fake_modules(calls: list) -> tuple[types.SimpleNamespace, types.SimpleNamespace]:
    class Communicator:
        def __init__(self, size, uid, rank):
            calls.append(("init", size, uid, rank))

        def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802 (cupy's name)
            calls.append(("allReduce", send, recv, count, dtype, op, stream))

        def bcast(self, ptr, count, dtype, root, stream):
            calls.append(("bcast", ptr, count, dtype, root, stream))

    fake_nccl = types.SimpleNamespace(
        NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, NcclCommunicator=Communicator,
        get_unique_id=lambda: b"uid",
    )  # fmt: skip
    stream = types.SimpleNamespace(ptr=1234)
    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(get_current_stream=lambda: stream))
    return fake_nccl, fake_cupy


def test_nccl_path_calls(monkeypatch):
    calls: list = []
    nccl.use_modules(*_fake_modules(calls))
    try:
        monkeypatch.setattr(_world._WORLD, "comm", types.SimpleNamespace(bcast=lambda v, root: v))
        flat = _DeviceArray(np.zeros(6, dtype=np.float32))
        transport = nccl.transport()
        transport.start(flat)
        transport.wait([None])
        nccl.broadcast(_DeviceArray(np.zeros(3)), 0)
        with pytest.raises(TypeError, match="dtype"):
            transport.allreduce(_DeviceArray(np.zeros(2, dtype=np.int32)))
    finally:
        nccl.use_modules()
    ptr = flat.data.ptr
    assert calls[0] == ("init", 1, b"uid", 0)
    assert calls[1] == ("allReduce", ptr, ptr, 6, 7, 0, 1234)
    assert calls[2][0] == "bcast" and calls[2][2:] == (3, 8, 0, 1234)


def test_data_parallel_in_one_process():
    from fastnn.distributed.training import DataParallel, threads_per_process

    assert threads_per_process(2, cpus=16) == 8 and threads_per_process(4, cpus=2) == 1
    parallel = DataParallel()
    rows = np.arange(5)
    np.testing.assert_array_equal(parallel.shard(rows), rows)
    assert parallel.sum(1.5, 2.0) == (1.5, 2.0)
    summary = parallel.annotate({"train_seconds": 2.0})
    assert summary["processes"] == 1 and summary["samples_per_s_total"] == 2.5


def test_mpiexec_command():
    from fastnn.distributed.launch import mpiexec_command

    command = mpiexec_command(3, ["python", "x.py"])
    assert command[1:] == ["-n", "3", "python", "x.py"] and command[0].endswith("mpiexec")
    with pytest.raises(ValueError):
        mpiexec_command(0, ["python"])


# ------------------------------------------------------------------ buckets (a stand-in transport)


class _DoublingTransport:
    """Two ranks holding the same gradients: a sum doubles every value."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.blocking = 0

    def allreduce(self, flat):
        self.blocking += 1
        flat *= 2

    def start(self, flat):  # the sum lands when the request completes, in wait
        self.started.append(flat.size)
        return flat

    def progress(self, requests):
        pass

    def wait(self, requests):
        for flat in requests:
            flat *= 2


def _backward(model, x):
    out = model(x)
    model.backward(np.ones_like(out), need_input_grad=False)


@pytest.mark.parametrize("overlap", [False, True])
def test_gradient_buckets(overlap):
    from fastnn.distributed._buckets import GradientBuckets

    model = small_model(batchnorm=False)
    model[0].bias.requires_grad = False
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    transport = _DoublingTransport()
    buckets = GradientBuckets(model, transport, 2, bucket_bytes=200, overlap=overlap)
    trained = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(b.params) for b in buckets.buckets) == len(trained) == 3
    assert len(buckets.buckets) == 3  # 200 bytes: the 432-byte weight alone, then the rest
    for step in range(2):
        _backward(model, x)
        expected = [p.grad.copy() for p in trained]
        buckets.finish(average=True)  # doubled, then halved: the same values, in buckets
        for param, want in zip(trained, expected):
            np.testing.assert_array_equal(param.grad, want)
            assert any(np.shares_memory(param.grad, b.flat) for b in buckets.buckets)
        # from the second step on, overlap starts every bucket during backward
        assert buckets.started_in_backward == (len(buckets.buckets) if overlap and step else 0)
        model.zero_grad()
    assert model[0].bias.grad is None  # frozen: not in a bucket
    model[3].weight.grad = None
    buckets.finish(average=False)  # a parameter without a gradient contributes zeros
    assert not model[3].weight.grad.any()
    buckets.remove()
    assert all("backward" not in vars(m) for m in model.modules())


def test_bucket_layout_groups_by_dtype_in_backward_order():
    from fastnn.distributed._buckets import _layout

    model = small_model(batchnorm=False)
    model[3].to(dtype=np.float32)
    groups = _layout(model.parameters(), bucket_bytes=1 << 20)
    assert [[p.dtype.name for p in g] for g in groups] == [["float32"] * 2, ["float64"] * 2]
    assert groups[0][0] is model[3].bias and groups[1][0] is model[0].bias  # reversed
