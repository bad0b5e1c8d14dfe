"""CEM and MPPI find the known best action of exact toy models, and act as policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from agent_fixtures import GOAL, LineModel, SlideModel, render

from playworld.agents.env import WorldModelEnv, run_policy
from playworld.agents.planner import Planner, rollout_returns
from playworld.errors import PlayworldError
from playworld.runs.presets import load_preset, resolve_context
from playworld.spaces import ActionSpace
from playworld.worlds.policies import RandomPolicy

DEBUG_K = resolve_context(load_preset("debug"))  # K of the debug preset


def _frame(x: int) -> np.ndarray:
    return render(np.array([x]))[0].transpose(1, 2, 0)


def test_rollout_returns_scores_plans_exactly():
    model = LineModel()
    frames = torch.from_numpy(render(np.array([5, 5])))
    plans = torch.tensor([[2, 2, 0], [1, 1, 1], [2, 0, 0]])  # reach 7 at step 2 / never / never
    ret = rollout_returns(model, model_reward(model), frames, torch.zeros(2, dtype=torch.long), plans, discount=0.5)
    assert ret.tolist() == [0.5 + 0.25, 0.0, 0.0]


def model_reward(model):
    from playworld.agents.reward import make_reward_fn

    return make_reward_fn(model)


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_discrete_planner_finds_the_only_rewarding_direction(method):
    # From x = 2 the goal (x = 7) is 5 steps right; no random single step shows a reward.
    planner = Planner(LineModel(), method=method, horizon=6, population=64, elites=6, iterations=4, seed=0)
    assert int(planner(_frame(2), {})) == 2
    # walking right with the planner reaches the goal and then stays there
    x = 2
    planner.reset()
    for _ in range(8):
        x = int(np.clip(x + [0, -1, 1][int(planner(_frame(x), {}))], 0, 7))
    assert x == GOAL


@pytest.mark.parametrize("method", ["cem", "mppi"])
def test_continuous_planner_pushes_toward_the_target(method):
    planner = Planner(SlideModel(), method=method, horizon=4, population=128, elites=12, iterations=5, seed=1)
    action = planner(np.zeros((32, 32, 3), np.uint8), {})
    assert action.shape == (1,) and action.dtype == np.float32
    assert -1.0 <= action[0] <= 1.0 and action[0] > 0.6


def test_planner_as_policy_beats_random_in_the_model(line_data):
    env = WorldModelEnv(LineModel(), line_data, max_steps=10)
    planner = Planner(LineModel(), horizon=6, population=48, elites=6, iterations=3, seed=0)
    planned = np.mean(run_policy(env, planner, episodes=3, seed=0))
    rand = np.mean(run_policy(env, RandomPolicy(ActionSpace.discrete(3), seed=0), episodes=3, seed=0))
    assert planned > rand + 1.0


def test_planner_without_any_reward_signal_is_an_error():
    with pytest.raises(PlayworldError, match="no reward head"):
        Planner(LineModel(heads=False))


def test_policy_in_the_wrong_action_space_is_an_error(line_data):
    env = WorldModelEnv(LineModel(), line_data, max_steps=3)
    with pytest.raises(PlayworldError, match="acts in discrete\\(5\\)"):
        run_policy(env, RandomPolicy(ActionSpace.discrete(5)))
    with pytest.raises(PlayworldError, match="continuous"):
        run_policy(env, Planner(SlideModel()))
    with pytest.raises(PlayworldError, match="frame of shape"):
        Planner(LineModel())(np.zeros((64, 64, 3), np.uint8), {})


def test_bad_planner_settings_are_errors():
    with pytest.raises(PlayworldError, match="unknown planning method"):
        Planner(LineModel(), method="random-shooting")
    with pytest.raises(PlayworldError, match="elites"):
        Planner(LineModel(), population=4, elites=8)


def test_planning_on_heads_skips_decoding_and_scores_the_same():
    """With a reward read from the model's heads, rollout_returns steps the rssm with `advance` (no frames
    decoded) and gets exactly the returns of the decoding path, for the same seed."""
    from playworld.models.interface import WorldSpec
    from playworld.models.registry import get_family
    from playworld.runs.presets import load_preset, make_model_config

    family = get_family("rssm")
    config = make_model_config(family, load_preset("debug"), {})
    spec = WorldSpec(resolution=32, action_space=ActionSpace.discrete(3), context=DEBUG_K)
    torch.manual_seed(0)
    model = family.world_model(family.build(config, spec), config, spec)
    frames = torch.randint(0, 256, (DEBUG_K, 3, 32, 32), dtype=torch.uint8)
    actions = torch.zeros(DEBUG_K, dtype=torch.long)
    plans = torch.randint(0, 3, (6, 5), generator=torch.Generator().manual_seed(1))
    heads = model_reward(model)
    assert heads.needs_frames is False
    model.decode_calls = 0
    original = model.net.decoder.forward

    def counting(feat):
        model.decode_calls += 1
        return original(feat)

    model.net.decoder.forward = counting
    fast = rollout_returns(model, heads, frames, actions, plans, seed=3)
    assert model.decode_calls == 0
    decoded = rollout_returns(model, lambda s, p, f: heads(s, p, f), frames, actions, plans, seed=3)  # needs frames
    assert model.decode_calls == 5
    assert torch.allclose(fast, decoded)
    assert fast.std() > 0  # the plans differ, and so do their scores
