"""The training batch stream, resumable at any step.

Batch i of a rank is a pure function of (seed, rank, world_size, i): the window order comes from
`playworld.data.windows.window_order` (a seeded permutation per epoch, dealt round-robin to ranks),
the same order `make_loader` yields. Starting the stream at `start` skips the first `start` index
batches without loading any frames, so `--resume` sees exactly the batches the straight run saw.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch

from playworld.data.batch import Batch
from playworld.data.windows import WindowSampler, window_order


class _ResumableStream(torch.utils.data.IterableDataset):
    """Batches start, start+1, ... of one rank; worker w of W builds those with (i - start) % W == w,
    so the DataLoader's round-robin over workers yields them in order."""

    def __init__(self, sampler: WindowSampler, batch_size: int, seed: int, rank: int, world_size: int, start: int):
        self.sampler, self.batch_size = sampler, batch_size
        self.seed, self.rank, self.world_size, self.start = seed, rank, world_size, start

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = window_order(len(self.sampler), self.batch_size, self.seed, self.rank, self.world_size)
        for i, indices in enumerate(itertools.islice(order, self.start, None)):
            if i % workers == worker:
                yield self.sampler.collate(indices)


def training_batches(
    dataset, context: int, horizon: int, batch_size: int, seed: int, rank: int, world_size: int,
    num_workers: int, start: int = 0,
) -> Iterator[Batch]:
    """Endless training Batches of this rank from step `start` on (train split)."""
    sampler = WindowSampler(dataset, context, horizon, "train")
    stream = _ResumableStream(sampler, batch_size, seed, rank, world_size, start)
    if num_workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers, prefetch_factor=4)
    return iter(loader)
