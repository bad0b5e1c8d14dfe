"""`playworld quickstart` end to end with the debug preset, and the help of every command here."""

from __future__ import annotations

import pytest

from playworld.runs.checkpoints import resolve_checkpoint


@pytest.mark.slow
def test_quickstart_collects_trains_writes_videos_and_says_what_is_next(tmp_path, cli):
    data, run = tmp_path / "data", tmp_path / "run"
    argv = ["quickstart", "--data", data, "--out", run, "--preset", "debug", "--episodes", "4", "--steps", "40",
            "--minutes", "3", "--device", "cpu"]
    code, out = cli(argv)
    assert code == 0, out
    assert (data / "manifest.json").is_file() and resolve_checkpoint(run).name == "00000006"
    assert (run / "rollouts" / "rollout.mp4").stat().st_size > 0 and (run / "rollouts" / "rollout.gif").stat().st_size > 0
    assert f"playworld eval {run} --data {data}" in out and f"playworld play {run}" in out
    # a second time reuses the dataset and the trained run (and regenerates videos that are gone)
    import shutil

    shutil.rmtree(run / "media")
    shutil.rmtree(run / "rollouts")
    code, out = cli(argv)
    assert code == 0 and "already there" in out and "already trained" in out
    from playworld.media import read_video

    assert len(read_video(run / "rollouts" / "rollout.gif")[0]) == 32


@pytest.mark.parametrize("command", [["train"], ["rollout"], ["quickstart"], []])
def test_help(command, cli):
    code, out = cli([*command, "--help"])
    assert code == 0 and "Usage" in out
    for word in {"train": ["--resume", "--minutes", "--set"], "rollout": ["--horizon", "--episodes", "--split"],
                 "quickstart": ["--minutes"]}.get(command[0] if command else "", ["train", "rollout", "quickstart"]):
        assert word in out
