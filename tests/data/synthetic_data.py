"""Synthetic datasets whose frames encode (episode, t), so tests can check exactly what was read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from playworld.data.store import create_or_append
from playworld.spaces import ActionSpace

N_ACTIONS = 5


def synthetic_episode(ep: int, length: int, resolution: int = 32) -> dict:
    """frames[t][0, 0] = (ep, t, 7); actions[t] = (ep + t) % 5 with actions[0] = 0; rewards[t] = t / 10."""
    frames = np.random.default_rng(ep).integers(0, 256, (length, resolution, resolution, 3), dtype=np.uint8)
    frames[:, 0, 0] = np.stack([np.full(length, ep), np.arange(length), np.full(length, 7)], 1)
    actions = (ep + np.arange(length)) % N_ACTIONS
    actions[0] = 0
    terminated = np.zeros(length, bool)
    terminated[-1] = ep % 2 == 0
    return {
        "frames": frames, "actions": actions, "rewards": np.arange(length, dtype=np.float32) / 10,
        "terminated": terminated, "truncated": ~terminated & (np.arange(length) == length - 1),
        "state": {"pos": np.stack([np.arange(length), np.full(length, ep)], 1).astype(np.float64)},
    }


def write_synthetic(path: Path, lengths: list[int], resolution: int = 32, world: str = "test/synthetic",
                    layout: str | None = None) -> Path:
    with create_or_append(path, world, resolution, ActionSpace.discrete(N_ACTIONS), fps=10.0, layout=layout) as w:
        for length in lengths:
            w.add_episode(**synthetic_episode(w.next_id, length, resolution))
    return path
