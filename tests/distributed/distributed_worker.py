"""The rank side of tests/distributed/test_distributed_mpi.py: run with ``mpiexec -n 2 python
tests/distributed/distributed_worker.py SCENARIO``; rank 0 prints one JSON line of results.

equivalence: small float64 models (with and without SyncBatchNorm; SGD with momentum and
  Adam; synchronous and overlapped allreduce; several buckets) trained on half of every
  global batch per rank, against the same model trained in this process on the whole
  batch with plain fastnn; plus the parameters of every rank, and broadcast_parameters.
sampler: every rank's DistributedSampler indices for two epochs, gathered on rank 0.
raise: rank 1 raises while rank 0 waits at a barrier (the job must end, non-zero).
nccl: the CuPy/NCCL path on stand-ins (host arrays typed as CuPy arrays, a cupy.cuda.nccl
  whose communicator reduces through MPI): broadcast, averaged gradients, one unique id.
hang: rank 1 sleeps while rank 0 waits at a barrier (the collective timeout ends it).
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
import types

import numpy as np

from fastnn import distributed as dist
from fastnn import nn, optim

STEPS = 4
GLOBAL_BATCH = 8


def build(batchnorm: bool, seed: int = 3) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    # no bias before a batch norm: its gradient is zero up to rounding, which Adam would
    # blow up to steps of size lr in random directions
    bias = not batchnorm
    layers: list[nn.Module] = [nn.Conv2d(2, 4, 3, padding=1, bias=bias, rng=rng, dtype=np.float64)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(4, dtype=np.float64))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten()]
    layers.append(nn.Linear(4 * 3 * 3, 8, bias=bias, rng=rng, dtype=np.float64))
    if batchnorm:
        layers.append(nn.BatchNorm1d(8, dtype=np.float64))
    layers += [nn.Tanh(), nn.Linear(8, 5, rng=rng, dtype=np.float64)]
    return nn.Sequential(*layers)


def make_optimizer(name: str, model: nn.Module):
    if name == "sgd":
        return optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    # Adam's step g / (sqrt(v) + eps) turns a rounding difference d in a gradient near zero
    # into a step difference of about lr * d / eps; eps = 1e-6 keeps that below 1e-12 here
    # (with batch norm a few gradient entries are ~1e-9, and 1e-8 gave 1.5e-9 relative)
    return optim.Adam(model.parameters(), lr=0.01, eps=1e-6)


def step(model, optimizer, x, y, reduce=None) -> bool:
    """One training step; returns whether every gradient was a view into a bucket."""
    criterion = nn.CrossEntropyLoss()
    criterion(model(x), y)
    model.backward(criterion.backward(), need_input_grad=False)
    in_buckets = False
    if reduce is not None:
        reduce(model)
        flats = [b.flat for b in dist.buckets_of(model).buckets]
        in_buckets = all(
            any(np.shares_memory(p.grad, flat) for flat in flats) for p in model.parameters()
        )
    optimizer.step()
    optimizer.zero_grad()
    return in_buckets


def relative_difference(a: nn.Module, b: nn.Module) -> float:
    worst = 0.0
    state_b = b.state_dict()
    for name, value in a.state_dict().items():
        if value.dtype.kind != "f":
            continue
        scale = max(float(np.max(np.abs(state_b[name]))), 1e-30)
        worst = max(worst, float(np.max(np.abs(value - state_b[name]))) / scale)
    return worst


def flat_parameters(model: nn.Module) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def equivalence_case(opt: str, batchnorm: bool, overlap: bool, bucket_bytes: int) -> dict:
    rank, size = dist.rank(), dist.world_size()
    share = GLOBAL_BATCH // size
    model = build(batchnorm, seed=3 + rank)  # different weights, then rank 0's broadcast
    dist.broadcast_parameters(model)
    if batchnorm:
        model = dist.convert_sync_batchnorm(model)
    reference = build(batchnorm, seed=3)
    opt_model, opt_ref = make_optimizer(opt, model), make_optimizer(opt, reference)
    data = np.random.default_rng(7)

    def reduce(m):
        dist.allreduce_gradients(m, overlap=overlap, bucket_bytes=bucket_bytes)

    for _ in range(STEPS):
        x = data.standard_normal((GLOBAL_BATCH, 2, 6, 6)) * 2 + 1
        y = data.integers(0, 5, GLOBAL_BATCH)
        mine = slice(rank * share, (rank + 1) * share)
        in_buckets = step(model, opt_model, x[mine], y[mine], reduce)
        step(reference, opt_ref, x, y)
    params = flat_parameters(model)
    everyone = np.empty((size, params.size))
    dist.comm().Allgather(params, everyone)
    buckets = dist.buckets_of(model)
    return {
        "relative_difference": relative_difference(model, reference),
        "ranks_identical": bool(np.all(everyone == everyone[0])),
        "buckets": len(buckets.buckets),
        "grads_in_buckets": in_buckets,
        "started_in_backward": buckets.started_in_backward,
    }


def equivalence() -> dict:
    results = {}
    for opt in ("sgd", "adam"):
        for batchnorm in (False, True):
            for overlap in (False, True):
                bucket_bytes = 1024 if overlap else dist.BUCKET_BYTES
                key = (
                    f"{opt}-{'syncbn' if batchnorm else 'plain'}-{'overlap' if overlap else 'sync'}"
                )
                results[key] = equivalence_case(opt, batchnorm, overlap, bucket_bytes)
    # plain BatchNorm keeps per-rank statistics: it differs by design
    dist_bn = equivalence_case_plain_bn()
    results["plain-batchnorm-differs"] = dist_bn
    return results


def equivalence_case_plain_bn() -> float:
    rank, size = dist.rank(), dist.world_size()
    share = GLOBAL_BATCH // size
    model, reference = build(True), build(True)
    opt_model, opt_ref = make_optimizer("sgd", model), make_optimizer("sgd", reference)
    data = np.random.default_rng(7)
    for _ in range(STEPS):
        x = data.standard_normal((GLOBAL_BATCH, 2, 6, 6)) * 2 + 1
        y = data.integers(0, 5, GLOBAL_BATCH)
        mine = slice(rank * share, (rank + 1) * share)
        step(model, opt_model, x[mine], y[mine], dist.allreduce_gradients)
        step(reference, opt_ref, x, y)
    return relative_difference(model, reference)


def sampler() -> dict:
    out = {}
    for n, drop_last in ((10, False), (11, False), (11, True), (1, False)):
        s = dist.DistributedSampler(n, seed=5, drop_last=drop_last)
        epochs = []
        for epoch in (0, 1):
            s.set_epoch(epoch)
            mine = s.indices()
            everyone = np.empty((dist.world_size(), len(s)), dtype=np.int64)
            dist.comm().Allgather(mine, everyone)
            epochs.append(everyone.tolist())
        out[f"{n}-{drop_last}"] = epochs
    return out


def raise_on_rank_one() -> dict:
    if dist.rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    dist.barrier()
    return {"unreachable": True}


def hang_on_rank_one() -> dict:
    """Rank 1 sleeps outside MPI while rank 0 waits at a barrier: the collective timeout
    (1 s here) must abort the job."""
    if dist.rank() == 1:
        time.sleep(60)
    dist.barrier()
    return {"unreachable": True}


class _DeviceArray(np.ndarray):
    """Stand-in CuPy array: host memory that fastnn treats as a "cupy" array, with
    CuPy's ``data.ptr``."""

    @property
    def data(self):  # noqa: D401 (cupy's attribute)
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _install_stand_ins() -> list:
    """A fake ``cupy`` (zeros, the current stream) and ``cupy.cuda.nccl`` whose
    communicator reduces through MPI on the arrays' host memory; returns the unique ids
    the communicators were created with."""
    from mpi4py import MPI

    from fastnn import _kinds
    from fastnn.distributed import nccl

    _kinds._KIND_BY_TYPE[_DeviceArray] = "cupy"
    cupy = types.ModuleType("cupy")
    cupy.ndarray = _DeviceArray
    cupy.zeros = lambda shape, dtype=float: np.zeros(shape, dtype).view(_DeviceArray)
    stream = types.SimpleNamespace(ptr=99)
    cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: stream)
    sys.modules["cupy"] = cupy
    ids: list = []
    types_ = {7: ctypes.c_float, 8: ctypes.c_double}

    def host(ptr: int, count: int, dtype: int) -> np.ndarray:
        return np.ctypeslib.as_array((types_[dtype] * count).from_address(ptr))

    class Communicator:
        def __init__(self, size, uid, rank):
            assert (size, rank) == (dist.world_size(), dist.rank())
            ids.append(uid)

        def allReduce(self, send, recv, count, dtype, op, stream_ptr):  # noqa: N802
            assert send == recv and op == 0 and stream_ptr == 99
            dist.comm().Allreduce(MPI.IN_PLACE, host(recv, count, dtype))

        def bcast(self, ptr, count, dtype, root, stream_ptr):
            dist.comm().Bcast(host(ptr, count, dtype), root=root)

    fake_nccl = types.SimpleNamespace(
        NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, NcclCommunicator=Communicator,
        get_unique_id=lambda: tuple(np.random.default_rng().integers(0, 127, 8).tolist()),
    )  # fmt: skip
    nccl.use_modules(fake_nccl, cupy)
    return ids


