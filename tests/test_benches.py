"""Every benchmark script runs end to end at a budget of seconds and prints the JSON it promises.

The figures themselves are measured at full budget (see the docs). Here each run also shows that
its figures come from measurement, not from literals: a count that follows the input it was given
(seconds, repeats, presses, steps, a dataset's size), a size read from the network built (checked
against one built here, or a parameter count computed here), or a value recomputed here another way.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from playworld.agents.agent import world_returns
from playworld.benchmarks import REFERENCE, REFERENCE_CONTEXT
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.eval.physical import ball_positions, in_view
from playworld.metrics import pooled_psnr
from playworld.models import get_family
from playworld.models.interface import WorldSpec
from playworld.models.nn import SelfAttention
from playworld.options import parse_sets
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace
from playworld.train.loop import train
from playworld.train.validation import validation_windows
from playworld.worlds.explorer import COIN_COLOR, MOVES, Explorer
from playworld.worlds.policies import RandomPolicy

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def _bench(script: str, *args, timeout: float = 300) -> dict:
    """Run bench/<script> at one thread as a user would; its JSON, checked for the common report."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args), "--threads", "1"],
                         check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)  # only the JSON goes to stdout
    assert out["bench"] == Path(script).stem
    assert out["machine"]["threads"] == 1 and out["machine"]["torch"] == torch.__version__
    return out


