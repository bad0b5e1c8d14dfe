"""The calibration baselines do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playworld.models import baselines, interface
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace
from playworld.worlds import base as worlds_base

RES = 32
SPEC = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=2)


def _frames(b=2, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, k, 3, RES, RES), dtype=torch.uint8, generator=g)


class DotWorld(worlds_base.World):
    """A white dot on black that moves one pixel per action (0 noop, 1 up, 2 down, 3 left, 4 right)."""

    name = "test/dot"
    action_space = ActionSpace.discrete(5)
    moves = {0: (0, 0), 1: (-1, 0), 2: (1, 0), 3: (0, -1), 4: (0, 1)}

    def __init__(self, resolution=RES):
        self.resolution = resolution
        self.pos = np.zeros(2, np.int64)

    def _frame(self):
        f = np.zeros((self.resolution, self.resolution, 3), np.uint8)
        f[self.pos[0], self.pos[1]] = 255
        return f

    def reset(self, seed=None):
        self.pos = np.random.default_rng(seed).integers(0, self.resolution, 2)
        return self._frame(), {"pos": self.pos.copy()}

    def step(self, action):
        self.pos = np.clip(self.pos + self.moves[int(action)], 0, self.resolution - 1)
        return worlds_base.StepResult(self._frame(), 0.0, False, False, {"pos": self.pos.copy()})

    def restore(self, state):
        self.pos = np.array(state["pos"], np.int64)
        return self._frame()


@pytest.fixture
def dot_world(monkeypatch):
    monkeypatch.setitem(worlds_base._WORLDS, "test/dot", lambda resolution=RES, **kw: DotWorld(resolution))
    monkeypatch.setattr(worlds_base, "_load_builtin_worlds", lambda: None)
    return "test/dot"


def test_copy_last_repeats_newest_context_frame():
    frames = _frames()
    model = baselines.CopyLast(SPEC)
    assert isinstance(model, interface.WorldModel)
    state = model.reset(frames, torch.zeros(2, 2, dtype=torch.long))
    for a in range(3):
        state, out = model.step(state, torch.full((2,), a))
        assert out.dtype == torch.uint8 and out.shape == (2, 3, RES, RES)
        assert torch.equal(out, frames[:, -1])


def test_replay_oracle_returns_recorded_future_in_order():
    future = _frames(b=2, k=4, seed=1)
    model = baselines.ReplayOracle(future)
    state = model.reset(_frames(), torch.zeros(2, 2, dtype=torch.long))
    for t in range(4):
        state, out = model.step(state, torch.zeros(2, dtype=torch.long))
        assert torch.equal(out, future[:, t])
    with pytest.raises(Exception, match="only 4 recorded frames"):
        model.step(state, torch.zeros(2, dtype=torch.long))


class _Recorder:
    """A WorldModel that records the actions it is given."""

    def __init__(self, spec):
        self.spec, self.seen = spec, []

    def reset(self, frames, actions, seed=None):
        self.seen.append(actions.clone())
        return None

    def step(self, state, action):
        self.seen.append(action.clone())
        return state, torch.zeros(action.shape[0], 3, RES, RES, dtype=torch.uint8)


@pytest.mark.parametrize("space", [ActionSpace.discrete(5), ActionSpace.continuous([-1, -2], [1, 2])])
def test_ignore_actions_replaces_every_action(space):
    spec = WorldSpec(resolution=RES, action_space=space, context=2)
    given = torch.full((64, 2), 4) if space.is_discrete else torch.full((64, 2, 2), 0.5)
    step_a = given[:, 0]
    for mode in ("random", "noop"):
        inner = _Recorder(spec)
        model = baselines.IgnoreActions(inner, mode=mode, seed=3)
        state = model.reset(_frames(b=64), given, seed=0)
        model.step(state, step_a)
        ctx, st = inner.seen
        assert ctx.shape == given.shape and st.shape == step_a.shape
        if mode == "noop":
            assert torch.all(ctx == 0) and torch.all(st == 0)
        elif space.is_discrete:
            assert len(ctx.unique()) == 5 and ctx.min() >= 0 and ctx.max() < 5
        else:
            assert torch.all(ctx.abs() <= torch.tensor(space.high)) and ctx.std() > 0.3
    # seeded: the same reset seed gives the same replacement actions
    a, b = _Recorder(spec), _Recorder(spec)
    for rec in (a, b):
        baselines.IgnoreActions(rec, seed=3).reset(_frames(b=64), given, seed=7)
    assert torch.equal(a.seen[0], b.seen[0])


def test_world_oracle_replays_the_real_world(dot_world):
    oracle = baselines.WorldOracle(dot_world, resolution=RES)
    assert oracle.spec.action_space.n == 5
    states = [{"pos": np.array([5, 5])}, {"pos": np.array([10, 20])}]
    state = oracle.reset(_frames(), torch.zeros(2, 2, dtype=torch.long), world_state=states)
    state, out = oracle.step(state, torch.tensor([4, 2]))  # right, down
    assert out.dtype == torch.uint8 and out.shape == (2, 3, RES, RES)
    assert out[0, :, 5, 6].tolist() == [255] * 3 and out[1, :, 11, 20].tolist() == [255] * 3
    assert int(out.sum()) == 2 * 3 * 255
    with pytest.raises(Exception, match="recorded world state"):
        oracle.reset(_frames(), torch.zeros(2, 2, dtype=torch.long))


def test_world_oracle_matches_builtin_worlds():
    """On a real built-in world, restoring a recorded state and stepping reproduces the recording."""
    world = worlds_base.make_world("explorer", resolution=64)
    frame, st = world.reset(seed=1)
    rng = np.random.default_rng(0)
    actions = [world.action_space.sample(rng) for _ in range(6)]
    recorded = [world.step(a).frame for a in actions]
    oracle = baselines.WorldOracle("explorer", resolution=64)
    state = oracle.reset(torch.zeros(1, 1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 1, dtype=torch.long), world_state=[st])
    for a, rec in zip(actions, recorded):
        state, out = oracle.step(state, torch.as_tensor(a)[None])
        assert np.array_equal(out[0].permute(1, 2, 0).numpy(), rec)
