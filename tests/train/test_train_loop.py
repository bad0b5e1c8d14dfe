"""The training loop on the tiny test family: run layout, logs, load round-trip, budgets, NaN stop."""

from __future__ import annotations

import json
import os
import time

import pytest
import tiny_family
import torch
import yaml
from safetensors.torch import load_file

import playworld
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import get_family
from playworld.runs.checkpoints import list_checkpoints, resolve_checkpoint, weights_metadata
from playworld.runs.load import load_world_model
from playworld.spaces import ActionSpace
from playworld.train.checkpoint import save_checkpoint
from playworld.train.loop import TrainingDiverged, train


def test_debug_run_writes_the_documented_layout(trained_run):
    # config.yaml: resolved, every TrainConfig field, the family's section
    config = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert config["train"]["steps"] == 6 and config["train"]["batch_size"] == 4
    assert config["model"] == {"tiny-test": {"width": 8, "nan_at_step": -1, "noise": 0.01}} and config["context"] == 2
    meta = json.loads((trained_run / "meta.json").read_text())
    assert meta["family"] == "tiny-test" and meta["versions"]["torch"] == torch.__version__
    assert len(meta["data"]["fingerprint"]) == 16 and len(meta["data"]["manifest_sha256"]) == 64
    assert meta["spec"]["resolution"] == 32 and meta["spec"]["context"] == 2

    # checkpoints/<step>/ every ckpt_every (3) steps and at the end, `last` -> the newest
    assert [p.name for p in list_checkpoints(trained_run)] == ["00000003", "00000006"]
    assert resolve_checkpoint(trained_run).name == "00000006"
    for ckpt in list_checkpoints(trained_run):
        assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "raw.safetensors", "training_state.pt"}
    state = torch.load(resolve_checkpoint(trained_run) / "training_state.pt", weights_only=True)
    assert state["step"] == 6 and state["loader"]["next_batch"] == 6
    assert {"torch", "numpy", "python"} <= set(state["rng"])
    ema, raw = (load_file(resolve_checkpoint(trained_run) / f"{w}.safetensors") for w in ("model", "raw"))
    assert ema.keys() == raw.keys() and any(not torch.equal(ema[k], raw[k]) for k in ema)  # EMA differs

    # metrics.jsonl: a train line per step (log_every 1), val at 3 and 6, one end line
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["samples_per_s"] > 0 and r["lr"] > 0 and "grad_norm" in r and "mse" in r for r in train_rows)
    assert train_rows[0]["lr"] == pytest.approx(0.5e-3) and train_rows[2]["lr"] == pytest.approx(1e-3)  # warm-up 2
    val = [r for r in rows if r["kind"] == "val"]
    assert [r["step"] for r in val] == [3, 6] and all(5 < r["psnr"] < 100 for r in val)
    assert rows[-1]["kind"] == "end" and rows[-1]["reason"] == "steps"
    # media: a rollout video at the end (media_every 0)
    assert (trained_run / "media" / "00000006" / "rollout.mp4").stat().st_size > 1000


def test_load_world_model_gives_identical_outputs(tmp_path, tiny_data):
    family = get_family(tiny_family.NAME)
    config = family.make_config({"width": 4})
    spec = WorldSpec(resolution=32, action_space=ActionSpace.discrete(5), context=2)
    torch.manual_seed(1)
    net = family.build(config, spec)
    raw = family.build(config, spec)
    save_checkpoint(tmp_path, 7, weights_metadata(family, config, spec, 7), net, raw, {"step": 7})

    frames = torch.randint(0, 256, (3, 2, 3, 32, 32), dtype=torch.uint8)
    actions = torch.randint(0, 5, (3, 2))
    act = torch.tensor([1, 2, 4])
    before = family.world_model(net, config, spec)
    after = playworld.load(tmp_path)
    assert after.spec == spec
    _, a = before.step(before.reset(frames, actions, seed=0), act)
    _, b = after.step(after.reset(frames, actions, seed=0), act)
    assert torch.equal(a, b)
    assert torch.equal(load_world_model(tmp_path, checkpoint=7).step(after.reset(frames, actions), act)[1], b)