def _load_script(script: str):
    """A bench script as a module, to test one of its functions."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / "bench" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _diffusion(preset, spec: WorldSpec, **overrides) -> torch.nn.Module:
    family = get_family("diffusion")
    config = make_model_config(family, preset)
    return family.build(dataclasses.replace(config, **overrides) if overrides else config, spec)


# -- speed ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_worlds_fps_counts_follow_the_time_given():
    short, long = (_bench("speed/worlds_fps.py", "--resolution", 32, "--seconds", s, "--world", "explorer",
                          "--world", "physics/uniform") for s in (0.03, 0.15))
    for name in ("explorer", "physics/uniform"):
        a, b = short["worlds"][name], long["worlds"][name]
        assert a["step_fps"] > 0 and a["step_fps_wall"] > 0 and a["episode_fps"] > 0
        assert b["frames"] > 2 * a["frames"] and b["episode_frames"] > 2 * a["episode_frames"]  # 5x the CPU time
    assert set(short["worlds"]) == {"explorer", "physics/uniform"} and short["seconds"] == 0.03


def test_diamond_reference_attends_in_its_mid_block_only():
    """DIAMOND's denoiser attends in its mid block and nowhere in its levels; the reference matches it.
    And what the docs quote: `small` samples 1 step through a patch-2 stem, the reference 3 at full resolution."""
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=REFERENCE_CONTEXT)
    unet = _diffusion(None, spec, **REFERENCE).unet
    assert isinstance(unet.mid[0].attn, SelfAttention) and unet.mid[1].attn is None
    assert all(block.attn is None for level in [*unet.down, *unet.up] for block in level)
    assert sum(isinstance(m, SelfAttention) for m in unet.modules()) == 1
    assert len(unet.down) == 4 and all(len(level) == 2 for level in unet.down) and unet.patch == 1
    small = make_model_config(get_family("diffusion"), load_preset("small"))
    assert (small.steps, small.patch) == (1, 2) and (REFERENCE["steps"], REFERENCE["patch"]) == (3, 1)


def test_the_quality_bench_diamond_row_builds_on_the_presets_it_trains_from():
    """The DIAMOND row's sets on top of the `small` preset (the bench's) and `debug` (its --tiny) make a network:
    a preset setting the DIAMOND recipe does not undo (a transport, which needs a residual) fails here, not after
    10 CPU-minutes of the default row."""
    q = _load_script("repro/quality.py")
    sets = parse_sets(q.DIAMOND)["model"]
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=4)
    family = get_family("diffusion")
    for preset in ("small", "debug"):
        config = make_model_config(family, load_preset(preset), {k: v for k, v in sets.items() if k != "context"})
        assert config.transport == 0 and not config.residual and config.steps == 3, preset
        family.build(config, spec)


@pytest.mark.slow
def test_generation_bench_and_playworld_bench_measure_the_networks_they_build(tmp_path, cli):
    script = _bench("speed/generation.py", "--preset", "small", "--repeats", 2, "--frames", 1, "--dtypes", "fp32")
    code, stdout, err = cli("bench", "--preset", "debug", "--repeats", 1, "--frames", 1, "--threads", 1, "--no-progress",
                            "--out", tmp_path / "bench.json")
    assert code == 0, err
    command = json.loads(stdout)
    assert json.loads((tmp_path / "bench.json").read_text()) == command
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=resolve_context(load_preset("small")))
    for out, preset, repeats in ((script, "small", 2), (command, "debug", 1)):
        p = load_preset(preset)
        small = _diffusion(p, dataclasses.replace(spec, context=resolve_context(p)))
        assert out["small"]["params_millions"] == round(_params(small) / 1e6, 3)
        assert out["small"]["mid_attention"] == (small.unet.mid[0].attn is not None)
        assert len(out["small"]["fp32"]["frames_per_s_all_repeats"]) == out["setup"]["repeats"] == repeats
        assert out["small"]["fp32"]["frames_per_s"] > 0 and out["matmul_gflops"]["fp32"] > 0
        assert ("bf16" in out["small"]) == (preset == "debug" and "bf16" not in out["setup"]["skipped"])
    # the reference is the same network in both runs, the preset's model is not
    assert script["reference"]["fp32"]["gflop_per_frame"] == command["reference"]["fp32"]["gflop_per_frame"]
    assert script["small"]["fp32"]["gflop_per_frame"] != command["small"]["fp32"]["gflop_per_frame"]
    ref_net = _diffusion(None, dataclasses.replace(spec, context=REFERENCE_CONTEXT), **REFERENCE)
    assert script["reference"]["params_millions"] == round(_params(ref_net) / 1e6, 3)
    # the comparison the docs quote, read from the configs of the networks timed
    assert (script["small"]["steps"], script["small"]["patch"], script["small"]["unet_resolution"]) == (1, 2, 32)
    ref = script["reference"]
    assert (ref["steps"], ref["patch"], ref["mid_attention"], ref["level_attention"]) == (3, 1, True, [False] * 4)
    assert script["small_vs_reference"] == ("small 1 euler step with a patch-2 stem (32 px); "
                                            "the reference 3 euler steps with full resolution")


def test_playworld_bench_times_the_configuration_set_on_the_command_line(cli):
    args = ("bench", "--preset", "debug", "--repeats", 1, "--frames", 1, "--threads", 1, "--no-progress")
    code, stdout, err = cli(*args, "--set", "model.transport=2", "--set", "model.steps=2")
    assert code == 0, err
    out = json.loads(stdout)
    p = load_preset("debug")
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=resolve_context(p))
    built = _diffusion(p, spec, transport=2, steps=2)
    assert (out["small"]["transport"], out["small"]["steps"]) == (2, 2) and out["setup"]["sets"] == {"transport": "2", "steps": "2"}
    assert out["small"]["params_millions"] == round(_params(built) / 1e6, 3) != round(_params(_diffusion(p, spec)) / 1e6, 3)
    code, stdout, err = cli(*args, "--set", "train.lr=1e-3")
    assert code != 0 and "model options only" in stdout + err


@pytest.mark.slow
def test_genie_speed_reads_every_size_from_the_models_it_builds():
    out = _bench("speed/genie_speed.py", "--preset", "debug", "--frames", 2, "--repeats", 1, "--iris-layers", 2,
                 "--iris-dim", 64)
    family, preset = get_family("genie"), load_preset("debug")
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=resolve_context(preset))
    dyn = family.build(make_model_config(family, preset), spec).dynamics
    genie = out["genie"]
    assert (genie["layers"], genie["dim"], genie["tokens_per_frame"]) == (len(dyn.blocks), dyn.embed.embedding_dim, dyn.tokens)
    assert genie["params_dynamics"] == _params(dyn) and genie["fps_cache"] > 0 and genie["fps_no_cache"] > 0
    iris = out["iris_size"]
    assert (iris["layers"], iris["dim"], iris["tokens_per_frame"]) == (2, 64, 17)  # as asked, not IRIS's 10 x 256
    d, vocab, positions = 64, 512, 17 * 20 + 17  # a GPT's parameters counted here: blocks, embeddings, head
    assert iris["params"] == 2 * (12 * d * d + 13 * d) + (vocab + 5 + positions) * d + 2 * d + d * vocab + vocab
    assert out["genie_vs_iris_transformer_only"] > 0
    default = _load_script("speed/genie_speed.py").IrisTransformer()  # the size the bench times by default
    assert (len(default.blocks), default.tok.embedding_dim, default.tpf, default.blocks[0].heads) == (10, 256, 17, 8)


@pytest.mark.slow
def test_loader_bench_reads_the_dataset_and_times_the_presets_model(tmp_path):
    ds = collect("explorer", tmp_path / "data", episodes=4, steps=20, resolution=32, seed=0, progress=False)
    out = _bench("speed/loader.py", "--data", tmp_path / "data", "--preset", "debug", "--workers", "0,1", "--seconds", 0.2,
                 "--batch", 8)
    assert out["dataset"] == {"world": "explorer", "episodes": len(ds), "frames": ds.num_frames, "resolution": 32}
    preset = load_preset("debug")
    spec = WorldSpec(resolution=32, action_space=ds.action_space, context=resolve_context(preset))
    assert out["context"] == out["training_step"]["context"] == resolve_context(preset)
    assert out["training_step"]["params"] == _params(_diffusion(preset, spec)) and out["training_step"]["step_s"] > 0
    assert [r["num_workers"] for r in out["loader"]] == [0, 1]
    for r in out["loader"]:
        assert r["batches"] > 0 and r["windows_per_s"] == pytest.approx(8 * r["batches_per_s"], rel=0.01)
    assert out["headroom"] == pytest.approx(max(r["windows_per_s"] for r in out["loader"]) / out["training_step"]["windows_per_s"],
                                            abs=0.1)


@pytest.mark.slow
def test_play_latency_bench_times_the_presses_and_the_tick_it_is_given():
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip(f"no browser at {CHROMIUM} (under CI=true this fails)")
    out = _bench("speed/play_latency.py", "oracle:explorer", "--fps", 12, "--seconds", 0.4, "--presses", 2)
    assert out["latency_ms"]["n"] == 2 and out["latency_ms"]["median"] > 0
    assert 0 < out["sustained_fps"] <= 12 * 1.25 and out["frames_drawn"] > 0  # the 12 Hz tick caps it
    assert out["frame_encoding"]["raw_bytes"] == out["resolution"] ** 2 * 3 and out["step_ms"]["n"] > 0


# -- repro ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_genie_latent_actions_bench(tmp_path):
    out = _bench("repro/genie_latent_actions.py", "--out", tmp_path, "--resolution", 32, "--episodes", 6,
                 "--steps-per-episode", 20, "--train-steps", 3, "--preset", "debug")
    assert out["recipe"] == "staged" and "model.tokenizer_steps=300" in out["sets"]  # the measured recipe by default
    mapping = out["latent"]["majority_mapping"]
    labelled = Dataset(tmp_path / "explorer")
    assert mapping["val_transitions"] == sum(labelled.episode_length(e) - 1 for e in labelled.episode_ids("val"))
    assert 0.0 <= mapping["accuracy_val"] <= 1.0 and sum(mapping["latent_usage_val"]) == mapping["val_transitions"]
    assert {"delta_psnr_4", "psnr_4_real_actions", "psnr_4_random_actions", "psnr_4_copy_last"} <= set(out["true"])
    assert out["true"]["delta_psnr_4"] == pytest.approx(out["true"]["psnr_4_real_actions"] - out["true"]["psnr_4_random_actions"])
    assert 0 < out["true"]["psnr_4_copy_last"] < 100 and 0 < out["latent"]["psnr_4_copy_last"] < 100
    for name in ("latent", "true"):
        acc = out[name]["next_token_accuracy"]
        assert acc["moved"]["frames"] > 0 and 0 <= acc["moved"]["real_action"] <= 1
        assert acc["moved"]["copy_previous"] < 1  # the view moved, so some token changed
        assert acc.get("still", {"copy_previous": 1.0})["copy_previous"] == 1.0  # an unchanged frame has unchanged tokens
        assert out[name]["last_train_log"]["step"] <= 3


@pytest.mark.slow
def test_kang_repro_bench(tmp_path):
    out = _bench("repro/kang_repro.py", "--out", tmp_path, "--train-episodes", 10, "--ood-episodes", 10, "--steps", 2,
                 "--preset", "debug", "--eval-clips", 2, "--resolution", 32)
    ours = out["ours"]
    assert ours["velocity_error_id"] is not None and ours["velocity_error_ood"] is not None
    assert ours["ood_over_id"] == round(ours["velocity_error_ood"] / ours["velocity_error_id"], 2)
    assert ours["finding_reproduced"] == (ours["ood_over_id"] >= 5.0)
    assert out["train"]["steps"] == 2 and out["train"]["train_clips"] == len(Dataset(tmp_path / "id").episode_ids("train"))
    assert all(0 < ours["table"][d]["clips"] <= 2 for d in ("id", "ood"))
    # continuing the finished run at a lower rate, evaluated with more sampling steps
    again = _bench("repro/kang_repro.py", "--out", tmp_path, "--train-episodes", 10, "--ood-episodes", 10, "--continue-minutes",
                   0.1, "--continue-lr", 1e-4, "--eval-steps", 2, "--eval-clips", 2, "--resolution", 32)
    assert again["train"]["continued"] and again["train"]["steps"] > 2  # trained on from step 2
    assert again["settings"]["eval_sampling_steps"] == 2
    lrs = [json.loads(x).get("lr") for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] is None and 1e-4 in lrs  # the continued steps ran at --continue-lr


@pytest.mark.slow
def test_genie_lam_alone_bench(tmp_path):
    out = _bench("repro/genie_lam_alone.py", "--out", tmp_path, "--episodes", 6, "--steps-per-episode", 20, "--steps", 4,
                 "--every", 2, "--warmup", 2, "--channels", "8,16", "--eval-transitions", 40)
    assert [h["step"] for h in out["history"]] == [0, 2, 4]
    assert all(0.0 <= h["accuracy_val"] <= 1.0 and 1 <= h["codes_in_use_val"] <= 8 for h in out["history"])
    assert 0 < out["chance"] < 1 and out["final_accuracy_val"] == out["history"][-1]["accuracy_val"]
    ds = Dataset(tmp_path / "explorer32")
    assert out["train_transitions"] == sum(ds.episode_length(e) - 1 for e in ds.episode_ids("train"))
    assert out["val_transitions"] == min(40, sum(ds.episode_length(e) - 1 for e in ds.episode_ids("val")))


def _check_dream(out: dict, folder: Path) -> None:
    """A dream bench's report against the dataset it left: the first collection, then each round's."""
    data = Dataset(folder / "data")
    assert out["dataset"]["episodes"] == sum(n for _, n in out["dataset"]["collected_with"])
    assert out["dataset"]["episodes"] + sum(r["episodes_collected"] for r in out["rounds"]) == len(data)
    assert out["train"]["steps"] > 0 and out["dream"]["steps"] > 0 and isinstance(out["met"], bool)
    assert set(out["seconds"]) >= {"collect", "train", "dream", "evaluate"}


@pytest.mark.slow
def test_dream_explorer_bench_in_a_diffusion_model(tmp_path):
    out = _bench("repro/dream_explorer.py", "--tiny", "--out", tmp_path / "b")  # the default: diffusion
    assert out["family"] == "diffusion" and out["sets"] == ["model.channels=32,48,64"]
    assert out["dream"]["config"]["inputs"] == "pixels"
    _check_dream(out, tmp_path / "b")
    assert (tmp_path / "b" / "run" / "agents" / "reward_model" / "model.safetensors").exists()
    diag = _bench("diagnose/reward_pickups.py", tmp_path / "b" / "run", tmp_path / "b" / "data", "--adjacent-episodes", 2,
                  "--reward-steps", 20)
    for check in ("adjacent_coin", "adjacent_coin_real_frames"):  # through the model's frames, on the real ones
        assert diag[check]["episodes"] == 2 and diag[check]["steps_with_adjacent_coin"] > 0
        assert 0 <= diag[check]["best_move_takes_coin"] <= 1
        assert set(diag[check]["mean_predicted"]) == {"coin_move", "other_move", "noop"}


@pytest.mark.slow
@pytest.mark.parametrize("script", ["dream_explorer.py", "dream_cartpole.py"])
def test_dream_benches(tmp_path, script):
    seeker = ["--model", "rssm", "--seeker-reach", 2, "--seeker-wander", "random"] if script == "dream_explorer.py" else []
    out = _bench(f"repro/{script}", "--tiny", "--out", tmp_path / "b", *seeker)
    assert out["tiny"] is True and {"agent_mean", "random_mean"} <= set(out["real"])
    _check_dream(out, tmp_path / "b")
    if script == "dream_explorer.py":  # the diagnoses on the run the dream bench trained
        assert out["seeker"] == {"reach": 2, "wander": "random", "adjacent": "take"}
        plan = _bench("diagnose/planner_real.py", tmp_path / "b" / "run", "--episodes", 2, "--population", 8, "--horizon", 3,
                      "--iterations", 1, "--max-steps", 5, "--world-option", "map_size=64", "--world-option", "n_coins=64")
        assert len(plan["planner_returns"]) == len(plan["random_returns"]) == 2
        assert plan["planner_steps"] == 10 and plan["planner_cpu_s_per_step"] > 0  # 2 episodes x 5 steps
        real = _bench("diagnose/agent_real.py", tmp_path / "b" / "agent", "--episodes", 2, "--max-steps", 5)
        assert len(real["agent"]["returns"]) == len(real["random"]["returns"]) == 2 and real["inputs"] == "latent"
        diag = _bench("diagnose/reward_pickups.py", tmp_path / "b" / "run", tmp_path / "b" / "data", "--horizon", 4,
                      "--windows", 1, "--adjacent-episodes", 2)
        adjacent = diag["adjacent_coin"]
        assert adjacent["episodes"] == 2 and adjacent["steps_with_adjacent_coin"] > 0
        assert 0 <= adjacent["best_move_takes_coin"] <= 1 and 0 < adjacent["chance"] <= 1
        assert [c["policy"] for c in diag["collections"]][:2] == ["random", "callable"]  # one entry per collection
        assert all(c["windows"] > 0 and c["filtered"]["mean_elsewhere"] is not None for c in diag["collections"])
        assert sum(c["windows"] for c in diag["collections"]) <= len(Dataset(tmp_path / "b" / "data"))  # one per episode
        drawn = [v for c in diag["collections"] for v in c["coins_drawn"].values() if v is not None]
        assert drawn and all(0 <= v <= 1 for v in drawn)  # explorer data: the coins' share the model draws


@pytest.mark.slow
def test_regimes_bench_summarises_the_curves_it_measured(tmp_path):
    out = _bench("repro/regimes.py", "--minutes", 1, "--steps", 2, "--preset", "debug", "--episodes", 4, "--episode-steps", 16,
                 "--resolution", 32, "--horizon", 3, "--eval-episodes", 1, "--world", "explorer", "--variant",
                 "teacher_forcing", "--out", tmp_path)
    row = out["worlds"]["explorer"]["teacher_forcing"]
    assert row["train_steps"] == 2 and row["horizon"] == 3 and row["rollouts"] >= 1
    curve = json.loads((tmp_path / "regimes.json").read_text())["worlds"]["explorer"]["teacher_forcing"]["psnr_by_step"]
    assert len(curve) == 3 and row["psnr_auc"] == pytest.approx(np.mean(curve))  # the AUC is the mean over steps
    assert 0 <= row["steps_above_threshold"] <= 3 and (tmp_path / "regimes.md").exists()


@pytest.mark.slow
def test_eval_calibration_bench_puts_the_oracle_on_its_floors():
    out = _bench("repro/eval_calibration.py", "--episodes", 30, "--steps", 24, "--horizon", 4, "--eval-episodes", 4,
                 "--helper-steps", 20)
    fid, ctrl = out["fidelity"], out["controllability"]
    assert fid["oracle"]["psnr_steps_above_threshold"] == [4.0, 4.0]  # every one of the --horizon steps, the floor too
    assert fid["oracle"]["psnr_auc"][0] == fid["oracle"]["psnr_auc"][1] > fid["copy-last"]["psnr_auc"][0]
    assert fid["copy-last"]["psnr_teacher_forced"][0] < fid["oracle"]["psnr_teacher_forced"][0]
    assert ctrl["copy-last"]["delta_psnr"][0] == ctrl["ignore-actions"]["delta_psnr"][0] == 0.0  # actions change nothing
    assert ctrl["oracle"]["delta_psnr"][0] > 10


# -- diagnose ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_teacher_forced_psnr_bench(tmp_path):
    collect("explorer", tmp_path / "data", episodes=6, steps=20, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/teacher_forced_psnr.py", tmp_path / "run", tmp_path / "data", "--windows", 8)
    assert out["windows"] == 8 and out["model_psnr"] > 0 and out["copy_last_psnr"] > out["model_psnr"]  # 2 steps: worse
    w = validation_windows(Dataset(tmp_path / "data"), out["context"], 8, "val")  # copy-last, computed here
    assert out["copy_last_psnr"] == pytest.approx(pooled_psnr(w.context_frames[:, -1].numpy(), w.future_frames[:, 0].numpy()))


def test_rollout_strip_bench_draws_the_real_rows_and_scores_the_model_rows(tmp_path):
    collect("explorer", tmp_path / "data", episodes=10, steps=30, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/rollout_strip.py", tmp_path / "run", f"{tmp_path / 'run'}:2", "--data", tmp_path / "data",
                 "--out", tmp_path / "strip.png", "--at", "1,3", "--episodes", 1, "--scale", 1)
    k = resolve_context(load_preset("debug"))
    image = np.asarray(Image.open(tmp_path / "strip.png"))
    assert image.shape == (3 * 32, 2 * 32, 3) and out["rows"] == ["real", str(tmp_path / "run"), f"{tmp_path / 'run'}:2"]
    episode = Dataset(tmp_path / "data").load_episode(out["episodes"][0])
    assert np.array_equal(image[:32, :32], np.asarray(episode.frames[k]))  # the real row: the first frame after K
    one, two = (row["psnr"] for row in out["psnr"])
    assert set(one) == {"1", "3"} and one != two  # the same weights, another sampler


def test_error_ring_bench(tmp_path):
    collect("explorer", tmp_path / "data", episodes=10, steps=30, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/error_ring.py", tmp_path / "run", tmp_path / "data", "--ring", 4, "--horizon", 8)
    assert out["ring_area_share"] == pytest.approx(1 - (24 / 32) ** 2, abs=1e-4) and set(out["model"]) == {"1", "4", "8"}
    # copy-last's shares, computed here from the same windows: the bench measures, it does not print literals
    common = _load_script("diagnose/error_ring.py").common  # the windows the bench takes
    w = common.non_overlapping(Dataset(tmp_path / "data"), "test", out["context"], 8, 32, 0)
    batch = w.batch()
    sq = (batch.context_frames[:, -1:].float() - batch.future_frames.float()) ** 2
    edge = torch.ones(32, 32, dtype=torch.bool)
    edge[4:-4, 4:-4] = False
    share = sq[..., edge].sum(dim=(0, 2, 3)) / sq.sum(dim=(0, 2, 3, 4))
    assert out["windows"] == len(w)
    assert [out["copy_last"][s] for s in ("1", "4", "8")] == pytest.approx([float(share[s - 1]) for s in (1, 4, 8)], abs=1e-4)
    assert all(0 < v < 1 for v in out["model"].values())


def test_seen_ground_marks_what_the_context_showed_on_a_camera_path():
    seen_mask = _load_script("diagnose/seen_ground.py").seen_mask
    cameras = np.array([[5, 5], [6, 5], [7, 5], [5, 5], [6, 7]])  # K = 2 context cells, then 3 future ones
    m = seen_mask(cameras, context=2, size=16, cell=2)
    assert m.shape == (3, 16, 16)
    assert m[0, :, :14].all() and not m[0, :, 14:].any()  # one cell right of the newest: its last 2 columns are new
    assert m[1].all()  # back at the first context cell
    assert m[2, :12].all() and not m[2, 12:].any()  # two cells down from both: the last 4 rows are new


def test_seen_ground_convention_matches_the_explorer_view(tmp_path):
    """The pixels seen_mask calls seen are where explorer draws the same ground again: pixel (y, x) of a frame
    one move on shows what pixel (y + cell dy, x + cell dx) of the frame before showed (a reversed convention
    does not)."""
    collect("explorer", tmp_path / "data", episodes=2, steps=40, resolution=32, progress=False)
    ds = Dataset(tmp_path / "data")
    seen_mask = _load_script("diagnose/seen_ground.py").seen_mask
    pix = np.arange(32)

    def agreement(sign: int) -> float:
        same = total = 0
        for ep in range(2):
            episode = ds.load_episode(ep)
            cams, frames = np.asarray(episode.state["camera"]), np.asarray(episode.frames).astype(int)
            for t in range(1, len(cams)):
                if (cams[t] == cams[t - 1]).all():
                    continue
                mask = seen_mask(cams[t - 1 : t + 1], context=1, size=32, cell=2)[0]
                dx, dy = sign * 2 * (cams[t] - cams[t - 1])
                oy, ox = np.clip(pix + dy, 0, 31), np.clip(pix + dx, 0, 31)
                before = frames[t - 1][np.ix_(oy, ox)]
                match = np.abs(frames[t] - before).max(axis=-1) <= 8
                same, total = same + match[mask].sum(), total + mask.sum()
        assert total > 0  # the camera moved on the recorded episodes
        return same / total

    assert agreement(1) > 0.97 and agreement(-1) < 0.95


def test_seen_ground_bench(tmp_path):
    collect("explorer", tmp_path / "data", episodes=10, steps=30, resolution=32, progress=False)
    collect("physics/uniform", tmp_path / "phys", episodes=4, steps=12, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    k = resolve_context(load_preset("debug"))
    out = _bench("diagnose/seen_ground.py", tmp_path / "data", tmp_path / "run", "--context", k, "--horizon", 8)
    assert out["cell"] == 2 and set(out["unseen_share"]) == {"1", "2", "4", "8"}
    assert all(0 <= v < 1 for v in out["unseen_share"].values())
    # the oracle's unseen colour is the per-frame mean, the best constant there: never below the newest frame's mean
    assert all(out["seen_oracle_mean_fill"][s] >= out["seen_oracle_last_fill"][s] - 0.01 for s in out["unseen_share"])
    row = out["models"][str(tmp_path / "run")]
    # the real seen ground in place of the model's can only lower its error
    assert all(row["with_seen_real"][s] >= row["psnr"][s] - 0.01 for s in row["psnr"])
    # with the seen ground real, the error left is the unseen ground's, spread over the whole frame
    for s, share in out["unseen_share"].items():
        if share > 0.02:
            left = 10 ** (-row["psnr_unseen"][s] / 10) * share
            assert 10 ** (-row["with_seen_real"][s] / 10) == pytest.approx(left, rel=0.03)
    common = _load_script("diagnose/seen_ground.py").common  # copy-last on the bench's windows, computed here
    batch = common.non_overlapping(Dataset(tmp_path / "data"), "test", k, 8, 32, 0).batch()
    copy = pooled_psnr(batch.context_frames[:, -1:].float().expand_as(batch.future_frames), batch.future_frames.float(), axis=0)
    assert [out["copy_last"][s] for s in ("1", "8")] == pytest.approx([float(copy[0]), float(copy[7])], abs=0.01)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/seen_ground.py"), str(tmp_path / "phys")],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "records no `camera` state" in res.stderr


def test_ball_speed_reads_a_ball_played_twice_as_fast_as_twice_the_speed(tmp_path):
    collect("physics/uniform", tmp_path / "data", episodes=3, steps=31, resolution=64, progress=False)
    speed_rows = _load_script("diagnose/ball_speed.py").speed_rows
    episode = Dataset(tmp_path / "data").load_episode(0)
    frames, pos = np.asarray(episode.frames), np.asarray(episode.state["positions"])
    radii, t = np.asarray(episode.state["radii"][0]), 4
    same = speed_rows(frames[t : t + 12], pos, radii, t)
    double = speed_rows(frames[t + 1 : t + 24 : 2], pos, radii, t)  # each shown step covers two true ones
    assert same["step"].size >= 4 and double["step"].size >= 4
    assert np.median(same["along"]) == pytest.approx(1.0, abs=0.05) and np.median(same["across"]) < 0.05
    assert np.median(double["along"]) == pytest.approx(2.0, abs=0.1)
    assert np.median(double["position"]) > 5 * np.median(same["position"])  # it runs ahead of the true centre


def test_ball_speed_bench(tmp_path):
    collect("physics/uniform", tmp_path / "data", episodes=16, steps=31, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/ball_speed.py", tmp_path / "data", tmp_path / "run", "--horizon", 8)
    rows = out["rows"]
    assert set(rows) == {"real", "copy_last", str(tmp_path / "run")} and out["clips"] >= 1
    assert rows["real"]["along"]["4"] == pytest.approx(1.0, abs=0.15)  # the parser on real frames: the right speed
    assert rows["copy_last"]["along"]["4"] == 0.0  # a frozen frame: a stopped ball
    assert rows["real"]["velocity_error"] < 0.5 * rows["copy_last"]["velocity_error"]  # the floor, far below a stop
    assert rows["copy_last"]["position_error"]["8"] > rows["real"]["position_error"]["8"]
    explorer = tmp_path / "explorer"
    collect("explorer", explorer, episodes=2, steps=10, resolution=32, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/ball_speed.py"), str(explorer)],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "parses the balls of a physics/* world" in res.stderr


def test_soft_context_reads_a_real_step_as_itself_and_a_doubled_one_as_twice(tmp_path):
    collect("physics/uniform", tmp_path / "data", episodes=3, steps=31, resolution=64, progress=False)
    sc = _load_script("diagnose/soft_context.py")
    ep = Dataset(tmp_path / "data").load_episode(0)
    frames, pos = np.asarray(ep.frames), np.asarray(ep.state["positions"])
    valid = in_view(pos, np.asarray(ep.state["radii"][0]))
    parsed = ball_positions(frames, 1)
    t = np.arange(2, 29)
    ok = valid[t - 2] & valid[t - 1] & valid[t]
    step = pos[t] - pos[t - 1]
    direction = step / np.maximum(np.linalg.norm(step, axis=-1, keepdims=True), 1e-9)
    same = sc.gains(parsed[t - 2], parsed[t - 1], parsed[t], direction, ok)
    # the "prediction" two true steps on: twice the context's step
    t2 = t[t + 1 < len(frames)]
    ok2 = ok[: len(t2)] & valid[t2 + 1]
    double = sc.gains(parsed[t2 - 2], parsed[t2 - 1], parsed[t2 + 1], direction[: len(t2)], ok2)
    assert same.size >= 4 and double.size >= 4
    assert np.median(same) == pytest.approx(1.0, abs=0.05) and np.median(double) == pytest.approx(2.0, abs=0.1)
    # softness: the rim of a blurred disc is wider than the antialiased rim of a drawn one, and grows with the blur
    clip = frames[None, 4:6]
    soft = [sc.softness(sc.blurred(clip, b)[0, -1], 1) for b in (0.0, 0.5, 1.0)]
    assert soft[0] == sc.softness(frames[5], 1) and soft[0] < soft[1] < soft[2]
    assert sc.softness(np.full((8, 8, 3), 255, np.uint8), 1) == 0.0  # no ball, nothing partly covered


def test_soft_context_bench(tmp_path):
    # 64 px: the gain is a ratio of two parsed steps, and at 32 px the parse's rounding swamps a step of a pixel
    collect("physics/uniform", tmp_path / "data", episodes=16, steps=31, resolution=64, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/soft_context.py", tmp_path / "data", tmp_path / "run", "--horizon", 8, "--at", "4,8", "--blur", "0,1")
    row = out["rows"][str(tmp_path / "run")]
    assert out["at"] == [4, 8] and set(row["blur"]) == {"0.0", "1.0"} and set(row["own"]) == {str(s) for s in range(3, 9)}
    assert out["real"]["gain"] == pytest.approx(1.0, abs=0.1)  # the parser on the real next frame: the speed kept
    assert row["blur"]["1.0"]["softness_context"] > row["blur"]["0.0"]["softness_context"] == out["real"]["softness"]
    medians = [v["gain"] for v in row["own"].values() if v["gain"] is not None]
    assert row["compounded"] == pytest.approx(float(np.prod(medians)), rel=1e-2, abs=1e-2)
    explorer = tmp_path / "explorer"
    collect("explorer", explorer, episodes=2, steps=10, resolution=32, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/soft_context.py"), str(explorer), str(tmp_path / "run")],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "parses the balls of a physics/* world" in res.stderr


@pytest.mark.skipif(importlib.util.find_spec("diffusers") is None, reason="the clip family needs the video extra")
def test_clip_timesteps_bench(tmp_path):
    collect("physics/uniform", tmp_path / "data", episodes=12, steps=12, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="clip", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/clip_timesteps.py", tmp_path / "run", tmp_path / "data", "--steps", "1,2", "--timesteps", "0,999")
    assert set(out["psnr_by_sampler_steps"]) == {"1", "2"} and set(out["x0_mse_by_timestep"]) == {"0", "999"}
    win = validation_windows(Dataset(tmp_path / "data"), out["context"], 32)
    assert out["windows"] == win.size  # the val windows training scores, and copy-last recomputed on them
    assert out["copy_last_psnr"] == pytest.approx(float(pooled_psnr(win.context_frames[:, -1].numpy(), win.future_frames[:, 0].numpy())), abs=0.01)
    mse = out["x0_mse_by_timestep"]
    assert mse["0"] < 0.1 * mse["999"]  # at t = 0 the noised chunk all but shows the clean one; pure noise has to be predicted


def test_explorer_seekers_bench():
    out = _bench("diagnose/explorer_seekers.py", "--episodes", 2)
    rows = out["policies"]
    assert {"random", "reach0_straight", "reach1_straight", "any_in_view_straight"} <= set(rows)
    assert rows["random"]["ratio_to_random"] == 1.0
    assert rows["any_in_view_straight"]["mean"] > 2 * max(rows["random"]["mean"], 1.0)  # the full seeker: far ahead
    world, policy = Explorer(resolution=32, map_size=64, n_coins=64), RandomPolicy(Explorer.action_space, seed=0)
    returns = [world_returns(world, policy, 1, seed=10_000 + i, max_steps=200)[0] for i in range(2)]
    assert rows["random"]["mean"] == pytest.approx(np.mean(returns))  # the same episodes, played here


class _CoinSeeingModel:
    """A fake world model for the adjacent-coin check: its state is the newest real frame, and its one-step
    reward is 1 where the move lands on a coin drawn in that frame (`see=True`) or 0 everywhere."""

    def __init__(self, see: bool):
        self.see, self.spec = see, type("Spec", (), {"resolution": 32, "action_space": Explorer.action_space, "context": 1})()

    def reset(self, frames, actions, seed=None):
        return (frames[0, -1], 0)

    def observe(self, state, frame, action):
        return (frame[0], 0)

    def advance(self, state, action):
        return (state[0], int(action[0]))

    def predict_reward(self, state):
        frame, a = state
        dx, dy = MOVES[a]
        y, x = 15 + 2 * int(dy), 15 + 2 * int(dx)  # 32 px: the agent's 2-px cell starts at pixel 15
        pixel = frame[:, y, x].numpy().astype(int)
        return torch.tensor([float(self.see and np.abs(pixel - np.array(COIN_COLOR)).sum() < 90)])


def test_adjacent_coin_check_tells_a_model_that_sees_coins_from_one_that_does_not():
    bench = _load_script("diagnose/reward_pickups.py")
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
        self.spec = type("Spec", (), {"resolution": 32, "action_space": Explorer.action_space, "context": 2})()

    def reset(self, frames, actions, seed=None):
        return frames[:, -1]

    def step(self, state, actions):
        frames = state.clone()
        frames[:, 0, 0, 0] = actions.to(frames.dtype)
        return state, frames


def _coin_at(prev, move: int) -> bool:
    """Whether the 32-px frame prev (3, R, R) shows a coin in the cell `move` leads to."""
    dx, dy = MOVES[move]
    pixel = prev[:, 15 + 2 * int(dy), 15 + 2 * int(dx)].numpy().astype(int)
    return move > 0 and bool(np.abs(pixel - np.array(COIN_COLOR)).sum() < 90)


def _seeing_reward_fn(state, prev, frame):
    """Reads the move from the fake model's frame and pays 1 where it lands on a coin drawn in prev."""
    r = [float(_coin_at(p, int(f[0, 0, 0]))) for p, f in zip(prev, frame)]
    return torch.tensor(r), torch.ones(len(r))


