"""The Kang et al. physics protocol: the parser reaches its floor on real frames, wrong motion scores worse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playworld.data.store import Dataset, create_or_append
from playworld.eval import physical as physics
from playworld.eval.api import DatasetOracle, EvalContext, NotApplicable
from playworld.models.baselines import CopyLast
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace
from playworld.worlds.base import make_world

RES = 64


def collect_physics(path, world="physics/uniform", episodes=6, ood=False, seed=0) -> Dataset:
    """A few clips straight from the world (the store API only, no collect policy needed)."""
    w = make_world(world, resolution=RES, ood=ood)
    with create_or_append(path, world, RES, w.action_space, w.fps, world_options={"ood": ood}) as writer:
        for e in range(episodes):
            frame, state = w.reset(seed=seed + e)
            frames, states = [frame], [state]
            while True:
                r = w.step(0)
                frames.append(r.frame)
                states.append(r.state)
                if r.truncated:
                    break
            st = {k: np.stack([s[k] for s in states]) for k in states[0]}
            writer.add_episode(np.stack(frames), np.zeros(len(frames), np.int64), state=st)
    return Dataset(path)


class Shifter:
    """A wrong physics model: moves the whole last frame `px` pixels right per step (speed is wrong)."""

    def __init__(self, spec, px=2):
        self.spec, self.px = spec, px

    def reset(self, frames, actions, seed=None):
        return frames[:, -1].clone()

    def step(self, state, action):
        nxt = torch.full_like(state, 255)
        nxt[..., self.px:] = state[..., : -self.px]
        return nxt, nxt.clone()


def _ctx(ds, K=2, split="test"):
    spec = WorldSpec(resolution=RES, action_space=ds.action_space, context=K, world=ds.world)
    return EvalContext(dataset=ds, spec=spec, split=split, episodes=8, horizon=64)


def test_parser_finds_balls_at_their_true_positions():
    w = make_world("physics/collision", resolution=RES)
    frame, state = w.reset(seed=3)
    parsed = physics.ball_positions(frame, 2)
    ok = physics.in_view(state["positions"], state["radii"])
    assert ok.any()
    err = np.linalg.norm(parsed - state["positions"], axis=-1)[ok]
    assert err.max() < 0.05  # a twentieth of a world unit at 6.4 px per unit
    blank = np.full_like(frame, 255)
    assert np.isnan(physics.ball_positions(blank, 2)).all()


def test_collision_index_from_velocities():
    v = np.zeros((10, 2, 2))
    v[:, 0, 0], v[:, 1, 0] = 1.0, -1.0
    assert physics.collision_index(v) is None
    v[6:, 0, 0], v[6:, 1, 0] = -1.0, 1.0
    assert physics.collision_index(v) == 6


@pytest.mark.parametrize("world", ["physics/uniform", "physics/collision", "physics/parabola"])
def test_oracle_reaches_floor_and_copy_last_is_far(tmp_path, world):
    ds = collect_physics(tmp_path / "d", world=world, episodes=6)
    ctx = _ctx(ds, split="train")  # the first episodes of a tiny dataset land in train
    oracle = physics.physics_group(DatasetOracle(ds, ctx.spec), ctx)
    v = oracle.metrics["velocity_error"]
    assert v.value == pytest.approx(v.floor)  # the oracle's frames are the real ones
    assert v.value < 0.3  # the parsing floor at 64 px (about 0.13; at 128 px about 0.045)
    assert oracle.metrics["position_error"].value < 0.05
    assert oracle.metrics["ball_missing_fraction"].value == 0.0
    assert oracle.extra["paper_floor"] == physics.PAPER_FLOORS[world]
    copy = physics.physics_group(CopyLast(ctx.spec), ctx)
    assert copy.metrics["velocity_error"].value > 0.5  # the balls stand still: error ~ their speed
    assert copy.metrics["velocity_error"].value > 5 * v.value


def test_wrong_motion_scores_worse_and_vanishing_balls_are_counted(tmp_path):
    ds = collect_physics(tmp_path / "d", episodes=5)
    ctx = _ctx(ds, split="train")
    oracle = physics.physics_group(DatasetOracle(ds, ctx.spec), ctx).metrics
    shifted = physics.physics_group(Shifter(ctx.spec), ctx).metrics
    assert shifted["velocity_error"].value > oracle["velocity_error"].value + 0.5
    assert shifted["position_error"].value > oracle["position_error"].value
    curve = physics.physics_group(Shifter(ctx.spec), ctx).curves["velocity_error_by_step"]
    assert len(curve) == physics.physics_windows(ctx).horizon and np.nanmin(curve) > 0.5
    assert shifted["ball_missing_fraction"].value > 0  # a ball moving left is pushed the wrong way, out of view at times

    class Blank(Shifter):
        def step(self, state, action):
            return state, torch.full_like(state, 255)

    blank = physics.physics_group(Blank(ctx.spec), ctx)
    assert blank.metrics["ball_missing_fraction"].value == 1.0
    assert "velocity_error" in blank.skipped and "velocity_error" not in blank.metrics


def test_ood_flag_and_non_physics_world(tmp_path):
    ds = collect_physics(tmp_path / "ood", episodes=4, ood=True)
    res = physics.physics_group(DatasetOracle(ds, _ctx(ds).spec), _ctx(ds, split="train"))
    assert res.extra["distribution"] == "ood"

    class Fake:
        world, manifest = "explorer", {}

    ctx = EvalContext(dataset=Fake(), spec=WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=2))
    with pytest.raises(NotApplicable, match="needs a physics"):
        physics.physics_group(None, ctx)


def test_windows_start_once_every_ball_is_in_view(tmp_path):
    ds = collect_physics(tmp_path / "fast", episodes=6, ood=True, seed=10)  # fast OOD balls enter from outside
    ctx = _ctx(ds, K=3, split="train")
    windows = physics.physics_windows(ctx)
    assert len(windows) >= 1 and windows.horizon >= 2
    for ep, t in windows.index:
        pos = ds.load_episode(ep).state["positions"]
        assert t >= 3 and ((pos[t - 1] >= 0) & (pos[t - 1] <= 10)).all()
        assert t == 3 or not ((pos[t - 2] >= 0) & (pos[t - 2] <= 10)).all()  # the first such frame