def test_step_budget_and_time_budget(tmp_path, tiny_data):
    r = train(tmp_path / "a", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=2, progress=False)
    assert (r.step, r.reason) == (2, "steps") and r.checkpoint.name == "00000002"
    train(tmp_path / "k", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=5, progress=False,
          sets=["train.ckpt_every=1", "train.keep_checkpoints=2"])
    assert [p.name for p in list_checkpoints(tmp_path / "k")] == ["00000004", "00000005"]  # only the newest kept
    # a tiny time budget stops long before 10**6 steps and still saves a final checkpoint
    r = train(tmp_path / "b", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=10**6, minutes=0.02,
              sets=["train.ckpt_every=100000"], progress=False)
    assert r.reason == "time" and 0 < r.step < 10**6
    assert resolve_checkpoint(tmp_path / "b").name == f"{r.step:08d}"


def test_steps_alone_replace_the_time_budget_of_the_preset(tmp_path, tiny_data):
    from playworld.train.run import prepare_run

    budget = ["train.minutes=0.001"]  # stands for a preset's time budget (small: 10 minutes)
    plan = prepare_run(tmp_path / "a", tiny_data, tiny_family.NAME, "small", None, 7, None, False)
    assert (plan.train_config.steps, plan.train_config.minutes) == (7, 0.0)
    plan = prepare_run(tmp_path / "a", tiny_data, tiny_family.NAME, "small", None, None, None, False)
    assert plan.train_config.minutes > 0  # no step budget asked for: the preset's minutes stay
    plan = prepare_run(tmp_path / "a", tiny_data, tiny_family.NAME, "debug", budget, 7, None, False)
    assert plan.train_config.minutes == 0.001  # a time budget set explicitly is kept beside the steps
    plan = prepare_run(tmp_path / "a", tiny_data, tiny_family.NAME, "small", None, 7, 2.0, False)
    assert plan.train_config.minutes == 2.0


def test_cpu_budget_clock_counts_process_time(tmp_path, tiny_data, monkeypatch):
    import itertools
    import json

    from playworld.train import loop

    ticks = itertools.count()  # a process clock that advances 1 s per reading, whatever the wall clock does
    monkeypatch.setattr(loop.time, "process_time", lambda: 1.0 * next(ticks))
    wall = time.monotonic()
    r = train(tmp_path / "c", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=10**6, minutes=1.0,
              sets=["train.budget_clock=cpu", "train.ckpt_every=100000", "train.val_every=0"], progress=False)
    assert r.reason == "time" and r.step >= 2
    assert time.monotonic() - wall < 30  # a minute of (fake) CPU time, far less of wall time
    end = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").read_text().splitlines() if '"end"' in x][-1]
    assert end["clock"] == "cpu" and 0.5 <= end["minutes"] <= 1.1  # the budget, ending included, on the CPU clock


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data, cli):
    run = tmp_path / "nan"
    code, out = cli(["train", "--data", tiny_data, "--model", tiny_family.NAME, "--preset", "debug", "--out", run,
                     "--set", "model.nan_at_step=4", "--no-progress"])
    assert code != 0 and "NaN" in out and "00000003" in out and "Traceback" not in out
    assert [p.name for p in list_checkpoints(run)] == ["00000003"]
    assert resolve_checkpoint(run).name == "00000003"
    weights = load_file(run / "checkpoints" / "00000003" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
    with pytest.raises(TrainingDiverged):
        train(tmp_path / "nan2", data=tiny_data, model=tiny_family.NAME, preset="debug",
              sets=["model.nan_at_step=0"], progress=False)


def test_a_finished_run_refuses_a_fresh_start_and_resumes_to_more_steps(trained_run, tiny_data):
    with pytest.raises(PlayworldError, match="--resume"):
        train(trained_run, data=tiny_data, model=tiny_family.NAME, preset="debug", progress=False)
    r = train(trained_run, resume=True, steps=8, progress=False)  # data comes from config.yaml
    assert (r.step, r.reason) == (8, "steps")
    assert yaml.safe_load((trained_run / "config.yaml").read_text())["train"]["steps"] == 8
    assert len(json.loads((trained_run / "meta.json").read_text())["resumed"]) == 1


def test_last_pointer_works_without_symlinks(trained_run):
    last = trained_run / "checkpoints" / "last"
    os.unlink(last)
    last.write_text("00000003\n")
    assert resolve_checkpoint(trained_run).name == "00000003"
    os.unlink(last)  # no pointer at all: the newest folder
    assert resolve_checkpoint(trained_run).name == "00000006"