def _shift_reward_fn(state, prev, frame):
    """On real frames: the move is the view's 2-pixel shift (or none) that best maps prev onto frame."""
    out = []
    for p, f in zip(prev.long(), frame.long()):
        errs = [(torch.roll(p, (-2 * int(dy), -2 * int(dx)), (1, 2)) - f)[:, 4:-4, 4:-4].abs().sum() for dx, dy in MOVES]
        out.append(float(_coin_at(p.to(torch.uint8), int(torch.stack(errs).argmin()))))
    return torch.tensor(out), torch.ones(len(out))


def _blind_reward_fn(state, prev, frame):
    return torch.zeros(len(prev)), torch.ones(len(prev))


def test_adjacent_coin_check_through_a_reward_model_on_predicted_and_real_frames():
    bench = _load_script("diagnose/reward_pickups.py")
    options, model = {"map_size": 64, "n_coins": 64}, _FrameModel()
    runs = {name: bench.adjacent_coin(model, options, episodes=6, seed=0, steps=100, reward_fn=fn, real_frames=real)
            for name, fn, real in [("model", _seeing_reward_fn, False), ("real", _shift_reward_fn, True),
                                   ("blind", _blind_reward_fn, False)]}
    assert runs["model"]["steps_with_adjacent_coin"] == runs["blind"]["steps_with_adjacent_coin"] > 15
    assert runs["model"]["best_move_takes_coin"] == 1.0 and runs["real"]["best_move_takes_coin"] > 0.9
    assert runs["model"]["mean_predicted"] == {"coin_move": 1.0, "other_move": 0.0, "noop": 0.0}
    assert runs["blind"]["best_move_takes_coin"] < 0.4


