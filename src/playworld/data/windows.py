"""Training windows: K context frames and actions, then F future actions and frames.

A window is (episode, t) with t the index of the first future frame, K <= t <= T - F, so it lies
fully inside one episode. Following the time convention of `playworld.data.batch`:

    context_frames  = frames[t-K : t]      context_actions = actions[t-K : t]
    future_actions  = actions[t : t+F]     future_frames   = frames[t : t+F]
    future_rewards  = rewards[t : t+F]     future_terminated = terminated[t : t+F]

Frames are read from memory-mapped episodes (no dataset-sized load); open episodes are cached.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np
import torch

from playworld.data.batch import Batch
from playworld.data.store import Dataset, Episode
from playworld.errors import PlayworldError

_MAX_OPEN_EPISODES = 512  # each open episode holds one mmap (and a file descriptor)


class WindowSampler:
    """Every window of `context` + `horizon` frames inside the episodes of one split."""

    def __init__(self, dataset: Dataset | str, context: int, horizon: int, split: str | None = "train"):
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        if context < 1 or horizon < 1:
            raise ValueError(f"context and horizon must be >= 1, got {context}, {horizon}")
        self.context, self.horizon, self.split = int(context), int(horizon), split
        self.episodes = np.array(self.dataset.episode_ids(split), dtype=np.int64)
        lengths = np.array([self.dataset.episode_length(e) for e in self.episodes], dtype=np.int64)
        # windows per episode: t in [K, T-F] -> max(0, T - F - K + 1)
        counts = np.maximum(0, lengths - self.horizon - self.context + 1)
        self._starts = np.concatenate([[0], np.cumsum(counts)])  # window index -> episode via searchsorted
        if self._starts[-1] == 0:
            where = f"split {split!r}" if split else "the dataset"
            longest = int(lengths.max()) if len(lengths) else 0
            raise PlayworldError(
                f"no training windows in {where} of {self.dataset.path}: it has {len(self.episodes)} episode(s), "
                f"the longest {longest} frames, and a window needs {self.context + self.horizon} "
                f"(context {self.context} + horizon {self.horizon})",
                "collect more or longer episodes (--episodes, --steps), or use a shorter context/horizon",
            )
        self._cache: OrderedDict[int, Episode] = OrderedDict()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getstate__(self) -> dict:
        # Memory maps must not be pickled into worker processes (numpy would copy the arrays).
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def locate(self, index: int) -> tuple[int, int]:
        """Window index -> (episode id, t of the first future frame)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        i = int(np.searchsorted(self._starts, index, side="right")) - 1
        return int(self.episodes[i]), self.context + int(index - self._starts[i])

    def episode(self, ep: int) -> Episode:
        episode = self._cache.get(ep)
        if episode is None:
            episode = self.dataset.load_episode(ep)
            self._cache[ep] = episode
            if len(self._cache) > _MAX_OPEN_EPISODES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(ep)
        return episode

    def get(self, index: int) -> Batch:
        """The window `index` as a Batch of size 1."""
        return self.collate([index])

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` windows drawn uniformly with replacement."""
        return self.collate(rng.integers(0, len(self), size=batch_size))

    def collate(self, indices) -> Batch:
        """Gather windows into one channels-first Batch (frames copied out of the memory maps)."""
        k, f = self.context, self.horizon
        b = len(indices)
        r = self.dataset.resolution
        space = self.dataset.action_space
        frames = np.empty((b, k + f, 3, r, r), np.uint8)  # (B, K+F, 3, H, W)
        actions = np.empty((b, k + f, *space.shape), space.dtype)
        rewards = np.empty((b, f), np.float32)
        terminated = np.empty((b, f), bool)
        for row, index in enumerate(indices):
            ep, t = self.locate(int(index))
            e = self.episode(ep)
            frames[row] = e.frames[t - k : t + f].transpose(0, 3, 1, 2)
            actions[row] = e.actions[t - k : t + f]
            rewards[row] = e.rewards[t : t + f]
            terminated[row] = e.terminated[t : t + f]
        frames_t, actions_t = torch.from_numpy(frames), torch.from_numpy(actions)
        return Batch(
            context_frames=frames_t[:, :k], context_actions=actions_t[:, :k],
            future_actions=actions_t[:, k:], future_frames=frames_t[:, k:],
            future_rewards=torch.from_numpy(rewards), future_terminated=torch.from_numpy(terminated),
        )


def window_order(n: int, batch_size: int, seed: int, rank: int, world_size: int) -> Iterator[np.ndarray]:
    """Endless batches of window indices for one rank: an epoch is a seeded permutation of all n
    windows, dealt round-robin to ranks (each rank gets n // world_size per epoch, disjoint from
    the others); batches run on across epoch boundaries."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    per_rank = n // world_size
    if per_rank == 0:
        raise PlayworldError(f"{n} window(s) cannot be shared by {world_size} ranks", "collect more data or use fewer ranks")
    pending = np.empty(0, np.int64)
    epoch = 0
    while True:
        while len(pending) < batch_size:
            perm = np.random.default_rng([seed, epoch]).permutation(n)
            pending = np.concatenate([pending, perm[rank::world_size][:per_rank]])
            epoch += 1
        yield pending[:batch_size]
        pending = pending[batch_size:]


class _WindowStream(torch.utils.data.IterableDataset):
    """Batches of one rank for a DataLoader; worker w builds batches w, w+W, ... so the loader's
    round-robin over workers yields exactly the single-process order."""

    def __init__(self, sampler: WindowSampler, batch_size: int, seed: int, rank: int, world_size: int):
        self.sampler, self.batch_size, self.seed, self.rank, self.world_size = sampler, batch_size, seed, rank, world_size

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = window_order(len(self.sampler), self.batch_size, self.seed, self.rank, self.world_size)
        for i, indices in enumerate(order):
            if i % workers == worker:
                yield self.sampler.collate(indices)


def make_loader(
    dataset: Dataset | str, context: int, horizon: int, batch_size: int, split: str | None = "train",
    seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 0,
) -> Iterator[Batch]:
    """Endless shuffled Batches, deterministic for `seed` and independent of `num_workers`;
    with DDP pass each process its `rank` and the `world_size` to get its own shard."""
    sampler = WindowSampler(dataset, context, horizon, split)
    stream = _WindowStream(sampler, batch_size, seed, rank, world_size)
    if num_workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=num_workers, persistent_workers=True, prefetch_factor=4,
    )
    return iter(loader)
