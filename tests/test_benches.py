"""Every benchmark script runs end to end at a smoke budget and prints the JSON it promises.

The figures themselves are measured at full budget (see the README); these runs only keep the
scripts from rotting as the library changes under them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str, timeout: float = 300) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    start = res.stdout.index("{")  # some benches print a heading before their JSON
    return json.loads(res.stdout[start:])


@pytest.mark.slow
def test_genie_latent_actions_bench(tmp_path):
    out = _bench("genie_latent_actions.py", "--out", tmp_path, "--resolution", 32, "--episodes", 6,
                 "--steps-per-episode", 20, "--train-steps", 3, "--preset", "debug")
    assert out["recipe"] == "staged" and "model.tokenizer_steps=300" in out["sets"]  # the measured recipe by default
    mapping = out["latent"]["majority_mapping"]
    assert 0.0 <= mapping["accuracy_val"] <= 1.0 and mapping["val_transitions"] > 0
    assert {"delta_psnr_4", "psnr_4_real_actions", "psnr_4_random_actions", "psnr_4_copy_last"} <= set(out["true"])
    assert out["true"]["delta_psnr_4"] == pytest.approx(out["true"]["psnr_4_real_actions"] - out["true"]["psnr_4_random_actions"])
    assert 0 < out["true"]["psnr_4_copy_last"] < 100 and 0 < out["latent"]["psnr_4_copy_last"] < 100
    for name in ("latent", "true"):
        acc = out[name]["next_token_accuracy"]
        assert acc["moved"]["frames"] > 0 and 0 <= acc["moved"]["real_action"] <= 1
        assert acc["moved"]["copy_previous"] < 1  # the view moved, so some token changed
        assert acc.get("still", {"copy_previous": 1.0})["copy_previous"] == 1.0  # an unchanged frame has unchanged tokens


@pytest.mark.slow
def test_kang_repro_bench(tmp_path):
    out = _bench("kang_repro.py", "--out", tmp_path, "--train-episodes", 10, "--ood-episodes", 10, "--steps", 2,
                 "--preset", "debug", "--eval-clips", 2, "--resolution", 32, "--threads", 1)
    ours = out["ours"]
    assert ours["velocity_error_id"] is not None and ours["velocity_error_ood"] is not None
    assert ours["finding_reproduced"] == (ours["ood_over_id"] >= 5.0)
    # continuing the finished run at a lower rate, evaluated with more sampling steps
    again = _bench("kang_repro.py", "--out", tmp_path, "--train-episodes", 10, "--ood-episodes", 10, "--continue-minutes",
                   0.05, "--continue-lr", 1e-4, "--eval-steps", 2, "--eval-clips", 2, "--resolution", 32, "--threads", 1)
    assert again["train"]["continued"] and again["train"]["steps"] > 2  # trained on from step 2
    assert again["settings"]["eval_sampling_steps"] == 2
    lrs = [json.loads(x).get("lr") for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] is None and 1e-4 in lrs  # the continued steps ran at --continue-lr


@pytest.mark.slow
def test_teacher_forced_psnr_bench(tmp_path):
    from playworld.data.collect import collect
    from playworld.train.loop import train

    collect("explorer", tmp_path / "data", episodes=6, steps=20, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("teacher_forced_psnr.py", tmp_path / "run", tmp_path / "data", "--windows", 8, "--threads", 1)
    assert out["windows"] == 8 and out["model_psnr"] > 0 and out["copy_last_psnr"] > out["model_psnr"]  # 2 steps: worse


@pytest.mark.slow
def test_dream_explorer_bench_in_a_diffusion_model(tmp_path):
    out = _bench("dream_explorer.py", "--tiny", "--threads", 1, "--out", tmp_path / "b")  # the default: diffusion
    assert out["family"] == "diffusion" and out["sets"] == ["model.channels=32,48,64"]
    assert out["dream"]["config"]["inputs"] == "pixels" and out["dream"]["steps"] > 0 and isinstance(out["met"], bool)
    assert (tmp_path / "b" / "run" / "agents" / "reward_model" / "model.safetensors").exists()
    diag = _bench("reward_pickups.py", tmp_path / "b" / "run", tmp_path / "b" / "data", "--adjacent-episodes", 2,
                  "--reward-steps", 20)
    for check in ("adjacent_coin", "adjacent_coin_real_frames"):  # through the model's frames, on the real ones
        assert diag[check]["steps_with_adjacent_coin"] > 0 and 0 <= diag[check]["best_move_takes_coin"] <= 1
        assert set(diag[check]["mean_predicted"]) == {"coin_move", "other_move", "noop"}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["dream_explorer.py", "dream_cartpole.py"])
def test_dream_benches(tmp_path, script):
    seeker = ["--model", "rssm", "--seeker-reach", 2, "--seeker-wander", "random"] if script == "dream_explorer.py" else []
    out = _bench(script, "--tiny", "--threads", 1, "--out", tmp_path / "b", *seeker)
    assert out["tiny"] is True and out["train"]["steps"] > 0 and out["dream"]["steps"] > 0
    assert {"agent_mean", "random_mean"} <= set(out["real"]) and isinstance(out["met"], bool)
    if script == "dream_explorer.py":  # the planner bench on the run the dream bench trained
        assert out["seeker"] == {"reach": 2, "wander": "random", "adjacent": "take"}
        plan = _bench("planner_real.py", tmp_path / "b" / "run", "--episodes", 2, "--population", 8, "--horizon", 3,
                      "--iterations", 1, "--max-steps", 5, "--world-option", "map_size=64", "--world-option", "n_coins=64")
        assert len(plan["planner_returns"]) == len(plan["random_returns"]) == 2
        assert plan["planner_steps"] == 10 and plan["planner_cpu_s_per_step"] > 0
        real = _bench("agent_real.py", tmp_path / "b" / "agent", "--episodes", 2, "--max-steps", 5)
        assert len(real["agent"]["returns"]) == len(real["random"]["returns"]) == 2 and real["inputs"] == "latent"
        diag = _bench("reward_pickups.py", tmp_path / "b" / "run", tmp_path / "b" / "data", "--horizon", 4, "--windows", 1,
                      "--adjacent-episodes", 2)
        adjacent = diag["adjacent_coin"]
        assert adjacent["episodes"] == 2 and adjacent["steps_with_adjacent_coin"] > 0
        assert 0 <= adjacent["best_move_takes_coin"] <= 1 and 0 < adjacent["chance"] <= 1
        assert [c["policy"] for c in diag["collections"]][:2] == ["random", "callable"]  # one entry per collection
        assert all(c["windows"] > 0 and c["filtered"]["mean_elsewhere"] is not None for c in diag["collections"])
        drawn = [v for c in diag["collections"] for v in c["coins_drawn"].values() if v is not None]
        assert drawn and all(0 <= v <= 1 for v in drawn)  # explorer data: the coins' share the model draws


def test_explorer_seekers_bench():
    out = _bench("explorer_seekers.py", "--episodes", 2)
    rows = out["policies"]
    assert {"random", "reach0_straight", "reach1_straight", "any_in_view_straight"} <= set(rows)
    assert rows["random"]["ratio_to_random"] == 1.0
    assert rows["any_in_view_straight"]["mean"] > 2 * max(rows["random"]["mean"], 1.0)  # the full seeker: far ahead


class _CoinSeeingModel:
    """A fake world model for the adjacent-coin check: its state is the newest real frame, and its one-step
    reward is 1 where the move lands on a coin drawn in that frame (`see=True`) or 0 everywhere."""

    def __init__(self, see: bool):
        from playworld.worlds.explorer import Explorer

        self.see, self.spec = see, type("Spec", (), {"resolution": 32, "action_space": Explorer.action_space, "context": 1})()

    def reset(self, frames, actions, seed=None):
        return (frames[0, -1], 0)

    def observe(self, state, frame, action):
        return (frame[0], 0)

    def advance(self, state, action):
        return (state[0], int(action[0]))

    def predict_reward(self, state):
        import numpy as np
        import torch

        from playworld.worlds.explorer import COIN_COLOR, MOVES

        frame, a = state
        dx, dy = MOVES[a]
        y, x = 15 + 2 * int(dy), 15 + 2 * int(dx)  # 32 px: the agent's 2-px cell starts at pixel 15
        pixel = frame[:, y, x].numpy().astype(int)
        return torch.tensor([float(self.see and np.abs(pixel - np.array(COIN_COLOR)).sum() < 90)])


def test_adjacent_coin_check_tells_a_model_that_sees_coins_from_one_that_does_not():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reward_pickups", ROOT / "bench" / "reward_pickups.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    options = {"map_size": 64, "n_coins": 64}
    seeing = bench.adjacent_coin(_CoinSeeingModel(True), options, episodes=8, seed=0, steps=100)
    blind = bench.adjacent_coin(_CoinSeeingModel(False), options, episodes=8, seed=0, steps=100)
    assert seeing["steps_with_adjacent_coin"] == blind["steps_with_adjacent_coin"] > 20
    assert seeing["best_move_takes_coin"] == 1.0
    assert blind["best_move_takes_coin"] < 0.4  # ties: its argmax always moves up, onto a coin only when one is above


class _FrameModel:
    """A fake pixel world model for the adjacent-coin check through a reward model: each predicted frame
    is the newest context frame with the action written into its top-left pixel."""

    def __init__(self):
        from playworld.worlds.explorer import Explorer

        self.spec = type("Spec", (), {"resolution": 32, "action_space": Explorer.action_space, "context": 2})()

    def reset(self, frames, actions, seed=None):
        return frames[:, -1]

    def step(self, state, actions):
        frames = state.clone()
        frames[:, 0, 0, 0] = actions.to(frames.dtype)
        return state, frames


def _coin_at(prev, move: int) -> bool:
    """Whether the 32-px frame prev (3, R, R) shows a coin in the cell `move` leads to."""
    import numpy as np

    from playworld.worlds.explorer import COIN_COLOR, MOVES

    dx, dy = MOVES[move]
    pixel = prev[:, 15 + 2 * int(dy), 15 + 2 * int(dx)].numpy().astype(int)
    return move > 0 and bool(np.abs(pixel - np.array(COIN_COLOR)).sum() < 90)


def _seeing_reward_fn(state, prev, frame):
    """Reads the move from the fake model's frame and pays 1 where it lands on a coin drawn in prev."""
    import torch

    r = [float(_coin_at(p, int(f[0, 0, 0]))) for p, f in zip(prev, frame)]
    return torch.tensor(r), torch.ones(len(r))