def test_threads_bench_times_each_setting_alone_and_beside_a_busy_job():
    out = _bench("speed/threads.py", "--preset", "debug", "--steps", 2)
    ms = out["ms_per_step"]
    settings = sorted({1, os.cpu_count()})
    assert set(ms) == {f"{w}_{t}_threads" for w in ("alone", "beside_one_job") for t in settings}
    assert all(v > 0 for v in ms.values()) and len(set(ms.values())) > 1  # timed, not literals
    assert out["default_threads_idle"] == out["cores"] and out["default_threads_beside_one_job"] == max(1, out["cores"] - 1)


def test_import_graph_counts_what_the_source_holds(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "low").mkdir(parents=True)
    (pkg / "high").mkdir()
    for f in ("__init__.py", "low/__init__.py", "high/__init__.py"):
        (pkg / f).write_text("")
    (pkg / "low" / "a.py").write_text("import os\n")
    (pkg / "high" / "b.py").write_text("import sys\nfrom pkg.low import a\n\n\ndef f():\n    from pkg.low.a import os\n")
    out = _bench("diagnose/import_graph.py", "--src", pkg, "--list-inner")
    assert (out["imports"], out["inside_functions"]) == (4, 1)
    assert out["inside_functions_list"] == ["pkg.high.b:6 -> pkg.low.a"]
    assert {(e["from"], e["to"], e["where"], e["count"]) for e in out["between_parts"]} == {
        ("high", "low", "top", 1), ("high", "low", "function", 1)}


