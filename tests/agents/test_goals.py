"""Goal-conditioned planning: CEM and MPPI reach a goal frame through a model's latent or its frames, in
the real world; the real world as a model; bad input is a clear error (exit 2 on the command line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from agent_fixtures import MOVE, SPACE, LineModel, read_x, render
from PIL import Image

from playworld.agents.goals import GoalObjective, WorldAsModel, goal_planner, reach
from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld.models.interface import LatentState, WorldSpec
from playworld.spaces import ActionSpace
from playworld.train.loop import train
from playworld.worlds.base import StepResult, World, make_world


def _thermometer(x: torch.Tensor) -> torch.Tensor:
    """x (B,) in 0..7 -> (B, 8): 1 for every i <= x, so the L1 distance between two codes is |x - y| / 8."""
    return (torch.arange(8)[None] <= x[:, None]).float()


class ThermoLineModel(LineModel):
    """The exact line model with a latent: its state x, read as a thermometer code."""

    feature_dim = 8

    def __init__(self):
        super().__init__(heads=False)

    def features(self, state):
        return _thermometer(state)

    def advance(self, state, action):
        return (state + torch.as_tensor(MOVE)[action.long()]).clamp(0, 7)

    def observe(self, state, frame, action):
        return read_x(frame)


class LineWorld(World):
    """The real line world (agent_fixtures' frames): x in 0..7, actions stay / left / right."""

    name, resolution, action_space = "test/line", 32, SPACE

    def reset(self, seed=None):
        self.x = 1
        return self._frame(), {"x": np.array(self.x)}

    def step(self, action):
        self.x = int(np.clip(self.x + MOVE[int(action)], 0, 7))
        return StepResult(self._frame(), 0.0, False, False, {"x": np.array(self.x)})

    def _frame(self):
        return render(np.array([self.x]))[0].transpose(1, 2, 0)


def _goal(x: int) -> np.ndarray:
    return render(np.array([x]))[0].transpose(1, 2, 0)


def _encode_x(frames: torch.Tensor) -> torch.Tensor:
    return _thermometer(read_x(frames))


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_the_planner_walks_to_the_goal_through_the_latent_and_stays(method):
    model = ThermoLineModel()
    assert isinstance(model, LatentState)
    planner = goal_planner(model, _goal(6), method=method, horizon=6, population=48, iterations=3, seed=0)
    assert planner.objective.mode == "latent"
    world = LineWorld()
    frame, state = world.reset()
    traj = reach(world, planner, frame, state, steps=9)
    xs = [int(s["x"]) for s in traj.states]
    assert xs[:6] == [1, 2, 3, 4, 5, 6] and xs[-1] == 6  # straight there (5 steps), then it holds the goal
    assert len(traj.plan_seconds) == 9 and all(t >= 0 for t in traj.plan_seconds)


def test_a_model_without_a_latent_plans_on_its_frames_through_an_encoder():
    planner = goal_planner(LineModel(heads=False), _goal(0), encoder=_encode_x, horizon=4, population=32, seed=0)
    assert planner.objective.mode == "pixels"
    world = LineWorld()
    frame, state = world.reset()
    assert int(reach(world, planner, frame, state, steps=4).states[-1]["x"]) == 0


def test_plans_score_their_distance_to_the_goal_over_the_distance_still_to_go():
    objective = GoalObjective(ThermoLineModel(), _goal(6), reduce="final")
    frames, actions = torch.from_numpy(render(np.array([1, 1]))), torch.zeros(2, dtype=torch.long)
    plans = torch.tensor([[2, 2, 2], [1, 1, 1], [0, 0, 0], [2, 0, 0]])  # end at 4, 0, 1, 2
    started = objective.start(frames, actions, len(plans), seed=0)
    assert torch.allclose(objective.costs(started, plans), torch.tensor([2, 6, 5, 4]) / 8)
    assert started.scale == 5 / 8  # from x = 1, the goal is 5 away
    assert torch.allclose(objective.score(started, plans), -torch.tensor([2, 6, 5, 4]) / 5)  # 1: stays as far
    assert objective.distance_to_goal(_goal(6)) == 0.0 and objective.distance_to_goal(_goal(2)) == 0.5


def test_set_goal_changes_where_the_planner_goes():
    planner = goal_planner(ThermoLineModel(), _goal(7), horizon=5, population=32, seed=0)
    planner.objective.set_goal(_goal(0))
    world = LineWorld()
    frame, state = world.reset()
    assert int(reach(world, planner, frame, state, steps=3).states[-1]["x"]) == 0


# -- bad input ---------------------------------------------------------------------------------------
class _NoActions(LineModel):
    def __init__(self):
        super().__init__(heads=False)
        self.spec = WorldSpec(resolution=32, action_space=ActionSpace.none(), context=2)


class _LatentActions(LineModel):
    def __init__(self):
        super().__init__(heads=False)
        self.spec = WorldSpec(resolution=32, action_space=ActionSpace.discrete(3, ["latent 0", "latent 1", "latent 2"]), context=2)


@pytest.mark.parametrize("make,kw,match", [
    (ThermoLineModel, {"goal": np.zeros((64, 64, 3), np.uint8)}, "64x64 pixels; this model works at 32x32"),
    (ThermoLineModel, {"goal": np.zeros((32, 32), np.uint8)}, "not an RGB image"),
    (ThermoLineModel, {"goal": np.zeros((32, 32, 3), np.float32)}, "not 8-bit"),
    (_NoActions, {"encoder": _encode_x}, "takes no actions"),
    (_LatentActions, {"encoder": _encode_x}, "latent actions"),
    (lambda: LineModel(heads=False), {"representation": "latent"}, "has no latent state"),
    (lambda: LineModel(heads=False), {}, "needs a frame encoder"),
    (ThermoLineModel, {"representation": "frames"}, "unknown goal representation"),
    (ThermoLineModel, {"reduce": "sum"}, "unknown cost reduction"),
])
def test_bad_goals_and_models_are_clear_errors(make, kw, match):
    kw = {"goal": _goal(3), **kw}
    with pytest.raises(PlayworldError, match=match):
        goal_planner(make(), kw.pop("goal"), **kw)


# -- the real world as a model -------------------------------------------------------------------------
def test_the_real_world_as_a_model_branches_from_the_synced_state():
    world = make_world("explorer", resolution=32)
    world.reset(seed=3)
    for a in (4, 4, 2):
        step = world.step(a)
    model = WorldAsModel("explorer", 32, context=2)
    model.sync(step.state)
    ctx = torch.zeros(3, 2, 3, 32, 32, dtype=torch.uint8)
    branches = model.reset(ctx, torch.zeros(3, 2, dtype=torch.long))
    assert all(torch.equal(b.permute(1, 2, 0), torch.from_numpy(step.frame)) for b in branches.last)
    _, frames = model.step(branches, torch.tensor([1, 3, 0]))
    for i, a in enumerate((1, 3, 0)):  # each branch is the real world stepped from there
        w = make_world("explorer", resolution=32)
        w.restore(step.state)
        assert torch.equal(frames[i], torch.from_numpy(w.step(a).frame).permute(2, 0, 1))


def test_unsynced_or_unrestorable_worlds_are_errors():
    with pytest.raises(PlayworldError, match="has not been given the real state"):
        WorldAsModel("explorer", 32, context=2).reset(torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 2))
    with pytest.raises(PlayworldError, match="cannot be restored"):
        WorldAsModel("gym:CartPole-v1", 32, context=2)


