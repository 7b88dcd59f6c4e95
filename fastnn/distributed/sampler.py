"""DistributedSampler: this rank's share of the sample indices of each epoch."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

import numpy as np

from fastnn.distributed import _world

__all__ = ["DistributedSampler"]


def _int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"DistributedSampler: {name} must be >= {low}, got {value}")
    return int(value)


class DistributedSampler:
    """Indices of ``n`` samples split over the ranks, as ``torch.utils.data``'s sampler.

    Each epoch the indices 0..n-1 are permuted (``shuffle``: from ``seed`` and the epoch
    given to :meth:`set_epoch`, the same order on every rank) and rank r takes every
    world_size-th one starting at r.  When n is not divisible by the world size the list is
    padded by repeating its first indices so every rank gets ``ceil(n / world)`` (a few
    samples are seen twice per epoch), or, with ``drop_last``, the tail is dropped so each
    rank gets ``floor(n / world)``.  ``rank`` and ``world_size`` default to this process's.
    """

    def __init__(
        self,
        n: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.n = _int("n", n, 0)
        self.world_size = _int(
            "world_size", _world.world_size() if world_size is None else world_size, 1
        )
        self.rank = _int("rank", _world.rank() if rank is None else rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(
                f"DistributedSampler: rank must be < world_size = {self.world_size}, "
                f"got {self.rank}"
            )
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, bool):
                raise TypeError(f"DistributedSampler: {name} must be True or False, got {value!r}")
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = _int("seed", seed, 0)
        self.epoch = 0
        if drop_last:
            self.num_samples = self.n // self.world_size
        else:
            self.num_samples = math.ceil(self.n / self.world_size)
        self.total_size = self.num_samples * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration gives."""
        self.epoch = _int("epoch", epoch, 0)

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (an int64 array)."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:  # pad by repeating from the start (n >= 1 here)
            repeats = math.ceil(self.total_size / self.n)
            order = np.tile(order, repeats)
        order = order[: self.total_size]
        return order[self.rank : self.total_size : self.world_size].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