@pytest.mark.slow
def test_goals_bench_tabulates_what_each_row_played(tmp_path):
    out = _bench("repro/goals.py", "--tiny", "--families", "jepa,rssm", "--out", tmp_path / "g", timeout=900)
    rows = {r["row"]: r for r in out["table"]}
    assert list(rows) == ["jepa", "rssm", "real world", "real world, jepa latent", "random"]
    for name, row in rows.items():  # the episode counts are the ones asked for, the seconds measured
        cell = row["reach-2"]
        assert cell["episodes"] == (4 if name == "random" else 1) and 0.0 <= cell["success"] <= 1.0
        assert cell["plan_seconds"] > 0.0 and (cell["steps"] is None) == (cell["success"] == 0.0)
    assert rows["real world"]["reach-2"]["plan_seconds"] > rows["random"]["reach-2"]["plan_seconds"]
    speed = out["targets"]["jepa_vs_rssm_plan_seconds"]
    assert speed["ratio"] == pytest.approx(rows["jepa"]["reach-2"]["plan_seconds"] / rows["rssm"]["reach-2"]["plan_seconds"])
    assert (tmp_path / "g" / "report.html").is_file() and set(out["runs"]) == {"jepa", "rssm"}
    assert all(c["spearman"] is None for c in out["correlation"].values())  # two families: too few to rank


