import json

import numpy as np
import pytest

from playworld.data.store import SCHEMA_VERSION, Dataset, assign_split, create_or_append, split_of
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace

from synthetic_data import N_ACTIONS, synthetic_episode


def test_round_trip(synthetic):
    path = synthetic([12, 20, 7])
    ds = Dataset(path)
    assert (ds.world, ds.resolution, ds.fps, ds.action_space) == ("test/synthetic", 32, 10.0, ActionSpace.discrete(N_ACTIONS))
    assert ds.episode_ids() == [0, 1, 2] and ds.num_frames == 39
    assert [ds.episode_length(e) for e in ds.episode_ids()] == [12, 20, 7]
    for ep in ds.episode_ids():
        want = synthetic_episode(ep, ds.episode_length(ep))
        got = ds.load_episode(ep)
        assert isinstance(got.frames, np.memmap)  # memory-mapped, not loaded
        np.testing.assert_array_equal(got.frames, want["frames"])
        np.testing.assert_array_equal(got.actions, want["actions"])
        assert got.actions.dtype == np.int64 and got.rewards.dtype == np.float32
        np.testing.assert_array_equal(got.rewards, want["rewards"])
        np.testing.assert_array_equal(got.terminated, want["terminated"])
        np.testing.assert_array_equal(got.truncated, want["truncated"])
        np.testing.assert_array_equal(got.state["pos"], want["state"]["pos"])
    assert ds.verify() == []
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["episodes"][1]["files"]["frames.npy"]["shape"] == [20, 32, 32, 3]
    assert len(manifest["episodes"][0]["files"]["frames.npy"]["sha256"]) == 64


def test_continuous_actions(tmp_path):
    space = ActionSpace.continuous([-1, -1], [1, 1])
    with create_or_append(tmp_path / "c", "test/cont", 32, space, fps=30) as w:
        w.add_episode(np.zeros((5, 32, 32, 3), np.uint8), np.full((5, 2), 0.5))
    e = Dataset(tmp_path / "c").load_episode(0)
    assert e.actions.dtype == np.float32 and e.actions.shape == (5, 2)
    with create_or_append(tmp_path / "c", "test/cont", 32, space, fps=30) as w, pytest.raises(ValueError):
        w.add_episode(np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5))


def test_append_keeps_episodes_and_splits(synthetic):
    path = synthetic([10] * 5)
    before = Dataset(path)
    splits = {e: before.episode_split(e) for e in before.episode_ids()}
    checksum = before.manifest["episodes"][2]["files"]["frames.npy"]["sha256"]
    synthetic([10] * 30)
    after = Dataset(path)
    assert after.episode_ids() == list(range(35))
    assert {e: after.episode_split(e) for e in range(5)} == splits
    assert after.manifest["episodes"][2]["files"]["frames.npy"]["sha256"] == checksum
    assert after.verify() == []
    assert sorted(after.episode_ids("train") + after.episode_ids("val") + after.episode_ids("test")) == list(range(35))


def test_split_rules():
    # stable: a function of (id, seed) only, roughly 80/10/10
    many = [split_of(i, 0) for i in range(5000)]
    assert many == [split_of(i, 0) for i in range(5000)]
    assert abs(many.count("train") / 5000 - 0.8) < 0.03 and abs(many.count("val") / 5000 - 0.1) < 0.02
    assert [split_of(i, 1) for i in range(50)] != many[:50]
    # small datasets get train, then val, then test
    splits: list[str] = []
    for i in range(3):
        splits.append(assign_split(i, 0, splits))
    assert sorted(splits) == ["test", "train", "val"]


def test_small_dataset_has_val(synthetic):
    ds = Dataset(synthetic([10, 10]))
    assert len(ds.episode_ids("train")) == 1 and len(ds.episode_ids("val")) == 1


def test_append_mismatch_rejected(synthetic):
    path = synthetic([5])
    with pytest.raises(PlayworldError, match="cannot append"):
        create_or_append(path, "test/synthetic", 64, ActionSpace.discrete(N_ACTIONS), 10.0)
    with pytest.raises(PlayworldError, match="cannot append"):
        create_or_append(path, "other", 32, ActionSpace.discrete(N_ACTIONS), 10.0)
    assert Dataset(path).verify() == []


def test_writer_lock(synthetic):
    path = synthetic([5])
    with create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0):
        with pytest.raises(PlayworldError, match="another process"):
            create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0)


def test_leftovers_ignored_then_cleaned(synthetic):
    path = synthetic([5, 5])
    (path / "episodes" / "000002").mkdir()  # renamed into place, then killed before the manifest
    (path / ".tmp" / "000003.123").mkdir(parents=True)
    ds = Dataset(path)
    assert ds.episode_ids() == [0, 1] and ds.verify() == []
    synthetic([6])
    ds = Dataset(path)
    assert ds.episode_length(2) == 6 and ds.verify() == [] and not (path / ".tmp").exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "state"])
def test_corruption_detected(synthetic, damage):
    path = synthetic([8, 8, 8])
    target = path / "episodes" / "000001" / ("state.pos.npy" if damage == "state" else "frames.npy")
    data = bytearray(target.read_bytes())
    if damage in ("flip", "state"):
        data[-5] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(bytes(data[: len(data) // 2]))
    else:
        target.unlink()
    problems = Dataset(path).verify()
    assert len(problems) == 1 and target.name in problems[0] and "000001" in problems[0]
    assert {"flip": "checksum", "state": "checksum", "truncate": "bytes", "delete": "missing"}[damage] in problems[0]
    if damage in ("truncate", "delete"):
        with pytest.raises(PlayworldError, match="000001"):
            Dataset(path).load_episode(1)


def test_open_errors(tmp_path, synthetic):
    with pytest.raises(PlayworldError, match="does not exist"):
        Dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlayworldError, match="not a playworld dataset"):
        Dataset(tmp_path / "empty")
    path = synthetic([5])
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = SCHEMA_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PlayworldError, match=f"schema version {SCHEMA_VERSION + 1}") as err:
        Dataset(path)
    assert "upgrade playworld" in err.value.fix
    with pytest.raises(PlayworldError, match="schema version"):  # appending must not touch it either
        create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0)
    assert json.loads((path / "manifest.json").read_text()) == manifest


def test_non_dataset_directory_not_overwritten(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(PlayworldError, match="not empty"):
        create_or_append(tmp_path / "mine", "w", 32, ActionSpace.none(), 10.0)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
