"""LeRobotDataset v3.0 import and export, through the CLI, against a fixture LeRobot's own writer made.

tests/fixtures/lerobot/tiny was written by lerobot 0.4.4's `LeRobotDataset.create/add_frame/save_episode`
(tests/fixtures/lerobot/make_fixture.py): 3 episodes of 12, 9 and 15 frames at 10 fps, cameras `top`
(48x64, a red square at the state's (x, y)) and `wrist` (32x32), a 2-d action, next.reward, next.done.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from playworld.data.collect import collect
from playworld.data.lerobot import import_lerobot
from playworld.data.store import Dataset
from playworld.metrics import pooled_psnr

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot" / "tiny"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def _user_error(result, *words: str) -> str:
    """A user error: exit 2, one line of error and one of fix on stderr, naming `words`, no traceback."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    fixes = [i for i, line in enumerate(lines) if line.startswith("fix:")]
    assert len(errors) == 1 and fixes == [errors[0] + 1], err  # (other lines: progress bars)
    for w in words:
        assert w in err, (w, err)
    return err


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "tiny"
    return import_lerobot(FIXTURE, out, camera="top", progress=False).path


def _rows() -> dict:
    return pq.read_table(FIXTURE / DATA).to_pydict()


def test_import_keeps_episodes_fps_actions_rewards_and_state(imported, cli, tmp_path):
    code, out, err = cli("data", "import-lerobot", FIXTURE, "--out", tmp_path / "cli", "--camera", "observation.images.top")
    assert code == 0 and "3 episodes, 36 frames of observation.images.top at 10 fps" in out, err
    ds = Dataset(imported)
    assert ds.world == "lerobot:tiny" and ds.fps == 10 and ds.resolution == 64 and ds.layout == "compressed"
    assert [ds.episode_length(e) for e in ds.episode_ids()] == [12, 9, 15] and ds.verify() == []
    assert ds.action_space.kind == "continuous" and ds.action_space.dim == 2 and ds.state_keys == ["observation_state"]
    rows, start = _rows(), 0
    for ep in ds.episode_ids():
        e, n = ds.load_episode(ep), ds.episode_length(ep)
        action = np.array(rows["action"][start : start + n], np.float32)
        np.testing.assert_array_equal(e.actions[0], 0)  # the no-op leads into the first frame
        np.testing.assert_array_equal(e.actions[1:], action[:-1])  # LeRobot's action[t] leads into frame t+1
        np.testing.assert_array_equal(e.rewards[1:], np.array(rows["next.reward"][start : start + n - 1], np.float32))
        np.testing.assert_array_equal(e.terminated[1:], rows["next.done"][start : start + n - 1])
        state = np.array(rows["observation.state"][start : start + n], np.float32)
        np.testing.assert_array_equal(e.state["observation_state"], state)
        info = ds.entry(ep)["info"]
        assert info["lerobot_episode"] == ep and info["tasks"] == ["move the red square"]
        assert info["last_action"] == pytest.approx(action[-1].tolist()) and info["last_done"] is True
        start += n


def test_imported_frames_follow_the_rows(imported):
    """The red square in each imported frame sits where that row's state says: frames and rows are aligned in time."""
    ds = Dataset(imported)
    for ep in ds.episode_ids():
        e = ds.load_episode(ep)
        frames, xy = np.asarray(e.frames).astype(int), e.state["observation_state"][:, :2]
        red = (frames[..., 0] > 150) & (frames[..., 1] < 110) & (frames[..., 2] < 110)  # (T, 64, 64)
        for t in range(len(frames)):
            ys, xs = np.nonzero(red[t])
            # the 48x64 frame is centre-cropped to 48x48 (columns 8..55) and resized to 64x64: x' = (x - 8) * 4/3
            assert abs(xs.mean() - (xy[t, 0] - 8.5) * 4 / 3) < 2 and abs(ys.mean() - (xy[t, 1] - 0.5) * 4 / 3) < 2, (ep, t)


def test_import_trains_a_debug_diffusion_model(imported, cli, tmp_path):
    code, out, err = cli("train", "--data", imported, "--model", "diffusion", "--preset", "debug", "--steps", 5,
                         "--out", tmp_path / "run")
    assert code == 0, err
    assert (tmp_path / "run" / "checkpoints" / "last").exists()
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["spec"]["action_space"]["kind"] == "continuous" and meta["data"]["world"] == "lerobot:tiny"


