"""Runs as an attacker or a careless user leaves them (issue 22): crafted metadata, flipped bits, damaged
run files, debris of a kill, and error messages whose fix is then carried out exactly as printed."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import tiny_family
import torch
import uvicorn
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import playworld
from playworld.errors import PlayworldError
from playworld.runs import checkpoints as ckpts

CRAFTED_MODULE = "pw_crafted_world_mod"


def _last(run: Path) -> Path:
    return run / "checkpoints" / "00000006"


def _clean_error(out: str, *needles: str) -> None:
    assert "error:" in out and "fix:" in out and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _resave(weights: Path, tensors: dict, meta: dict) -> None:
    """Rewrite a weights file with `tensors` and `meta`, re-digested (so only what the test changed differs)."""
    if hasattr(ckpts, "tensors_digest"):
        meta = {**meta, ckpts.DIGEST: ckpts.tensors_digest(tensors, meta)}
    save_file(tensors, str(weights), metadata=meta)


def _metadata(weights: Path) -> dict:
    with safe_open(str(weights), "pt") as f:
        return dict(f.metadata())


@pytest.fixture
def no_play_serving(monkeypatch):
    """`playworld play` loads everything, then returns instead of serving."""
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)


@pytest.fixture
def crafted_module(tmp_path, monkeypatch):
    """A module on sys.path that records its import in a file: it must never be imported."""
    folder = tmp_path / "site"
    folder.mkdir()
    marker = tmp_path / "IMPORTED"
    (folder / f"{CRAFTED_MODULE}.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(folder))
    yield marker
    assert CRAFTED_MODULE not in __import__("sys").modules and not marker.exists(), "the crafted module was imported"


# -- 1. crafted metadata never imports code ------------------------------------------------------


@pytest.mark.parametrize("world", [f"gym:{CRAFTED_MODULE}:Env-v0", f"gym:{CRAFTED_MODULE}:ns/Env-v0"])
def test_a_checkpoint_naming_a_module_never_imports_it(cli, trained_run, tiny_data, crafted_module, no_play_serving,
                                                       world):
    for which in ("model", "raw"):
        weights = _last(trained_run) / f"{which}.safetensors"
        meta = _metadata(weights)
        spec = json.loads(meta["spec"])
        _resave(weights, load_file(weights), {**meta, "spec": json.dumps({**spec, "world": world})})
    for argv in (["play", trained_run, "--device", "cpu"], ["rollout", trained_run, "--data", tiny_data],
                 ["eval", trained_run, "--data", tiny_data, "--suite", "fidelity"],
                 ["train", "--out", trained_run, "--resume", "--steps", "8"]):
        code, out = cli(argv)
        assert not crafted_module.exists(), f"{argv[0]} imported the module a checkpoint named"
        assert code != 0, out
        _clean_error(out, CRAFTED_MODULE)
    with pytest.raises(PlayworldError, match="never imports"):
        playworld.load(trained_run)


def test_a_manifest_naming_a_module_never_imports_it(cli, trained_run, tiny_data, tmp_path, crafted_module,
                                                     no_play_serving):
    data = tmp_path / "crafted-data"
    shutil.copytree(tiny_data, data)
    manifest = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps({**manifest, "world": f"gym:{CRAFTED_MODULE}:Env-v0"}))
    for argv in (["data", "info", data], ["play", trained_run, "--context-from", data, "--device", "cpu"],
                 ["rollout", trained_run, "--data", data], ["eval", "oracle", "--data", data],
                 ["train", "--data", data, "--model", tiny_family.NAME, "--preset", "debug", "--out", tmp_path / "r"],
                 ["collect", "--env", "explorer", "--episodes", "1", "--out", data]):
        code, out = cli(argv)
        assert not crafted_module.exists(), f"{argv[0]} imported the module a manifest named"
        assert code != 0, out
        _clean_error(out, "manifest.json")


def test_make_world_builds_registered_gymnasium_ids_only(crafted_module):
    from playworld.worlds.base import make_world

    for name in (f"gym:{CRAFTED_MODULE}:Env-v0", f"gym:{CRAFTED_MODULE}:x/Env-v0", "gym:Nope-v9", "gym:", "\x00"):
        with pytest.raises(PlayworldError):
            make_world(name, resolution=32)
    world = make_world("gym:CartPole-v1", resolution=32)  # registered: fine
    world.close()


# -- 2. checksums and finite weights -------------------------------------------------------------


def _flip_inside_a_tensor(weights: Path, n: int = 64) -> None:
    """Flip the lowest bit of `n` float32s in the middle of the largest tensor: the weights stay finite."""
    raw = bytearray(weights.read_bytes())
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    name = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1] - header[k]["data_offsets"][0])
    start, end = (8 + size + o for o in header[name]["data_offsets"])
    middle = (start + end) // 2 - 2 * n
    middle -= (middle - start) % 4
    for i in range(n):
        raw[middle + 4 * i] ^= 0x01
    weights.write_bytes(bytes(raw))


def test_flipped_bits_are_refused_by_every_command_and_the_printed_fix_works(cli, trained_run, tiny_data,
                                                                              no_play_serving, tmp_path):
    weights = _last(trained_run) / "model.safetensors"
    _flip_inside_a_tensor(weights)
    assert all(torch.isfinite(t).all() for t in load_file(weights).values())
    for argv in (["play", trained_run, "--device", "cpu"], ["rollout", trained_run, "--data", tiny_data],
                 ["eval", trained_run, "--data", tiny_data, "--suite", "fidelity"],
                 ["train", "--out", trained_run, "--resume", "--steps", "8"]):
        code, out = cli(argv)
        assert code != 0, f"{argv[0]} accepted flipped bits: {out}"
        _clean_error(out, str(weights), "corrupt")
    with pytest.raises(PlayworldError, match="checksum"):
        playworld.load(trained_run)
    # the fix, exactly as printed: resume from the step before, or delete the damaged checkpoint
    fix = out.split("fix:", 1)[1]
    assert "--checkpoint 3" in fix
    code, out = cli(["train", "--out", trained_run, "--resume", "--checkpoint", "3", "--steps", "5", "--no-progress"])
    assert code == 0, out
    assert [p.name for p in ckpts.list_checkpoints(trained_run)] == ["00000003", "00000005"]  # the damaged one went
    _flip_inside_a_tensor(_last(trained_run).with_name("00000005") / "raw.safetensors")
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "8"])
    assert code != 0 and "raw.safetensors" in out, out
    rm = re.search(r"\brm -r (\S+)", out.split("fix:", 1)[1]).group(1)
    shutil.rmtree(rm)
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "4", "--no-progress"])
    assert code == 0, out
    assert ckpts.resolve_checkpoint(trained_run).name == "00000004"


def test_a_corrupt_training_state_and_nan_weights_are_refused(cli, trained_run, tiny_data):
    state = _last(trained_run) / "training_state.pt"
    blob = bytearray(state.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    state.write_bytes(bytes(blob))
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "8"])
    assert code != 0, out
    _clean_error(out, "training_state.pt", "corrupt")
    weights = _last(trained_run) / "model.safetensors"  # a NaN written with a matching digest (or none at all)
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone().fill_(float("nan"))
    _resave(weights, tensors, {k: v for k, v in _metadata(weights).items() if k != "tensors_sha256"})
    code, out = cli(["rollout", trained_run, "--data", tiny_data])
    assert code != 0, out
    _clean_error(out, str(weights), "NaN")


# -- 4. damaged run files: clean errors, nothing written -----------------------------------------

DAMAGED_CONFIGS = {
    "empty": b"", "a list": b"- a\n- b\n", "a scalar": b"42\n", "bad YAML": b"model: [unclosed\ndata: x\n",
    "bad UTF-8": b"data: \xff\xfe\n", "no model": b"data: somewhere\n", "model not a mapping": b"data: d\nmodel: 3\n",
}


@pytest.mark.parametrize("damage", list(DAMAGED_CONFIGS))
def test_a_damaged_config_is_a_clean_error_and_nothing_is_written(cli, trained_run, no_play_serving, tmp_path, damage):
    (trained_run / "config.yaml").write_bytes(DAMAGED_CONFIGS[damage])
    before = _snapshot(trained_run)
    for argv in (["train", "--out", trained_run, "--resume", "--steps", "8"],
                 ["rollout", trained_run, "--out", tmp_path / "r.mp4"], ["play", trained_run, "--device", "cpu"]):
        code, out = cli(argv)
        assert code != 0, out
        _clean_error(out, "config.yaml")
        assert _snapshot(trained_run) == before, f"{argv[0]} wrote into the run"


@pytest.mark.parametrize("damage", [b"", b"{", b"[1, 2]", b"\xff\xfe", b'{"resumed": 3}'])
def test_a_damaged_meta_is_a_clean_error_and_its_fix_works(cli, trained_run, damage):
    (trained_run / "meta.json").write_bytes(damage)
    before = _snapshot(trained_run)
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "8"])
    assert code != 0, out
    _clean_error(out, "meta.json")
    assert _snapshot(trained_run) == before
    os.remove(re.search(r"\brm (\S+)", out.split("fix:", 1)[1]).group(1))
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "7", "--no-progress"])
    assert code == 0, out


def test_run_files_are_written_through_the_atomic_helper(trained_run, monkeypatch):
    import playworld.atomic
    from playworld.train import logging as train_logging
    from playworld.train import run as train_run
    from playworld.train.loop import train

    written = []
    real = playworld.atomic.write_atomic

    def spy(path, data):
        written.append(Path(path).name)
        real(path, data)

    monkeypatch.setattr(train_run, "write_atomic", spy)
    monkeypatch.setattr(train_logging, "write_atomic", spy)
    train(trained_run, resume=True, steps=7, progress=False)
    assert {"config.yaml", "meta.json", "metrics.jsonl"} <= set(written)


def test_an_interrupted_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    from playworld.atomic import write_atomic

    target = tmp_path / "config.yaml"
    target.write_text("old\n")

    def killed(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


# -- 5. debris of a kill during checkpoint rotation ----------------------------------------------


def test_debris_of_a_killed_rotation_is_ignored_then_cleaned(cli, trained_run):
    root = trained_run / "checkpoints"
    (root / "00000003" / "raw.safetensors").unlink()  # rotation killed half-way through deleting it
    (root / ".tmp-00000009").mkdir()  # a save killed before its rename
    (root / ".old-00000002").mkdir()
    assert [p.name for p in ckpts.list_checkpoints(trained_run)] == ["00000006"]
    os.unlink(root / "last")  # no pointer: the newest complete folder, not the broken one
    assert ckpts.resolve_checkpoint(trained_run).name == "00000006"
    code, out = cli(["train", "--out", trained_run, "--resume", "--steps", "7", "--no-progress"])
    assert code == 0, out
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []


# -- 6. messages whose fix works as printed -------------------------------------------------------


def test_divergence_before_any_checkpoint_says_to_run_again_and_that_works(cli, tiny_data, tmp_path):
    run = tmp_path / "nan"
    argv = ["train", "--data", tiny_data, "--model", tiny_family.NAME, "--preset", "debug", "--out", run, "--no-progress"]
    code, out = cli(argv + ["--set", "model.nan_at_step=0"])
    assert code != 0 and "no checkpoint" in out
    fix = out.split("fix:", 1)[1]
    assert "--resume" not in fix.replace("without --resume", "") and "same" in fix
    code, out = cli(argv)  # the same command again (with the remedy: here, no NaN)
    assert code == 0, out


def test_the_dataset_path_is_stored_resolved_so_resume_works_from_anywhere(cli, tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny_data.parent)
    run = tmp_path / "rel"
    code, out = cli(["train", "--data", tiny_data.name, "--model", tiny_family.NAME, "--preset", "debug", "--out", run,
                     "--steps", "2", "--no-progress"])
    assert code == 0, out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert Path(config["data"]).is_absolute() and Path(config["data"]) == tiny_data.resolve()
    assert Path(json.loads((run / "meta.json").read_text())["data"]["path"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    code, out = cli(["train", "--out", run, "--resume", "--steps", "3", "--no-progress"])
    assert code == 0, out


@pytest.mark.parametrize("bad", [["--minutes", "0"], ["--set", "train.lr=nan"], ["--set", "train.lr=inf"]])
def test_no_time_budget_and_non_finite_numbers_are_clean_errors(cli, tiny_data, tmp_path, bad):
    run = tmp_path / "r"
    code, out = cli(["train", "--data", tiny_data, "--model", tiny_family.NAME, "--preset", "debug", "--out", run, *bad])
    assert code != 0, out
    _clean_error(out)
    assert not run.exists()  # refused before anything was written
