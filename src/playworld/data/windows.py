"""Windows: K context frames and actions, then F future actions and frames; the one loader.

A window is (episode, t) with t the index of the first future frame, K <= t <= T - F, so it lies
fully inside one episode. Following the time convention of `playworld.data.batch`:

    context_frames  = frames[t-K : t]      context_actions = actions[t-K : t]
    future_actions  = actions[t : t+F]     future_frames   = frames[t : t+F]
    future_rewards  = rewards[t : t+F]     future_terminated = terminated[t : t+F]

`cut_window` is the one place that slice is written; the training loader (`make_loader`), rollouts
(`dataset_windows`), the eval suite and play's dataset contexts all cut through it. Frames are read
on access, from memory maps or by decoding the one or two compressed chunks a window spans (no
dataset-sized load); open episodes are cached.

`make_loader` is the training batch stream, resumable at any step: batch i of a rank is a pure
function of (seed, rank, world_size, i) (a seeded permutation per epoch, dealt round-robin to
ranks), so starting it at `start` skips the first `start` index batches without loading any frames
and `--resume` sees exactly the batches the straight run saw; the number of worker processes does
not change the order.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Iterator, Sequence

import numpy as np
import torch

from playworld.data.batch import Batch, check_context
from playworld.data.memory import retrieve, thumbnails
from playworld.data.store import Dataset, Episode
from playworld.errors import PlayworldError

_MAX_OPEN_EPISODES = {"raw": 512, "compressed": 8192}
"""episodes kept open per sampler: a raw one holds a memory map (and a file descriptor); a compressed
one holds no file, only its actions, rewards and flags and its chunk offsets (a few KB at 200 steps)"""


def cut_window(episode: Episode, t: int, context: int, horizon: int) -> dict[str, np.ndarray]:
    """The window of `episode` whose first future frame is `t`: frames[t-K : t+F] (K+F, H, W, 3) uint8 and
    the actions that led into them, rewards[t : t+F] and terminated[t : t+F] (F may be 0: a context only)."""
    k, f = int(context), int(horizon)
    if not k <= t <= len(episode) - f:
        raise IndexError(f"a window of {k} + {f} frames at t={t} does not fit an episode of {len(episode)} frames")
    return {
        "frames": np.asarray(episode.frames[t - k : t + f]), "actions": np.asarray(episode.actions[t - k : t + f]),
        "rewards": np.asarray(episode.rewards[t : t + f], np.float32), "terminated": np.asarray(episode.terminated[t : t + f], bool),
    }


def collate_windows(windows: Sequence[dict[str, np.ndarray]], context: int) -> Batch:
    """Windows of `cut_window` (equal lengths) -> one channels-first Batch; windows that carry
    "memory" (F, H, W, 3) and "memory_valid" (F,) (a memory loader's) fill the Batch's memory fields."""
    k, (t, h, w, c) = int(context), windows[0]["frames"].shape
    frames = np.empty((len(windows), t, c, h, w), np.uint8)  # (B, K+F, 3, H, W)
    for row, window in enumerate(windows):
        frames[row] = window["frames"].transpose(0, 3, 1, 2)
    frames_t = torch.from_numpy(frames)
    actions = torch.from_numpy(np.stack([w["actions"] for w in windows]))
    return Batch(
        context_frames=frames_t[:, :k], context_actions=actions[:, :k], future_actions=actions[:, k:],
        future_frames=frames_t[:, k:], future_rewards=torch.from_numpy(np.stack([w["rewards"] for w in windows])),
        future_terminated=torch.from_numpy(np.stack([w["terminated"] for w in windows])),
        memory_frames=torch.from_numpy(np.stack([w["memory"] for w in windows]).transpose(0, 1, 4, 2, 3).copy())
        if "memory" in windows[0] else None,
        memory_valid=torch.from_numpy(np.stack([w["memory_valid"] for w in windows])) if "memory" in windows[0] else None,
    )


class WindowSampler:
    """Every window of `context` + `horizon` frames inside the episodes of one split."""

    def __init__(self, dataset: Dataset | str, context: int, horizon: int, split: str | None = "train", memory: bool = False):
        """memory: also retrieve each future frame's memory frame (`playworld.data.memory`)."""
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.memory = bool(memory)
        self._keys: OrderedDict[int, torch.Tensor] = OrderedDict()  # episode -> its frames' retrieval keys
        check_context(context)
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
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
        state["_cache"], state["_keys"] = OrderedDict(), OrderedDict()
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
            if len(self._cache) > _MAX_OPEN_EPISODES[self.dataset.layout]:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(ep)
        return episode

    def keys(self, ep: int) -> torch.Tensor:
        """The retrieval keys (T, D) of every frame of episode `ep`, computed once (one read of the episode)."""
        keys = self._keys.get(ep)
        if keys is None:
            episode = self.episode(ep)
            frames = torch.from_numpy(np.array(episode.frames[0 : len(episode)])).permute(0, 3, 1, 2)
            keys = self._keys[ep] = thumbnails(frames)
            if len(self._keys) > _MAX_OPEN_EPISODES["compressed"]:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(ep)
        return keys

    def get(self, index: int) -> Batch:
        """The window `index` as a Batch of size 1."""
        return self.collate([index])

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """`batch_size` windows drawn uniformly with replacement."""
        return self.collate(rng.integers(0, len(self), size=batch_size))

    def collate(self, indices) -> Batch:
        """Gather windows into one channels-first Batch (frames copied out of the memory maps)."""
        windows = []
        for index in indices:
            ep, t = self.locate(int(index))
            window = cut_window(self.episode(ep), t, self.context, self.horizon)
            if self.memory:
                at, window["memory_valid"] = retrieve(self.keys(ep), t, self.context, self.horizon)
                window["memory"] = np.asarray(self.episode(ep).frames[at]) * window["memory_valid"][:, None, None, None]
            windows.append(window)
        return collate_windows(windows, self.context)


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
    """Batches start, start+1, ... of one rank; worker w of W builds those with (i - start) % W == w,
    so the DataLoader's round-robin over workers yields them in the single-process order."""

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


def make_loader(
    dataset: Dataset | str, context: int, horizon: int, batch_size: int, split: str | None = "train",
    seed: int = 0, rank: int = 0, world_size: int = 1, num_workers: int = 0, start: int = 0, memory: bool = False,
) -> Iterator[Batch]:
    """Endless shuffled Batches of this rank from batch `start` on, deterministic for `seed` and
    independent of `num_workers`; with DDP pass each process its `rank` and the `world_size`;
    `memory`: with each future frame's memory frame (`playworld.data.memory`)."""
    sampler = WindowSampler(dataset, context, horizon, split, memory)
    stream = _WindowStream(sampler, batch_size, seed, rank, world_size, start)
    if num_workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers, prefetch_factor=4)
    return iter(loader)


def dataset_windows(dataset: Dataset, context: int, horizon: int, episodes: int = 4, split: str = "val", seed: int = 0) -> Batch:
    """One window per episode: `context` real frames and actions, then `horizon` real actions and frames.

    Episodes of `split` are drawn with a seeded generator (without replacement while there are
    enough); each window starts at a random step. The horizon is shortened to the longest that fits
    every chosen episode (check `batch.future_frames.shape[1]`).
    """
    ids = [e for e in dataset.episode_ids(split) if dataset.episode_length(e) > context]
    if not ids:
        raise PlayworldError(
            f"split {split!r} of dataset {dataset.path} has no episode longer than the context ({context} frames)",
            "pick another --split or collect more/longer episodes",
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=episodes, replace=episodes > len(ids))
    horizon = min(horizon, min(dataset.episode_length(e) - context for e in chosen))
    windows = []
    for ep in chosen:
        e = dataset.load_episode(int(ep))
        windows.append(cut_window(e, int(rng.integers(context, len(e) - horizon + 1)), context, horizon))
    return collate_windows(windows, context)