def _schema(path: Path) -> dict[str, str]:
    return {f.name: str(f.type) for f in pq.read_schema(path)}


def test_export_writes_the_layout_lerobot_writes(imported, cli, tmp_path):
    code, out, err = cli("data", "export", imported, "--format", "lerobot", "--out", tmp_path / "lr")
    assert code == 0, err
    assert "PSNR" in out and "max error" in out
    root = tmp_path / "lr"
    mine, theirs = json.loads((root / "meta/info.json").read_text()), json.loads((FIXTURE / "meta/info.json").read_text())
    assert set(mine) == set(theirs) and mine["codebase_version"] == "v3.0" and mine["fps"] == 10
    assert (mine["data_path"], mine["video_path"]) == (theirs["data_path"], theirs["video_path"])
    assert (mine["total_episodes"], mine["total_frames"]) == (3, 36)
    camera = "observation.images.top"  # the camera the import came from
    for name in ("action", "next.reward", "next.done", "observation.state", "timestamp", "frame_index", "episode_index", "index",
                 "task_index"):
        for key in ("dtype", "shape"):
            assert mine["features"][name][key] == theirs["features"][name][key], (name, key)
    assert mine["features"][camera]["dtype"] == "video" and mine["features"][camera]["shape"] == [64, 64, 3]
    assert set(mine["features"][camera]["info"]) == set(theirs["features"][camera]["info"])
    # the same columns with the same Arrow types as LeRobot's own files
    assert _schema(root / DATA) == _schema(FIXTURE / DATA)
    theirs_eps = {k: v for k, v in _schema(FIXTURE / EPISODES).items() if not k.startswith("stats/") and "wrist" not in k}
    assert _schema(root / EPISODES) == theirs_eps
    assert pq.read_schema(root / "meta/tasks.parquet").metadata[b"pandas"] is not None  # LeRobot reads it with pandas
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "__index_level_0__": "move the red square"}]
    assert (root / "videos" / camera / "chunk-000" / "file-000.mp4").is_file()
    eps = pq.read_table(root / EPISODES).to_pydict()
    assert eps["dataset_from_index"] == [0, 12, 21] and eps["dataset_to_index"] == [12, 21, 36]
    assert eps[f"videos/{camera}/from_timestamp"] == pytest.approx([0.0, 1.2, 2.1])
    rows = pq.read_table(root / DATA).to_pydict()
    original = _rows()
    for name in ("action", "next.reward", "next.done", "observation.state", "frame_index", "episode_index", "index", "timestamp"):
        assert rows[name] == original[name], name  # exact: the last action, reward and done came back from the info


def test_export_then_import_round_trips(imported, cli, tmp_path):
    assert cli("data", "export", imported, "--format", "lerobot", "--out", tmp_path / "lr")[0] == 0
    code, _, err = cli("data", "import-lerobot", tmp_path / "lr", "--out", tmp_path / "back")
    assert code == 0, err
    a, b = Dataset(imported), Dataset(tmp_path / "back")
    assert b.action_space == a.action_space and b.state_keys == a.state_keys and b.fps == a.fps
    for ep in a.episode_ids():
        x, y = a.load_episode(ep), b.load_episode(ep)
        for name in ("actions", "rewards", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
        np.testing.assert_array_equal(x.state["observation_state"], y.state["observation_state"])
        assert a.episode_split(ep) == b.episode_split(ep) and a.entry(ep)["info"] == b.entry(ep)["info"]
        assert pooled_psnr(np.asarray(x.frames), np.asarray(y.frames)) > 30  # the video is lossy, the error reported


def test_export_of_a_discrete_world_round_trips_its_action_space(cli, tmp_path):
    ds = collect("explorer", tmp_path / "ex", episodes=3, steps=12, resolution=32, seed=0, progress=False)
    code, out, err = cli("data", "export", ds.path, "--format", "lerobot", "--out", tmp_path / "lr")
    assert code == 0, err
    assert "coins" in err  # (T, n_coins, 2) is not a vector per frame: named as not exported
    info = json.loads((tmp_path / "lr/meta/info.json").read_text())
    assert info["features"]["action"]["dtype"] == "int64" and "observation.agent" in info["features"]
    assert cli("data", "import-lerobot", tmp_path / "lr", "--out", tmp_path / "back")[0] == 0
    back = Dataset(tmp_path / "back")
    assert back.action_space == ds.action_space and back.world == "explorer"
    for ep in ds.episode_ids():
        np.testing.assert_array_equal(back.load_episode(ep).actions, ds.load_episode(ep).actions)
        np.testing.assert_array_equal(back.load_episode(ep).state["agent"], ds.load_episode(ep).state["agent"])


# -- bad input: one line naming the file and the fix, exit 2, nothing stored ---------------------------


@pytest.fixture
def fixture_copy(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "tiny"))


