"""`playworld play`: user errors are one clean line; a non-loopback --host is served with a warning."""

from __future__ import annotations

import numpy as np
import pytest
import uvicorn

from playworld.cli import main
from playworld.errors import PlayworldError
from playworld.play.contexts import DatasetContexts, EnvContexts
from playworld.play.loading import load_target


def run_cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


def test_missing_run_is_a_clean_error(capsys, tmp_path):
    code, err = run_cli(["play", str(tmp_path / "nope")], capsys)
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_unloadable_checkpoint_is_a_playworld_error(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "00000001"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"not a checkpoint")
    (tmp_path / "run" / "config.yaml").write_text("data: nowhere\n")
    with pytest.raises(PlayworldError):
        load_target(str(tmp_path / "run"))
    with pytest.raises(PlayworldError, match="names no world"):
        load_target("oracle:")
    with pytest.raises(PlayworldError, match="unknown world"):
        load_target("copy-last:atlantis")


def test_other_hosts_are_warned_about(monkeypatch, capsys):
    served = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: served.update(host=self.config.host, port=self.config.port))
    main_args = ["play", "copy-last:explorer", "--host", "0.0.0.0", "--port", "9123", "--device", "cpu"]
    try:
        main(main_args)
    except SystemExit as e:
        assert e.code in (0, None)
    err = capsys.readouterr().err
    assert served == {"host": "0.0.0.0", "port": 9123} and "warning" in err and "no authentication" in err
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: served.update(host=self.config.host))
    try:
        main(["play", "copy-last:explorer", "--device", "cpu"])
    except SystemExit as e:
        assert e.code in (0, None)
    assert served["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err


def test_contexts_from_the_env_and_from_a_dataset(tmp_path):
    from playworld.data.collect import collect

    target = load_target("oracle:explorer", context_from="env")
    ctx = target.contexts.sample(5)
    assert isinstance(target.contexts, EnvContexts) and ctx.frames.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(ctx.real.restore(ctx.world_state), ctx.frames[-1])

    collect("explorer", tmp_path / "data", 3, seed=0, steps=10, progress=False)
    target = load_target("copy-last:explorer", context_from=str(tmp_path / "data"))
    assert isinstance(target.contexts, DatasetContexts) and target.contexts.can_restore
    ctx = target.contexts.sample(1)
    assert ctx.source["from"] == "data" and ctx.world_state is not None
    np.testing.assert_array_equal(ctx.real.restore(ctx.world_state), ctx.frames[-1])  # the real world, restored
    with pytest.raises(PlayworldError, match="does not match"):
        load_target("copy-last:explorer", context_from=str(tmp_path / "data"), resolution=32)
    with pytest.raises(PlayworldError, match="does not exist"):
        load_target("copy-last:explorer", context_from=str(tmp_path / "nodata"))
