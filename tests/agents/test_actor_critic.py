"""Imagination actor-critic: lambda-returns, return normalisation, learning in a known toy model, agents on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from agent_fixtures import GOAL, SPEC, LatentLineModel, LineModel, SlideModel, render

from playworld.agents.actor_critic import ActorCritic, ActorCriticConfig, ReturnNorm, imagine, lambda_returns, resolve_inputs
from playworld.agents.dream import dream
from playworld.agents.agent import LatentActorPolicy, actor_policy, load_actor, load_policy, save_agent, world_returns
from playworld.play.controls import PlayAgent
from playworld.agents.reward import make_reward_fn
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace

TINY = dict(channels=4, hidden=32, frame_stack=1)


def test_lambda_returns_match_a_hand_computation():
    r = torch.tensor([[1.0], [0.0], [2.0]])  # (H=3, B=1)
    c = torch.tensor([[1.0], [0.5], [1.0]])
    v = torch.tensor([[0.0], [1.0], [2.0], [4.0]])  # (H + 1, B)
    g, lam = 0.9, 0.8
    r2 = 2.0 + g * 1.0 * ((1 - lam) * 4.0 + lam * 4.0)  # R_3 = v_3 = 4
    r1 = 0.0 + g * 0.5 * ((1 - lam) * 2.0 + lam * r2)
    r0 = 1.0 + g * 1.0 * ((1 - lam) * 1.0 + lam * r1)
    out = lambda_returns(r, c, v, g, lam)
    assert torch.allclose(out[:, 0], torch.tensor([r0, r1, r2]))
    # lam = 0: one-step TD targets; lam = 1: discounted Monte-Carlo return bootstrapped at H
    assert torch.allclose(lambda_returns(r, c, v, g, 0.0)[:, 0], r[:, 0] + g * c[:, 0] * v[1:, 0])
    mc = 1.0 + g * (0.0 + g * 0.5 * (2.0 + g * 4.0))
    assert torch.isclose(lambda_returns(r, c, v, g, 1.0)[0, 0], torch.tensor(mc))


def test_return_norm_tracks_the_5_to_95_percentile_range():
    norm = ReturnNorm(decay=0.5)
    x = torch.arange(101, dtype=torch.float32)  # 5th percentile 5, 95th 95
    assert float(norm.update(x)) == pytest.approx(90.0)
    assert float(norm.update(x * 3)) == pytest.approx(0.5 * 90 + 0.5 * 270)  # EMA of the range
    small = ReturnNorm()
    assert float(small.update(torch.full((10,), 0.3))) == 1.0  # never divides small returns up


def _line_batch(xs):
    frames = torch.from_numpy(render(np.repeat(np.array(xs), 2))).view(len(xs), 2, 3, 32, 32)
    return frames, torch.zeros(len(xs), 2, dtype=torch.long)


def test_imagine_records_the_rollout_of_the_actor():
    model = LineModel()
    learner = ActorCritic(SPEC, ActorCriticConfig(horizon=4, **TINY))
    frames, actions = _line_batch([6, 0, 3])
    ro = imagine(model, make_reward_fn(model), learner.actor, frames, actions, 4, torch.Generator().manual_seed(0))
    assert ro.obs.shape == (5, 3, 3, 32, 32) and ro.obs.dtype == torch.uint8
    assert ro.actions.shape == (4, 3) and ro.rewards.shape == (4, 3) and torch.all(ro.conts == 1)
    x = torch.tensor([6, 0, 3])  # replay the recorded actions through the true line world
    for t in range(4):
        x = (x + torch.tensor([0, -1, 1])[ro.actions[t]]).clamp(0, 7)
        assert torch.equal(ro.rewards[t], (x == GOAL).float())


@pytest.mark.slow
def test_actor_critic_learns_the_rewarding_direction(line_data):
    # Line world: reward 1 at x = 7, so from anywhere the best action is 2 (right); random earns little.
    torch.manual_seed(0)
    config = ActorCriticConfig(horizon=8, batch=16, entropy=1e-3, actor_lr=1e-3, **TINY)
    result = dream(LineModel(), line_data, config, steps=120, seed=0, progress=False)
    policy = load_policy_from(result.learner, greedy=True)
    picks = [int(policy(render(np.array([x]))[0].transpose(1, 2, 0), {})) for x in range(7)]
    assert picks.count(2) >= 6, picks
    first, last = result.history[0]["imagined_return"], result.history[-1]["imagined_return"]
    assert last > first + 1.0, (first, last)


def load_policy_from(learner, greedy=False):
    from playworld.agents.agent import ActorPolicy

    return ActorPolicy(learner.actor, SPEC, greedy=greedy)


def test_continuous_actor_moves_toward_the_target():
    # SlideModel: x += a from 0, reward -(x - 2.5)^2: pushing +1 each step is best.
    model = SlideModel()
    learner = ActorCritic(model.spec, ActorCriticConfig(horizon=3, batch=32, entropy=1e-4, actor_lr=3e-3, **TINY))
    frames, actions = torch.zeros(32, 1, 3, 32, 32, dtype=torch.uint8), torch.zeros(32, 1, 1)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        learner.update(imagine(model, make_reward_fn(model), learner.actor, frames, actions, 3, g))
    mean = learner.actor(frames[:1, 0])[0, 0, 0].detach()
    assert float(mean) > 0.5


def test_agent_round_trip_and_bad_agent_dirs(tmp_path):
    learner = ActorCritic(SPEC, ActorCriticConfig(**TINY))
    path = save_agent(tmp_path / "a", learner.actor, SPEC, {"run": "x"})
    actor, spec, config = load_actor(path)
    assert spec == SPEC and config["run"] == "x"
    frame = render(np.array([3]))[0].transpose(1, 2, 0)
    obs = torch.from_numpy(render(np.array([3])))
    assert torch.equal(actor(obs), learner.actor(obs))
    policy = load_policy(path, seed=1)
    assert policy.action_space == SPEC.action_space and policy(frame, {}).dtype == np.int64

    with pytest.raises(PlayworldError, match="does not exist"):
        load_policy(tmp_path / "missing")
    (tmp_path / "b").mkdir()
    with pytest.raises(PlayworldError, match="has no config.json"):
        load_policy(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(PlayworldError, match="corrupt"):
        load_policy(tmp_path / "b")
    (path / "policy.safetensors").write_bytes((path / "policy.safetensors").read_bytes()[:100])
    with pytest.raises(PlayworldError, match="corrupt or truncated") as e:
        load_policy(path)
    assert "playworld dream" in e.value.fix
    other = save_agent(tmp_path / "c", ActorCritic(SPEC, ActorCriticConfig(channels=8, hidden=16)).actor, SPEC)
    cfg = json.loads((other / "config.json").read_text())
    cfg["actor"]["hidden"] = 32
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PlayworldError, match="do not fit"):
        load_policy(other)
    with pytest.raises(PlayworldError, match="uint8 frames"):
        load_policy(save_agent(tmp_path / "d", learner.actor, SPEC))(np.zeros((8, 8, 3), np.uint8), {})


def test_policy_with_another_action_space_is_refused(tmp_path):
    path = save_agent(tmp_path / "a", ActorCritic(SPEC, ActorCriticConfig(**TINY)).actor, SPEC)
    with pytest.raises(PlayworldError, match="discrete\\(5\\)"):
        PlayAgent(path, ActionSpace.discrete(5))

    class FiveActionWorld:
        name, action_space, max_steps = "five", ActionSpace.discrete(5), 3

    with pytest.raises(PlayworldError, match="world 'five' takes discrete\\(5\\)"):
        world_returns(FiveActionWorld(), load_policy(path), episodes=1)


def test_inputs_resolve_to_latent_only_where_the_model_and_reward_allow_it():
    latent, pixels = LatentLineModel(), LineModel()
    assert resolve_inputs(ActorCriticConfig(), latent, make_reward_fn(latent)).latent_dim == 8
    assert resolve_inputs(ActorCriticConfig(), latent, make_reward_fn(latent)).inputs == "latent"
    assert resolve_inputs(ActorCriticConfig(inputs="pixels"), latent, make_reward_fn(latent)).latent_dim == 0
    assert resolve_inputs(ActorCriticConfig(), pixels, make_reward_fn(pixels)).inputs == "pixels"
    learned = lambda state, prev, frame: (torch.zeros(len(state)), torch.ones(len(state)))  # noqa: E731  needs frames
    assert resolve_inputs(ActorCriticConfig(), latent, learned).inputs == "pixels"
    with pytest.raises(PlayworldError, match="latent state") as e:
        resolve_inputs(ActorCriticConfig(inputs="latent"), pixels, make_reward_fn(pixels))
    assert "--inputs pixels" in e.value.fix
    with pytest.raises(PlayworldError, match="unknown actor inputs"):
        ActorCriticConfig(inputs="eyes")


def test_latent_imagination_never_decodes_and_the_latent_actor_learns(line_data):
    model = LatentLineModel()
    model.step = None  # imagination on the latent state must only advance, never decode
    frames, actions = _line_batch([6, 0, 3])
    learner = ActorCritic(SPEC, resolve_inputs(ActorCriticConfig(horizon=4, **TINY), model, make_reward_fn(model)))
    ro = imagine(model, make_reward_fn(model), learner.actor, frames, actions, 4, torch.Generator().manual_seed(0))
    assert ro.obs.shape == (5, 3, 8) and torch.equal(ro.obs[0].argmax(-1), torch.tensor([6, 0, 3]))

    model = LatentLineModel()
    result = dream(model, line_data, ActorCriticConfig(horizon=8, batch=16, entropy=1e-3, actor_lr=3e-3, **TINY), steps=150,
                   seed=0, progress=False)
    assert result.learner.actor.config.inputs == "latent"
    policy = actor_policy(result.learner.actor, SPEC, greedy=True, model=model)
    assert isinstance(policy, LatentActorPolicy)
    picks = []
    for x in range(7):  # the policy filters real frames: a fresh episode starting at x
        policy.reset()
        picks.append(int(policy(render(np.array([x]))[0].transpose(1, 2, 0), {})))
    assert picks.count(2) >= 6, picks
    with pytest.raises(PlayworldError, match="no model was given"):
        actor_policy(result.learner.actor, SPEC)
    # Dreamer's loop continues the same learner in a (retrained) model; a pixel model cannot take it
    again = dream(model, line_data, ActorCriticConfig(**TINY), steps=2, seed=1, progress=False, learner=result.learner)
    assert again.learner is result.learner and again.learner.config.actor_lr == 3e-3  # its own config is kept
    with pytest.raises(PlayworldError, match="learner to continue"):
        dream(LineModel(), line_data, ActorCriticConfig(**TINY), steps=1, progress=False, learner=result.learner)


def test_latent_agent_on_disk_needs_its_world_model(tmp_path):
    learner = ActorCritic(SPEC, ActorCriticConfig(inputs="latent", latent_dim=8, **TINY))
    path = save_agent(tmp_path / "a", learner.actor, SPEC, {"run": str(tmp_path / "gone")})
    actor, _, config = load_actor(path)  # the actor alone loads
    assert actor.config.latent_dim == 8 and config["actor"].inputs == "latent"
    with pytest.raises(PlayworldError, match="not there") as e:
        load_policy(path)
    assert "dream the agent again" in e.value.fix