def test_planning_in_the_real_world_reaches_a_goal_behind_the_start():
    world = make_world("explorer", resolution=32)
    frame, state = world.reset(seed=0)
    goal_state = {**state, "agent": state["agent"] + np.array([0, 2], np.int32)}  # two cells down, if passable
    w = make_world("explorer", resolution=32)
    w.restore(state)
    w.step(2)
    if not np.array_equal(w.step(2).state["agent"], goal_state["agent"]):
        pytest.skip("seed 0 starts next to an obstacle")
    goal = w.restore(goal_state)
    model = WorldAsModel("explorer", 32, context=2)
    flat = lambda f: f.float().flatten(1) / 255
    planner = goal_planner(model, goal, representation="pixels", encoder=flat, horizon=3, population=24, seed=0)
    world.restore(state)
    traj = reach(world, planner, frame, state, steps=3, sync=model.sync)
    assert np.array_equal(traj.states[-1]["agent"], goal_state["agent"])


# -- `playworld plan` ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Debug runs (seconds): jepa and diffusion on explorer, jepa on action-free physics."""
    root = tmp_path_factory.mktemp("plan")
    collect("explorer", root / "explorer", episodes=6, steps=24, resolution=32, seed=0, progress=False)
    collect("physics/uniform", root / "physics", episodes=4, resolution=32, seed=0, progress=False)
    out = {}
    for name, data, family in (("jepa", "explorer", "jepa"), ("diffusion", "explorer", "diffusion"), ("still", "physics", "jepa")):
        train(root / name, data=root / data, model=family, preset="debug", steps=4, progress=False)
        out[name] = root / name
    out["data"] = root / "explorer"
    return out


def test_plan_reaches_for_a_goal_steps_away_and_writes_what_happened(runs, cli, tmp_path):
    code, out, err = cli("plan", runs["jepa"], "--goal", 2, "--steps", 3, "--population", 8, "--horizon", 2,
                         "--iterations", 1, "--out", tmp_path / "p", "--threads", 1)
    assert code == 0, err
    assert "on the model's latent" in out and "cells from the goal's cell" in out
    report = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert report["steps"] == 3 and report["cells_start"] == 2 and len(report["actions"]) == 3
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"plan.json", "goal.png", "start.png", "episode.mp4"}
    code, out, err = cli("plan", runs["jepa"], "--goal", tmp_path / "p" / "goal.png", "--steps", 1, "--population", 4,
                         "--horizon", 1, "--iterations", 1, "--threads", 1)  # the same goal, as an image
    assert code == 0, err
    assert "planned 1 real steps" in out


@pytest.mark.parametrize("case,match", [
    ("big", "is 64x64 pixels; this model works at 32x32"),
    ("still", "takes no actions"),
    ("latent", "has no latent state"),
    ("nodata", "needs a frame encoder"),
    ("missing", "neither a number of steps nor an image file"),
])
def test_plan_refuses_bad_input_with_exit_2(runs, cli, tmp_path, case, match):
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "big.png")
    args = {"big": (runs["jepa"], "--goal", tmp_path / "big.png"), "still": (runs["still"], "--goal", 3),
            "latent": (runs["diffusion"], "--goal", 3, "--representation", "latent", "--data", runs["data"]),
            "nodata": (runs["diffusion"], "--goal", 3), "missing": (runs["jepa"], "--goal", tmp_path / "nope.png")}[case]
    code, _, err = cli("plan", *args, "--threads", 1)
    assert code == 2
    assert match in " ".join(err.split()), err


def test_random_goals_are_reproducible_from_the_seed():
    from playworld.eval.goals import goal_steps_away

    world = make_world("explorer", resolution=32)
    a, b = goal_steps_away(world, 4, seed=5), goal_steps_away(world, 4, seed=5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2]) and a[3] == b[3]
