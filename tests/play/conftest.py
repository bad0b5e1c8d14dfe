"""Fakes for the play tests: a tiny WorldModel whose frame shows where the actions moved a dot."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from playworld.models.interface import WorldSpec
from playworld.play.contexts import Context
from playworld.play.server import PlayServer
from playworld.spaces import ActionSpace

RES = 16
NAMES = ("noop", "up", "down", "left", "right")
MOVES = {0: (0, 0), 1: (0, -1), 2: (0, 1), 3: (-1, 0), 4: (1, 0)}  # (dx, dy)


@dataclass
class DotState:
    pos: np.ndarray  # (2,) x, y


class DotModel:
    """A white dot on black at `pos` (wrapping around); each action moves it one pixel."""

    def __init__(self, fail_after: int | None = None):
        self.spec = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5, NAMES), context=2, world="test/dot")
        self.device = torch.device("cpu")
        self.actions: list[int] = []  # every action step() received, in order
        self.fail_after = fail_after

    def reset(self, frames, actions, seed=None):
        assert frames.shape == (1, 2, 3, RES, RES) and frames.dtype == torch.uint8
        assert actions.shape == (1, 2)
        return DotState(pos=np.array([RES // 2, RES // 2]))

    def step(self, state, action):
        assert action.shape == (1,) and action.dtype == torch.int64
        if self.fail_after is not None and len(self.actions) >= self.fail_after:
            raise RuntimeError("model exploded")
        a = int(action[0])
        self.actions.append(a)
        pos = (state.pos + np.array(MOVES[a])) % RES
        frame = torch.zeros(1, 3, RES, RES, dtype=torch.uint8)
        frame[0, :, pos[1], pos[0]] = 255
        return DotState(pos=pos), frame

    def debug_state(self, state):
        return {"pos": state.pos}


class TunableDotModel(DotModel):
    """DotModel with a sampler dial (the `TunableSampler` ability), as a diffusion model has."""

    max_sampling_steps = 16

    def __init__(self, sampling_steps: int = 1, fail_after: int | None = None):
        super().__init__(fail_after)
        self.sampling_steps = sampling_steps

    def set_sampling_steps(self, steps: int) -> int:
        self.sampling_steps = int(steps)
        return self.sampling_steps


class FakeContexts:
    def __init__(self):
        self.seeds: list[int] = []

    def sample(self, seed, real=None):
        self.seeds.append(seed)
        frames = np.full((2, RES, RES, 3), seed % 200, np.uint8)
        return Context(frames=frames, actions=np.zeros(2, np.int64), world_state=None, source={"from": "fake", "seed": seed})


def dot_position(frame: np.ndarray) -> tuple[int, int]:
    """(H, W, 3) frame of DotModel -> (x, y) of the dot."""
    ys, xs = np.nonzero(frame[..., 0] == 255)
    assert len(xs) == 1, "exactly one dot"
    return int(xs[0]), int(ys[0])


@pytest.fixture
def dot_server():
    server = PlayServer(DotModel(), FakeContexts(), fps=60, max_sessions=2)
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