@pytest.mark.slow
def test_quality_bench_measures_each_row_against_copy_last_and_reuses_what_it_measured(tmp_path):
    out = _bench("repro/quality.py", "--tiny", "--rows", "default", "--out", tmp_path, timeout=900)
    row = out["table"]["explorer"]["default"]["0.1"]
    q = _load_script("repro/quality.py")
    ds = Dataset(tmp_path / "data" / "explorer" / "eval")
    w = q.common.non_overlapping(ds, "test", 2, row["horizon"], row["rollouts"], 0)  # the debug preset's K = 2
    b = w.batch()
    copy = pooled_psnr(b.context_frames[:, -1:].expand_as(b.future_frames), b.future_frames, axis=0)
    assert row["copy_last_curve"] == pytest.approx([round(float(v), 2) for v in copy], abs=0.011)  # the frames it read
    assert row["psnr_by_step"] == {str(s): row["psnr_curve"][s - 1] for s in (1, 4, 8, 16)}
    below = [i + 1 for i, (m, c) in enumerate(zip(row["psnr_curve"], row["copy_last_curve"])) if m <= c]
    assert row["steps_below_copy_last"] == below
    assert row["fd_over_floor"] == pytest.approx(row["fd_step16"] / row["fd_step16_floor"], abs=0.01) and row["fd_step16_floor"] > 0
    phys = out["table"]["physics/uniform"]["default"]["0.1"]
    assert 0 < phys["clips"] <= 8 and 0 < phys["generated_steps"] <= 32 - 2 and phys["velocity_error_floor"] > 0
    assert phys["over_floor"] == pytest.approx(phys["velocity_error"] / phys["velocity_error_floor"], abs=0.01)
    t = out["targets"]
    assert t["above_copy_last_every_step"] == (not below) and t["gap_over_copy_last_by_step"][str(8)] == pytest.approx(
        row["psnr_by_step"]["8"] - row["copy_last_by_step"]["8"], abs=0.011)
    assert t["physics_velocity_within_2.5x_floor"] == (phys["over_floor"] <= 2.5)
    # a second invocation reads the measured mark back and trains only the new row
    saved = tmp_path / "runs" / "explorer" / "default" / "quality-0.1.json"
    stamp = saved.stat().st_mtime_ns
    again = _bench("repro/quality.py", "--tiny", "--rows", "default", "--worlds", "explorer", "--out", tmp_path,
                   "--row", "cn3=model.context_noise_max=0.3", timeout=900)
    assert again["table"]["explorer"]["default"]["0.1"] == row and saved.stat().st_mtime_ns == stamp
    assert again["table"]["explorer"]["cn3"]["0.1"]["sets"] == ["model.context_noise_max=0.3"]
    # more training seeds: seed 0's run is read back, seed 1's trained, and the physics target judged on their median
    seeds = _bench("repro/quality.py", "--tiny", "--rows", "default", "--worlds", "physics/uniform", "--out", tmp_path,
                   "--seeds", "0,1", timeout=900)
    one = seeds["table"]["physics/uniform"]["default-seed1"]["0.1"]
    assert seeds["table"]["physics/uniform"]["default"]["0.1"] == phys and one["sets"] == ["train.seed=1"]
    by_seed = [phys["over_floor"], one["over_floor"]]
    spread = seeds["spread"]["physics/uniform"]["default"]["over_floor"]
    assert spread["by_seed"] == by_seed and spread["median"] == pytest.approx(float(np.median(by_seed)), abs=1e-3)
    assert seeds["targets"]["physics_velocity_within_2.5x_floor"] == (spread["median"] <= 2.5)


