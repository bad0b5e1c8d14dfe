"""The data commands end to end, through the console-script entry point (`playworld.cli.main`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from playworld.cli import main
from playworld.data.store import SCHEMA_VERSION, Dataset
from playworld.media import write_video

PLAYWORLD = [str(Path(sys.executable).parent / "playworld")]


def _user_error(result, *words: str) -> None:
    code, out, err = result
    assert code != 0, (out, err)
    assert "Traceback" not in out + err
    assert "error:" in err and "fix:" in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture(scope="module")
def explorer_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "explorer"
    code = main_exit("collect", "--env", "explorer", "--episodes", 4, "--steps", 30, "--out", path, "--policy", "explore")
    assert code == 0
    return path


def main_exit(*args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code or 0
    return 0


def test_help_teaches_the_flow(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for word in ("quickstart", "collect", "data"):
        assert word in out
    code, out, _ = cli("data", "--help")
    for word in ("info", "verify", "import-video", "export"):
        assert word in out
    for cmd in (["collect"], ["data", "info"], ["data", "verify"], ["data", "import-video"], ["data", "export"], ["quickstart"]):
        code, out, _ = cli(*cmd, "--help")
        assert code == 0 and "Usage" in out


def test_collect_verify_info_export(cli, explorer_data, tmp_path):
    ds = Dataset(explorer_data)
    assert ds.world == "explorer" and len(ds) == 4 and ds.episode_length(0) == 31
    e = ds.load_episode(0)
    assert e.actions[0] == 0 and e.truncated[-1] and set(e.state)  # no-op first; cut by --steps; state kept
    code, out, _ = cli("data", "verify", explorer_data)
    assert code == 0 and "verifies" in out
    code, out, _ = cli("data", "info", explorer_data, "--sheet", tmp_path / "sheet.png")
    info = json.loads(out)
    assert info["episodes"] == 4 and info["frames"] == 124 and sum(info["actions"]["histogram"].values()) == 120
    assert (tmp_path / "sheet.png").stat().st_size > 0
    code, out, _ = cli("data", "export", explorer_data, "--out", tmp_path / "videos")
    assert code == 0 and len(list((tmp_path / "videos").glob("*.mp4"))) == 4


def test_collect_is_deterministic_and_appends(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("collect", "--env", "physics/uniform", "--episodes", 3, "--out", tmp_path / name, "--seed", 5)[0] == 0
    a, b = Dataset(tmp_path / "a"), Dataset(tmp_path / "b")
    assert a.episode_length(0) == 32  # the physics clip: 31 steps
    frames = [np.asarray(a.load_episode(i).frames) for i in range(3)]
    assert all(np.array_equal(frames[i], b.load_episode(i).frames) for i in range(3))
    assert not np.array_equal(frames[0], frames[1])  # episodes differ within a collection
    assert cli("collect", "--env", "physics/uniform", "--episodes", 2, "--out", tmp_path / "a", "--seed", 5)[0] == 0
    a = Dataset(tmp_path / "a")
    assert len(a) == 5 and a.verify() == []
    assert not any(np.array_equal(a.load_episode(3).frames, f) for f in frames)  # appending adds new episodes


def test_collect_ood(cli, tmp_path):
    assert cli("collect", "--env", "physics/collision", "--episodes", 2, "--out", tmp_path / "ood", "--ood")[0] == 0
    ds = Dataset(tmp_path / "ood")
    assert ds.manifest["world_options"] == {"ood": True} and ds.verify() == []
    # appending without --ood would mix distributions
    _user_error(cli("collect", "--env", "physics/collision", "--episodes", 1, "--out", tmp_path / "ood"), "ood")
    _user_error(cli("collect", "--env", "explorer", "--episodes", 1, "--out", tmp_path / "x", "--ood"), "--ood")
    assert not (tmp_path / "x").exists()


def test_collect_world_options(cli, tmp_path):
    args = ("collect", "--env", "explorer", "--episodes", 1, "--steps", 5, "--resolution", 32, "--out", tmp_path / "small")
    assert cli(*args, "--world-option", "map_size=64", "--world-option", "n_coins=64")[0] == 0
    ds = Dataset(tmp_path / "small")
    assert ds.manifest["world_options"] == {"map_size": 64, "n_coins": 64}  # values read as JSON: numbers
    assert np.asarray(ds.load_episode(0).state["coins"]).shape == (6, 64, 2)
    _user_error(cli(*args, "--world-option", "map_size"), "KEY=VALUE", "map_size")
    _user_error(cli(*args[:-1], tmp_path / "bad", "--world-option", "colour=red"), "colour", "explorer takes")
    assert not (tmp_path / "bad").exists()


def test_bad_inputs(cli, explorer_data, tmp_path):
    _user_error(cli("collect", "--env", "nowhere", "--episodes", 1, "--out", tmp_path / "x"), "nowhere")
    _user_error(cli("collect", "--env", "gym:NoSuchEnv-v0", "--episodes", 1, "--out", tmp_path / "x"), "NoSuchEnv")
    _user_error(cli("collect", "--env", "explorer", "--episodes", 1, "--out", tmp_path / "x", "--resolution", 16), "16")
    _user_error(cli("collect", "--env", "explorer", "--episodes", 1, "--out", tmp_path / "x", "--policy", "nope"), "nope")
    _user_error(cli("collect", "--env", "physics/uniform", "--episodes", 1, "--out", explorer_data), "cannot append")
    assert Dataset(explorer_data).verify() == []  # nothing stored was touched
    for cmd in (["data", "verify"], ["data", "info"], ["data", "export"]):
        extra = ["--out", tmp_path / "v"] if cmd[1] == "export" else []
        _user_error(cli(*cmd, tmp_path / "missing", *extra), "missing", "does not exist")
    _user_error(cli("data", "import-video", tmp_path / "missing", "--out", tmp_path / "imp"), "missing")


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_verify_names_bad_file(cli, explorer_data, tmp_path, damage):
    path = _copy(explorer_data, tmp_path / "copy")
    target = path / "episodes" / "000002" / "frames.chunks"  # the default, compressed layout
    data = target.read_bytes()
    if damage == "flip":
        i = len(data) // 2  # inside the compressed frames (the whole file is a few KB)
        target.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 3])
    else:
        target.unlink()
    _user_error(cli("data", "verify", path), "episodes/000002/frames.chunks",
                {"flip": "checksum", "truncate": "bytes", "delete": "missing"}[damage])
    if damage != "flip":  # reading the damaged episode fails cleanly too
        _user_error(cli("data", "export", path, "--out", tmp_path / "v"), "000002")


def test_newer_schema_rejected(cli, explorer_data, tmp_path):
    path = _copy(explorer_data, tmp_path / "copy")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    for args in (["data", "info", path], ["data", "verify", path],
                 ["collect", "--env", "explorer", "--episodes", 1, "--steps", 30, "--out", path]):
        _user_error(cli(*args), f"schema version {SCHEMA_VERSION + 1}", "upgrade playworld")
    assert json.loads((path / "manifest.json").read_text()) == manifest


def test_import_video(cli, tmp_path):
    src = tmp_path / "clips"
    clip = np.zeros((9, 40, 60, 3), np.uint8)
    for t in range(9):
        clip[t, 10:30, 20 + t : 40 + t] = 200  # moving: a GIF writer merges repeated frames
    write_video(src / "a.mp4", clip, fps=12)
    write_video(src / "b.gif", clip[:5], fps=10)
    code, out, err = cli("data", "import-video", src, "--out", tmp_path / "vid", "--resolution", 32)
    assert code == 0, err
    ds = Dataset(tmp_path / "vid")
    assert ds.world == "video:clips" and ds.fps == 12 and [ds.episode_length(e) for e in ds.episode_ids()] == [9, 5]
    (src / "c.webm").write_bytes(b"\x1aE\xdf\xa3 this is not a webm")
    _user_error(cli("data", "import-video", src, "--out", tmp_path / "vid2"), "c.webm")
    assert not (tmp_path / "vid2").exists()
    _user_error(cli("data", "import-video", src, "--out", tmp_path / "vid3", "--resolution", 999), "999")


def test_console_script_error_has_no_traceback(tmp_path):
    r = subprocess.run([*PLAYWORLD, "data", "verify", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr and "does not exist" in r.stderr


def _wait_until_opened(path: Path, runs: int, timeout: float = 60) -> None:
    """Wait until the manifest records `runs` collections (each appends to its history on opening)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if len(json.loads((path / "manifest.json").read_text()).get("history", [])) >= runs:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.01)
    raise TimeoutError(f"collect did not open {path}")


@pytest.mark.slow
def test_killed_collect_leaves_a_dataset_that_verifies(tmp_path):
    """SIGKILL `collect` at random moments, appending to one dataset each time: it always verifies."""
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    cmd = [*PLAYWORLD, "collect", "--env", "explorer", "--episodes", "1000", "--steps", "40", "--out", str(out)]
    counts = []
    for _ in range(6):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_until_opened(out, runs=len(counts) + 1)  # this run holds the dataset and is writing
        time.sleep(float(rng.uniform(0.0, 0.6)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        ds = Dataset(out)
        assert ds.verify() == []
        counts.append(len(ds))
        assert all(ds.episode_length(e) == 41 for e in ds.episode_ids())
    assert counts == sorted(counts) and counts[-1] > 0  # runs appended; no run lost stored episodes
    r = subprocess.run([*PLAYWORLD, "collect", "--env", "explorer", "--episodes", "2", "--steps", "40", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(Dataset(out)) == counts[-1] + 2 and Dataset(out).verify() == []
