"""`playworld dream` end to end on a debug rssm run, and its user errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from agent_fixtures import LineModel

from playworld.agents.dream import check_reward_signal
from playworld.cli import main
from playworld.data.collect import collect
from playworld.data.store import Dataset, create_or_append
from playworld.errors import PlayworldError

RES = 32
DENSE = {"map_size": 32, "n_coins": 40}  # a small explorer map thick with coins: random walks find some


def _user_error(result, *words: str) -> None:
    code, out, err = result
    assert code != 0 and "Traceback" not in out + err, (out, err)
    assert "error:" in err and "fix:" in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def explorer_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dream")
    data = root / "data"
    collect("explorer", data, episodes=4, steps=40, resolution=RES, world_options=DENSE, progress=False)
    assert Dataset(data).num_frames and any(Dataset(data).load_episode(e).rewards.any() for e in Dataset(data).episode_ids())
    try:
        main(["train", "--data", str(data), "--model", "rssm", "--preset", "debug", "--steps", "2",
              "--out", str(root / "run"), "--no-progress"])
    except SystemExit as e:
        assert not e.code, e.code
    return root / "run", data


@pytest.mark.slow
def test_dream_writes_the_agent_and_its_real_world_evaluation(explorer_run, cli, tmp_path):
    run, data = explorer_run
    out = tmp_path / "agents" / "coins"
    code, stdout, err = cli("dream", run, "--data", data, "--out", out, "--steps", "2", "--batch", "4", "--horizon", "3",
                            "--eval-episodes", "2", "--max-steps", "20", "--threads", "1", "--no-progress")
    assert code == 0, err
    assert {"policy.safetensors", "config.json", "eval.json", "metrics.jsonl"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "eval.json").read_text())
    assert report["world"] == "explorer" and report["episodes"] == 2
    for who in ("agent", "random"):
        assert len(report[who]["returns"]) == 2 and report[who]["mean"] == pytest.approx(np.mean(report[who]["returns"]))
    assert f"agent {report['agent']['mean']:.2f} vs random {report['random']['mean']:.2f}" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["world_options"] == DENSE and config["steps"] == 2 and config["spec"]["resolution"] == RES
    assert config["actor"]["inputs"] == "latent" and config["checkpoint"] == "00000002"  # rssm: the latent state by default

    # the saved agent plays: as a policy in the real world and in play's agent mode
    from playworld.agents.agent import load_policy, world_returns
    from playworld.play.controls import register_play_agent
    from playworld.play.controls import list_agents, make_agent
    from playworld.worlds.base import make_world

    world = make_world("explorer", resolution=RES, **DENSE)
    assert len(world_returns(world, load_policy(out), episodes=1, max_steps=5)) == 1
    name = register_play_agent(out)
    assert name == "coins" and "coins" in list_agents()
    agent = make_agent("coins", world.action_space)
    agent.reset(3)
    assert 0 <= int(agent.act(world.reset(0)[0])) < 5


@pytest.mark.slow
def test_dream_user_errors(explorer_run, cli, tmp_path):
    run, data = explorer_run
    # the same world and resolution, but every reward zeroed: nothing to learn
    src, flat = Dataset(data), tmp_path / "flat"
    with create_or_append(flat, "explorer", RES, src.action_space, fps=src.fps, world_options=DENSE) as w:
        for ep in src.episode_ids():
            e = src.load_episode(ep)
            w.add_episode(frames=np.asarray(e.frames), actions=e.actions, rewards=np.zeros_like(e.rewards))
    _user_error(cli("dream", run, "--data", flat, "--out", tmp_path / "a", "--steps", "1"), "no rewards", "reward head")
    _user_error(cli("dream", tmp_path / "nope", "--data", data, "--out", tmp_path / "a", "--steps", "1"), "nope")
    _user_error(cli("dream", run, "--data", data, "--out", tmp_path / "a", "--steps", "0"), "steps")
    _user_error(cli("play", run, "--agent", tmp_path / "no-agent"), "no-agent", "does not exist")
    _user_error(cli("dream", run, "--data", data, "--out", tmp_path / "a", "--steps", "1", "--inputs", "eyes"), "eyes")
    assert not (tmp_path / "a").exists()


def test_no_reward_head_and_no_rewards_is_a_user_error(line_data_no_rewards):
    with pytest.raises(PlayworldError, match="no reward head") as e:
        check_reward_signal(LineModel(heads=False), Dataset(line_data_no_rewards))
    assert "collect data from a world that gives rewards" in e.value.fix
    with pytest.raises(PlayworldError, match="reward head was trained on it"):
        check_reward_signal(LineModel(heads=True), Dataset(line_data_no_rewards))


def test_dream_cpu_budget_clock(explorer_run, monkeypatch):
    import itertools

    from playworld.agents import dream as dream_module
    from playworld.runs.load import load_world_model

    run, data = explorer_run
    model = load_world_model(run)
    config = dream_module.ActorCriticConfig(horizon=2, batch=2)
    with pytest.raises(PlayworldError, match="budget clock"):
        dream_module.dream(model, data, config, minutes=1.0, progress=False, budget_clock="sundial")
    ticks = itertools.count()  # a CPU clock that advances 20 s per reading: one minute is 3 readings
    monkeypatch.setattr(dream_module.time, "process_time", lambda: 20.0 * next(ticks))
    result = dream_module.dream(model, data, config, minutes=1.0, progress=False, budget_clock="cpu")
    assert 1 <= result.steps <= 3


def test_rssm_observe_continues_the_filter_of_reset(explorer_run):
    # a latent-state agent tracks the real world one frame at a time: reset on frame 0, then observe
    # frames 1.. with the actions that led into them, is exactly reset on the whole clip (same seed)
    import torch

    from playworld.runs.load import load_world_model

    run, data = explorer_run
    model = load_world_model(run)
    ep = Dataset(data).load_episode(Dataset(data).episode_ids()[0])
    frames = torch.from_numpy(np.asarray(ep.frames[:4]).transpose(0, 3, 1, 2).copy())[None]
    actions = torch.from_numpy(np.asarray(ep.actions[:4]))[None]
    state = model.reset(frames[:, :1], actions[:, :1], seed=5)
    for t in range(1, 4):
        state = model.observe(state, frames[:, t], actions[:, t])
    whole = model.reset(frames, actions, seed=5)
    assert torch.allclose(model.features(state), model.features(whole), atol=1e-5)
    assert model.features(state).shape == (1, model.feature_dim)
    with pytest.raises(PlayworldError, match="action"):
        model.observe(state, frames[:, 1], torch.tensor([9]))
