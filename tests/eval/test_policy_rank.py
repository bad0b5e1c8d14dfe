"""policy_rank: rank correlation 1 for an exact model, lower for a wrong one; skips with reasons."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from playworld.data.collect import collect
from playworld.data.store import Dataset, create_or_append
from playworld.eval.api import DatasetOracle, EvalContext, NotApplicable, Skip
from playworld.eval.policy_rank import ExplorerCoinPolicy, policy_rank, rank_fidelity
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace
from playworld.worlds.base import _WORLDS, StepResult, World, make_world, register_world

RES, GOAL = 32, 7
SPACE = ActionSpace.discrete(3)
MOVE = np.array([0, -1, 1])


def render(x: int) -> np.ndarray:
    frame = np.zeros((RES, RES, 3), np.uint8)
    frame[14:18, 4 * x:4 * x + 4] = 255
    return frame


class RankLine(World):
    """A 4x4 block on a line of 8 cells; actions stay/left/right; reward 1 on arriving at x = 7."""

    name, resolution, action_space = "test/rank-line", RES, SPACE

    def reset(self, seed=None):
        self.x = int(np.random.default_rng(seed).integers(0, 5))
        return render(self.x), {"x": np.array(self.x)}

    def step(self, action):
        self.x = int(np.clip(self.x + MOVE[int(action)], 0, 7))
        return StepResult(render(self.x), float(self.x == GOAL), False, False, {"x": np.array(self.x)})


@pytest.fixture(scope="module", autouse=True)
def _rank_line_registered():
    """Register the test world only while these tests run, so registry-wide tests never see it."""
    if "test/rank-line" not in _WORLDS:
        register_world("test/rank-line")(lambda resolution=RES, **kw: RankLine())
    yield
    _WORLDS.pop("test/rank-line", None)


class LineModel:
    """Exact model of RankLine; `goal` moves the rewarded cell (goal=0 makes a model with the wrong reward)."""

    def __init__(self, goal: int = GOAL):
        self.spec = WorldSpec(resolution=RES, action_space=SPACE, context=2, world="test/rank-line")
        self.device, self.goal = torch.device("cpu"), goal

    def reset(self, frames, actions, seed=None):
        return (frames[:, -1, 0, 15].float().argmax(-1) // 4).long()

    def step(self, state, action):
        x = (state + torch.as_tensor(MOVE)[action.long()]).clamp(0, 7)
        return x, torch.from_numpy(np.stack([render(int(v)) for v in x])).permute(0, 3, 1, 2).contiguous()

    def predict_reward(self, state):
        return (state == self.goal).float()


@pytest.fixture(scope="module")
def line_ctx(tmp_path_factory):
    ds = collect("test/rank-line", tmp_path_factory.mktemp("rank") / "line", episodes=3, steps=30, resolution=RES,
                 policy=lambda frame: 2, progress=False)  # walks right: the data sees rewards
    return EvalContext(dataset=ds, spec=LineModel().spec, episodes=3, horizon=10, seed=0, full=True)  # the planner too



def test_rank_fidelity_is_1_for_equal_returns_and_lower_when_shuffled():
    real = {"a": 0.0, "b": 1.0, "c": 2.5, "d": 4.0, "e": 7.0}
    metrics, skipped = rank_fidelity(real, dict(real))
    assert not skipped and metrics["spearman"].value == pytest.approx(1.0)
    assert metrics["kendall"].value == pytest.approx(1.0) and metrics["return_mae"].value == 0.0
    shuffled = dict(zip(real, [2.5, 7.0, 0.0, 4.0, 1.0]))
    metrics, _ = rank_fidelity(real, shuffled)
    assert metrics["spearman"].value < 0.5 and metrics["kendall"].value < 0.5
    assert metrics["return_mae"].value == pytest.approx(np.mean(np.abs(np.array(list(real.values())) - list(shuffled.values()))))
    reversed_ = dict(zip(real, [7.0, 4.0, 2.5, 1.0, 0.0]))
    assert rank_fidelity(real, reversed_)[0]["spearman"].value == pytest.approx(-1.0)
    metrics, skipped = rank_fidelity({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 0.0, "b": 1.0, "c": 2.0})
    assert "same real return" in skipped["spearman"] and "spearman" not in metrics and "return_mae" in metrics


@pytest.mark.slow
def test_exact_model_ranks_policies_like_the_real_world(line_ctx):
    res = policy_rank(LineModel(), line_ctx)
    real, model = res.extra["real_returns"], res.extra["model_returns"]
    assert set(real) == {"random", "sticky", "planner"}
    assert real == model  # an exact model: the same returns, policy by policy
    assert real["planner"] > max(real["random"], real["sticky"])  # the planner walks right to the goal
    assert res.metrics["spearman"].value == pytest.approx(1.0) and res.metrics["kendall"].value == pytest.approx(1.0)
    assert res.metrics["return_mae"].value == 0.0

    wrong = policy_rank(LineModel(goal=0), line_ctx)  # rewards the other end: the planner now walks left
    assert wrong.extra["real_returns"]["planner"] < real["planner"]
    assert wrong.metrics["return_mae"].value > 0.5
    assert wrong.metrics["spearman"].value < 1.0 or "spearman" in wrong.skipped


def test_the_quick_default_ranks_without_the_planner(line_ctx):
    quick = dataclasses.replace(line_ctx, full=False, cache={})
    assert set(policy_rank(LineModel(), quick).extra["real_returns"]) == {"random", "sticky"}


def test_skips_without_rewards_real_env_or_for_the_oracle(tmp_path, line_ctx):
    with pytest.raises(Skip, match="oracle"):
        policy_rank(DatasetOracle(line_ctx.dataset, line_ctx.spec), line_ctx)
    with create_or_append(tmp_path / "flat", "test/rank-line", RES, SPACE, fps=10.0) as w:
        w.add_episode(frames=np.stack([render(0)] * 5), actions=np.zeros(5, np.int64))
    flat = EvalContext(dataset=Dataset(tmp_path / "flat"), spec=line_ctx.spec)
    with pytest.raises(NotApplicable, match="no rewards"):
        policy_rank(LineModel(), flat)
    with create_or_append(tmp_path / "video", "video:clips", RES, SPACE, fps=10.0) as w:
        w.add_episode(frames=np.stack([render(0)] * 5), actions=np.zeros(5, np.int64), rewards=np.ones(5, np.float32))
    video = EvalContext(dataset=Dataset(tmp_path / "video"), spec=line_ctx.spec)
    with pytest.raises(NotApplicable, match="no real environment"):
        policy_rank(LineModel(), video)


def test_agent_with_another_action_space_is_refused(tmp_path, line_ctx):
    from playworld.agents.actor_critic import ActorCritic, ActorCriticConfig
    from playworld.agents.agent import save_agent
    from playworld.errors import PlayworldError

    spec5 = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=2, world="explorer")
    path = save_agent(tmp_path / "five", ActorCritic(spec5, ActorCriticConfig(channels=4, hidden=16)).actor, spec5)
    ctx = EvalContext(dataset=line_ctx.dataset, spec=line_ctx.spec, episodes=1, horizon=2, cache={"agents": [path]})
    with pytest.raises(PlayworldError, match="discrete\\(5\\)"):
        policy_rank(LineModel(), ctx)


def test_scripted_explorer_policy_collects_more_than_random():
    from playworld.agents.agent import world_returns
    from playworld.worlds.policies import RandomPolicy

    world = make_world("explorer", resolution=32, map_size=48, n_coins=60)
    space = world.action_space
    scripted = np.mean(world_returns(world, ExplorerCoinPolicy(space, seed=0), episodes=2, max_steps=60))
    rand = np.mean(world_returns(world, RandomPolicy(space, seed=0), episodes=2, max_steps=60))
    assert scripted > 2 * max(rand, 0.5), (scripted, rand)


def _explorer_frame(coin_cells: list[tuple[int, int]]) -> np.ndarray:
    """A 32-px explorer-like frame (2-px cells, the agent's cell at pixel 15) with coins at the given (dx, dy) cell offsets."""
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[:] = (126, 192, 92)
    for dx, dy in coin_cells:
        y, x = 15 + 2 * dy, 15 + 2 * dx
        frame[y:y + 2, x:x + 2] = ExplorerCoinPolicy.COIN
    return frame


def test_explorer_seeker_reach_ignores_far_coins_and_wanders_at_random():
    from playworld.errors import PlayworldError
    from playworld.worlds.explorer import Explorer

    space = Explorer.action_space
    near = ExplorerCoinPolicy(space, seed=0, eps=0.0, reach=1, wander="random")
    # an adjacent coin (left) is always taken; a diagonal one is 2 cells away, out of reach
    assert {int(near(_explorer_frame([(-1, 0)]), {})) for _ in range(20)} == {3}
    far = {int(near(_explorer_frame([(1, 1), (0, 4)]), {})) for _ in range(60)}
    assert far == {1, 2, 3, 4}, far  # random moves, never a noop
    # the default seeker heads for the nearest coin in view, however far
    seeker = ExplorerCoinPolicy(space, seed=0, eps=0.0)
    assert {int(seeker(_explorer_frame([(0, 4)]), {})) for _ in range(20)} == {2}
    # straight wandering keeps a heading while no coin is within reach
    straight = ExplorerCoinPolicy(space, seed=1, eps=0.0, reach=1)
    straight.reset()
    actions = [int(straight(_explorer_frame([(0, 4)]), {})) for _ in range(10)]
    assert len(set(actions)) <= 2, actions  # turns with probability 0.1 per step
    # adjacent="random": a coin next to it is left to a random move; a coin 2 cells away is still approached
    blind = ExplorerCoinPolicy(space, seed=0, eps=0.0, reach=3, adjacent="random")
    assert {int(blind(_explorer_frame([(-1, 0)]), {})) for _ in range(60)} == {1, 2, 3, 4}
    assert {int(blind(_explorer_frame([(0, -2)]), {})) for _ in range(20)} == {1}
    with pytest.raises(PlayworldError, match="wander"):
        ExplorerCoinPolicy(space, wander="zigzag")
    with pytest.raises(PlayworldError, match="adjacent"):
        ExplorerCoinPolicy(space, adjacent="never")