def test_gate_probe_trains_the_keys_transport_alone_and_reports_its_stops(tmp_path):
    """Untrained, the keys say 'stay' everywhere (every free move stopped); trained for a few hundred steps on
    explorer they move the view, and the gate stops few free moves (the blocked ones are too few here to judge)."""
    collect("explorer", tmp_path / "data", episodes=20, steps=40, resolution=32, progress=False)
    out = _bench("diagnose/gate_probe.py", tmp_path / "data", "--steps", 200, "--every", 100, "--pool", 2000,
                 "--windows", 400)
    assert [c["step"] for c in out["curve"]] == [0, 100, 200] and out["gate"] is True and out["context"] == 4
    first, last = out["curve"][0]["raw"], out["curve"][-1]["raw"]
    assert first["keys_move"] == 0.0 and first["stops_free"] == 1.0
    assert last["keys_move"] > 0.8 and last["stops_free"] < 0.2, last
    assert 0 < out["flagged_share"] < 0.5
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/gate_probe.py"), str(tmp_path / "data"), "--steps", "1",
                          "--set", "model.transport=0", "--set", "model.transport_global=false",
                          "--set", "model.transport_keys_only=false", "--set", "model.transport_gate=false",
                          "--set", "model.transport_hard_train=false", "--set", "model.transport_score=mixture"],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "trains the keys' transport" in res.stderr, res.stderr[-500:]


