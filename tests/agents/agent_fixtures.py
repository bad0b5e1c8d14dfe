"""Fixtures for the agent tests: a tiny 'line' world, its dataset, and an exact model of it.

The line world: a 4x4 white block on a 32x32 black frame at column 4*x, x in 0..7. Actions
(discrete 3): 0 stay, 1 left, 2 right. Reward 1 on arriving at x = 7 (the right end); the episode
never terminates. `LineModel` is an exact WorldModel of it (it reads x off the newest frame).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playworld.data.store import create_or_append
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace

RES, GOAL = 32, 7
SPACE = ActionSpace.discrete(3)
SPEC = WorldSpec(resolution=RES, action_space=SPACE, context=2, world="test/line")
MOVE = np.array([0, -1, 1])


def render(x: np.ndarray) -> np.ndarray:
    """x (B,) int -> frames (B, 3, R, R) uint8."""
    frames = np.zeros((len(x), 3, RES, RES), np.uint8)
    for i, xi in enumerate(x):
        frames[i, :, 14:18, 4 * xi:4 * xi + 4] = 255
    return frames


def read_x(frames: torch.Tensor) -> torch.Tensor:
    """frames (B, 3, R, R) uint8 -> x (B,): the block's column / 4."""
    cols = frames[:, 0, 15].float()  # (B, R) the row through the block
    return (cols.argmax(-1) // 4).long()


def line_episode(rng: np.random.Generator, length: int, rewards: bool = True) -> dict:
    x = np.empty(length, np.int64)
    actions = rng.integers(0, 3, length)
    actions[0] = 0
    x[0] = rng.integers(0, 8)
    for t in range(1, length):
        x[t] = np.clip(x[t - 1] + MOVE[actions[t]], 0, 7)
    r = (x == GOAL).astype(np.float32) * (np.arange(length) > 0) if rewards else np.zeros(length, np.float32)
    return {"frames": render(x).transpose(0, 2, 3, 1), "actions": actions, "rewards": r}


def write_line_dataset(path, episodes: int = 12, length: int = 24, rewards: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    with create_or_append(path, "test/line", RES, SPACE, fps=10.0) as w:
        for _ in range(episodes):
            w.add_episode(**line_episode(rng, length, rewards))
    return path


@pytest.fixture(scope="session")
def line_data(tmp_path_factory):
    return write_line_dataset(tmp_path_factory.mktemp("line") / "data")


@pytest.fixture(scope="session")
def line_data_no_rewards(tmp_path_factory):
    return write_line_dataset(tmp_path_factory.mktemp("line0") / "data", episodes=4, rewards=False)


class LineModel:
    """Exact model of the line world; `predict_reward` only when built with heads=True."""

    def __init__(self, heads: bool = True):
        self.spec = SPEC
        self.device = torch.device("cpu")
        if heads:
            self.predict_reward = lambda state: (state == GOAL).float()

    def reset(self, frames, actions, seed=None):
        return read_x(frames[:, -1])

    def step(self, state, action):
        x = (state + torch.as_tensor(MOVE)[action.long()]).clamp(0, 7)
        return x, torch.from_numpy(render(x.numpy()))


class SlideModel:
    """Continuous toy: x += a (a in [-1, 1]) from x = 0; reward -(x - 2.5)^2. Best first action: +1."""

    def __init__(self):
        self.spec = WorldSpec(resolution=RES, action_space=ActionSpace.continuous([-1.0], [1.0]), context=1)
        self.device = torch.device("cpu")

    def reset(self, frames, actions, seed=None):
        return torch.zeros(frames.shape[0])

    def step(self, state, action):
        x = state + action[:, 0].float()
        return x, torch.zeros(len(x), 3, RES, RES, dtype=torch.uint8)

    def predict_reward(self, state):
        return -(state - 2.5) ** 2



class LatentLineModel(LineModel):
    """LineModel whose state (x) an actor can read: features one_hot(x), advance without a frame, observe a frame."""

    feature_dim = 8

    def features(self, state):
        return torch.nn.functional.one_hot(state.long(), 8).float()

    def advance(self, state, action):
        return (state + torch.as_tensor(MOVE)[action.long()]).clamp(0, 7)

    def observe(self, state, frame, action):
        return read_x(frame)