def _nothing_at(out: Path) -> None:
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))


def test_no_video_for_the_camera(cli, fixture_copy, tmp_path):
    shutil.rmtree(fixture_copy / "videos" / "observation.images.wrist")
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x", "--camera", "wrist"),
                "no video for camera 'observation.images.wrist'", "videos/observation.images.wrist/chunk-000/file-000.mp4",
                "--camera")
    _nothing_at(tmp_path / "x")
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x", "--camera", "side"), "no camera 'side'",
                "observation.images.top")
    assert cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x", "--camera", "top")[0] == 0  # the other is fine


def test_parquet_with_a_missing_column(cli, fixture_copy, tmp_path):
    path = fixture_copy / DATA
    pq.write_table(pq.read_table(path).drop_columns(["action"]), path)
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x"), DATA, "no column 'action'")
    _nothing_at(tmp_path / "x")
    path = fixture_copy / EPISODES
    pq.write_table(pq.read_table(path).drop_columns(["videos/observation.images.top/from_timestamp"]), path)
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x"), EPISODES,
                "no column 'videos/observation.images.top/from_timestamp'")


def test_mismatched_episode_lengths(cli, fixture_copy, tmp_path):
    path = fixture_copy / DATA
    table = pq.read_table(path)
    pq.write_table(table.filter(pc.invert(pc.equal(table["index"], 15))), path)  # a row of episode 1 lost
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x"), "mismatched episode lengths", "episode 1",
                DATA, EPISODES)
    _nothing_at(tmp_path / "x")
    shutil.copy(FIXTURE / DATA, path)
    eps = pq.read_table(fixture_copy / EPISODES)
    to = eps["videos/observation.images.top/to_timestamp"].to_pylist()
    to[2] -= 0.3  # the video span of episode 2 is 3 frames short of its 15 rows
    column = eps.schema.get_field_index("videos/observation.images.top/to_timestamp")
    pq.write_table(eps.set_column(column, "videos/observation.images.top/to_timestamp", pa.array(to)), fixture_copy / EPISODES)
    _user_error(cli("data", "import-lerobot", fixture_copy, "--out", tmp_path / "x"), "mismatched episode lengths", "episode 2",
                "video span", EPISODES)
    _nothing_at(tmp_path / "x")


def test_not_a_lerobot_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _user_error(cli("data", "import-lerobot", tmp_path / "empty", "--out", tmp_path / "x"), "meta/info.json is missing")
    _user_error(cli("data", "import-lerobot", tmp_path / "nowhere", "--out", tmp_path / "x"), "does not exist")


@pytest.mark.parametrize("damage", ["truncated chunk", "checksum"])
def test_damaged_chunk_stops_reading_and_stores_nothing(imported, cli, tmp_path, damage):
    path = Path(shutil.copytree(imported, tmp_path / "copy"))
    target = path / "episodes" / "000001" / "frames.chunks"
    data = bytearray(target.read_bytes())
    if damage == "checksum":
        data[-20] ^= 0x10  # inside the (only) chunk
        words = ["000001/frames.chunks", "chunk 0 fails its checksum"]
    else:
        data = data[:-30]
        words = ["000001/frames.chunks", "truncated"]
    target.write_bytes(bytes(data))
    _user_error(cli("data", "verify", path), "episodes/000001/frames.chunks", "bytes" if damage != "checksum" else "checksum")
    _user_error(cli("data", "export", path, "--format", "lerobot", "--out", tmp_path / "lr"), *words, "playworld data verify")
    _nothing_at(tmp_path / "lr")
    _user_error(cli("data", "convert", path, "--out", tmp_path / "raw", "--layout", "raw"), *words)
    _nothing_at(tmp_path / "raw")