def test_transport_moves_reports_the_move_a_global_transport_makes(tmp_path):
    collect("explorer", tmp_path / "data", episodes=20, steps=40, resolution=32, progress=False)
    sets = ["model.transport=4", "model.transport_global=true", "model.transport_keys_only=true", "model.transport_hard_train=true",
            "model.transport_score=expected", "model.transport_patch=8"]
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", sets=sets, steps=2, progress=False)
    out = _bench("diagnose/transport_moves.py", tmp_path / "data", tmp_path / "run", "--every", 1)
    rows = out["runs"][str(tmp_path / "run")]["rows"]
    assert {"all", "action noop", "action right", "bumped", "not bumped"} <= set(rows)
    assert sum(rows[f"action {a}"]["windows"] for a in ("noop", "up", "down", "left", "right")) == rows["all"]["windows"]
    # a blocked move leaves the view where it was: the best whole-pixel shift of those frames is 'stay', and of the
    # other moves mostly not (only the flags lining up with their frames, and the shifts scored right, give both)
    assert rows["bumped"]["windows"] > 0 and rows["bumped"]["best_is_stay"] == 1.0
    assert rows["action up"]["best_is_stay"] < 0.5
    # two steps from 'stay' at the start: the transport has not moved yet
    assert rows["all"]["stay"] == 1.0 and rows["all"]["moved_right"] == rows["all"]["best_is_stay"]
    train(tmp_path / "plain", data=tmp_path / "data", model="diffusion", preset="debug", steps=1, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/transport_moves.py"), str(tmp_path / "data"), str(tmp_path / "plain")],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "no global transport" in res.stderr


def test_events_bench_splits_the_error_at_the_flagged_frames(tmp_path):
    collect("explorer", tmp_path / "data", episodes=20, steps=40, resolution=32, progress=False)
    collect("physics/uniform", tmp_path / "phys", episodes=4, steps=12, resolution=32, progress=False)
    train(tmp_path / "run", data=tmp_path / "data", model="diffusion", preset="debug", steps=2, progress=False)
    out = _bench("diagnose/events.py", tmp_path / "data", tmp_path / "run", "--horizon", 4, "--every", 1)
    assert 0 < out["flagged_share"] <= out["with_event_share"] < 1
    # a blocked move leaves the view where it was: copy-last is far better on the flagged frames than on the others,
    # which holds only if the flags line up with the frames they mark
    copy = out["copy_last"]
    assert copy["step1"]["flagged"] > copy["step1"]["unflagged"] + 5
    assert copy["step1"]["error_share"] < out["flagged_share"]
    for row in (copy, out["models"][str(tmp_path / "run")]):
        assert 0 <= row["step1"]["error_share"] <= 1
        by = row["by_step"]
        assert set(by["all"]) == {"1", "2", "4"}
        assert all(by["all_if_event_windows_exact"][s] >= by["all"][s] - 0.01 for s in by["all"])
    # split by a key instead: a noop leaves the view where it was too
    noop = _bench("diagnose/events.py", tmp_path / "data", tmp_path / "run", "--horizon", 4, "--every", 1, "--action", 0)
    assert noop["flag"] == "action=0" and 0 < noop["flagged_share"] < 0.5
    assert noop["copy_last"]["step1"]["flagged"] > noop["copy_last"]["step1"]["unflagged"] + 5
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench/diagnose/events.py"), str(tmp_path / "phys"), str(tmp_path / "run")],
                         check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert res.returncode != 0 and "records no `bumped` state" in res.stderr