def _shift_reward_fn(state, prev, frame):
    """On real frames: the move is the view's 2-pixel shift (or none) that best maps prev onto frame."""
    import torch

    from playworld.worlds.explorer import MOVES

    out = []
    for p, f in zip(prev.long(), frame.long()):
        errs = [(torch.roll(p, (-2 * int(dy), -2 * int(dx)), (1, 2)) - f)[:, 4:-4, 4:-4].abs().sum() for dx, dy in MOVES]
        out.append(float(_coin_at(p.to(torch.uint8), int(torch.stack(errs).argmin()))))
    return torch.tensor(out), torch.ones(len(out))


def test_adjacent_coin_check_through_a_reward_model_on_predicted_and_real_frames():
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("reward_pickups", ROOT / "bench" / "reward_pickups.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    options, model = {"map_size": 64, "n_coins": 64}, _FrameModel()
    blind = lambda state, prev, frame: (torch.zeros(len(prev)), torch.ones(len(prev)))  # noqa: E731
    runs = {name: bench.adjacent_coin(model, options, episodes=6, seed=0, steps=100, reward_fn=fn, real_frames=real)
            for name, fn, real in [("model", _seeing_reward_fn, False), ("real", _shift_reward_fn, True),
                                   ("blind", blind, False)]}
    assert runs["model"]["steps_with_adjacent_coin"] == runs["blind"]["steps_with_adjacent_coin"] > 15
    assert runs["model"]["best_move_takes_coin"] == 1.0 and runs["real"]["best_move_takes_coin"] > 0.9
    assert runs["model"]["mean_predicted"] == {"coin_move": 1.0, "other_move": 0.0, "noop": 0.0}
    assert runs["blind"]["best_move_takes_coin"] < 0.4


@pytest.mark.slow
def test_speed_benches():
    worlds = _bench("worlds_fps.py", "--resolution", 32, "--seconds", 0.1)
    assert {"explorer", "physics/uniform"} <= set(worlds["worlds"])
    assert all(w["step_fps_wall"] > 0 for w in worlds["worlds"].values())
    genie = _bench("genie_speed.py", "--preset", "debug", "--frames", 2, "--repeats", 1, "--threads", 1)
    assert genie["genie"]["fps_cache"] > 0 and genie["genie"]["fps_no_cache"] > 0
    assert genie["iris_size"]["layers"] == 10 and genie["genie_vs_iris_transformer_only"] > 0


@pytest.mark.slow
def test_genie_lam_alone_bench(tmp_path):
    out = _bench("genie_lam_alone.py", "--out", tmp_path, "--episodes", 6, "--steps-per-episode", 20, "--steps", 4,
                 "--every", 2, "--warmup", 2, "--channels", "8,16", "--eval-transitions", 40)
    assert [h["step"] for h in out["history"]] == [0, 2, 4]
    assert all(0.0 <= h["accuracy_val"] <= 1.0 and 1 <= h["codes_in_use_val"] <= 8 for h in out["history"])
    assert 0 < out["chance"] < 1 and out["final_accuracy_val"] == out["history"][-1]["accuracy_val"]
