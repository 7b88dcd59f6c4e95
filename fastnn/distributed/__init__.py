"""fastnn.distributed: data-parallel training across processes and machines.

Built on existing engines: MPI through mpi4py for numpy arrays, NCCL through CuPy for GPU
arrays (``pip install 'fastnn[distributed]'`` brings mpi4py and the mpich wheel, whose
``mpiexec`` starts the processes).  A training step on every rank::

    from fastnn import distributed as dist

    dist.init()                                  # a world of one without mpiexec
    dist.broadcast_parameters(model)             # every rank starts from rank 0's weights
    sampler = dist.DistributedSampler(len(train), seed=0)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in batches(sampler.indices(), per_rank_batch):
            loss = criterion(model(x[batch]), y[batch])
            model.backward(criterion.backward())
            dist.allreduce_gradients(model)      # average over the ranks, in place
            optimizer.step(); optimizer.zero_grad()
    dist.save_checkpoint("model.npz", model)     # rank 0 writes

See docs/DISTRIBUTED.md for launching (``mpiexec -n N``, ``fastnn train NAME --nproc N``,
several hosts, Slurm, GPUs), failure handling and the cost model.
"""

from fastnn.distributed._buckets import BUCKET_BYTES
from fastnn.distributed._parallel import (
    allreduce_gradients,
    broadcast_parameters,
    buckets_of,
    release_buckets,
)
from fastnn.distributed._world import (
    barrier,
    comm,
    init,
    is_initialized,
    launched_by_mpi,
    rank,
    timeout,
    world_size,
)
from fastnn.distributed.rank0 import is_main_process, log, save_checkpoint
from fastnn.distributed.sampler import DistributedSampler
from fastnn.distributed.syncbn import SyncBatchNorm, convert_sync_batchnorm

__all__ = [
    "BUCKET_BYTES",
    "DistributedSampler",
    "SyncBatchNorm",
    "allreduce_gradients",
    "barrier",
    "broadcast_parameters",
    "buckets_of",
    "comm",
    "convert_sync_batchnorm",
    "init",
    "is_initialized",
    "is_main_process",
    "launched_by_mpi",
    "log",
    "rank",
    "release_buckets",
    "save_checkpoint",
    "timeout",
    "world_size",
]