def nccl_stand_in() -> dict:
    """broadcast_parameters and allreduce_gradients of a "GPU" model over the NCCL path."""
    ids = _install_stand_ins()
    rank, size = dist.rank(), dist.world_size()
    model = build(False, seed=3 + rank)
    for param in model.parameters():
        param.data = param.data.view(_DeviceArray)
    dist.broadcast_parameters(model)
    mine = flat_parameters(model)
    everyone = np.empty((size, mine.size))
    dist.comm().Allgather(np.ascontiguousarray(mine), everyone)
    grads = []
    for index, param in enumerate(model.parameters()):
        param.grad = np.full(param.shape, rank + index, dtype=param.dtype).view(_DeviceArray)
        grads.append(np.mean([r + index for r in range(size)]))
    dist.allreduce_gradients(model)
    all_ids = dist.comm().allgather(ids[0])
    return {
        "ranks_identical": bool(np.all(everyone == everyone[0])),
        "averaged": all(
            np.all(np.asarray(p.grad) == want) for p, want in zip(model.parameters(), grads)
        ),
        "one_unique_id": len(ids) == 1 and all(i == all_ids[0] for i in all_ids),
        "grad_kind": type(model.parameters()[0].grad).__name__,
        "transport": type(dist.buckets_of(model).transport).__name__,
    }


SCENARIOS = {
    "nccl": nccl_stand_in,
    "equivalence": equivalence,
    "sampler": sampler,
    "raise": raise_on_rank_one,
    "hang": hang_on_rank_one,
}

if __name__ == "__main__":
    dist.init(timeout=float(sys.argv[2]) if len(sys.argv) > 2 else None)
    result = SCENARIOS[sys.argv[1]]()
    result["world_size"] = dist.world_size()
    if dist.rank() == 0:
        print(json.dumps(result), flush=True)
