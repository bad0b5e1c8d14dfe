"""Bad input through the CLI: a clear one-line error with the fix, a non-zero exit, no traceback."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file, save_file

import tiny_family


def _expect_error(cli, argv, *needles):
    code, out = cli(argv)
    assert code != 0, out
    assert "error:" in out and "fix:" in out and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out
    return out


def _last(run):
    return run / "checkpoints" / "00000006"


def test_missing_run_dir(cli, tmp_path, tiny_data):
    _expect_error(cli, ["rollout", tmp_path / "nope", "--data", tiny_data], "does not exist")
    _expect_error(cli, ["train", "--out", tmp_path / "nope", "--resume"], "does not exist")


def test_missing_dataset(cli, tmp_path):
    _expect_error(cli, ["train", "--data", tmp_path / "nodata", "--model", tiny_family.NAME, "--preset", "debug",
                        "--out", tmp_path / "r"], "does not exist")


@pytest.mark.parametrize("which", ["model", "raw"])
def test_truncated_weights(cli, trained_run, tiny_data, which):
    path = _last(trained_run) / f"{which}.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    argv = ["rollout", trained_run, "--data", tiny_data] if which == "model" else ["train", "--out", trained_run, "--resume", "--steps", "8"]
    _expect_error(cli, argv, str(path), "corrupt or truncated", "--checkpoint")


def test_corrupt_training_state(cli, trained_run):
    (_last(trained_run) / "training_state.pt").write_bytes(b"\x00garbage" * 100)
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--steps", "8"], "training_state.pt", "corrupt")


def test_newer_checkpoint_schema(cli, trained_run, tiny_data):
    path = _last(trained_run) / "model.safetensors"
    meta = {"playworld_schema": "99", "family": tiny_family.NAME}
    save_file(load_file(path), path, metadata=meta)
    _expect_error(cli, ["rollout", trained_run, "--data", tiny_data], "schema 99", "upgrade playworld")


def test_checkpoint_of_another_family(cli, trained_run, tiny_data):
    path = _last(trained_run) / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(load_file(path), path, metadata={**meta, "family": "diffusion"})
    # resuming: config.yaml says tiny-test, the checkpoint says diffusion
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--steps", "8"], "model family diffusion")
    # loading: the tiny family's configuration does not fit the diffusion family
    _expect_error(cli, ["rollout", trained_run, "--data", tiny_data], "model family diffusion", "does not fit")


def test_resume_with_another_model_or_preset(cli, trained_run):
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--model", "diffusion"], "trains model family tiny-test")
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--preset", "small"], "--preset")
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--set", "model.width=16"], "cannot change")


def test_dataset_of_another_resolution_or_action_space(cli, trained_run, other_resolution_data, other_actions_data):
    _expect_error(cli, ["rollout", trained_run, "--data", other_resolution_data], "40x40", "32x32", "--resolution 32")
    _expect_error(cli, ["rollout", trained_run, "--data", other_actions_data], "none", "discrete(5)")
    _expect_error(cli, ["train", "--out", trained_run, "--resume", "--data", other_resolution_data, "--steps", "8"], "40x40")


def test_bad_overrides_and_options(cli, tmp_path, tiny_data):
    base = ["train", "--data", tiny_data, "--model", tiny_family.NAME, "--out", tmp_path / "r"]
    _expect_error(cli, base + ["--set", "train.lr=fast"], "train.lr", "float")
    _expect_error(cli, base + ["--set", "train.nope=1"], "unknown train option", "batch_size")
    _expect_error(cli, base + ["--set", "model.nope=1"], "unknown model.tiny-test option", "width")
    _expect_error(cli, base + ["--set", "lr"], "--set")
    _expect_error(cli, base + ["--preset", "huge"], "unknown preset", "debug")
    _expect_error(cli, base + ["--set", "train.precision=fp8"], "fp32, bf16")
    _expect_error(cli, ["train", "--data", tiny_data, "--model", "nonexistent", "--out", tmp_path / "r"], "unknown model family")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_weights_of_another_network_are_a_clear_error(tmp_path):
    import torch
    from safetensors.torch import save_model

    from playworld.errors import PlayworldError
    from playworld.runs.checkpoints import load_weights

    save_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), str(tmp_path / "w.safetensors"))
    other = torch.nn.Module()
    other.head = torch.nn.Linear(2, 2)  # same shapes, other names: an older or newer layout of a family
    with pytest.raises(PlayworldError, match=r"do not fit the network \(missing: \['head.bias', 'head.weight'\], "
                                             r"unexpected: \['0.bias', '0.weight'\]\)") as err:
        load_weights(other, tmp_path / "w.safetensors")
    assert "retrain" in err.value.fix
