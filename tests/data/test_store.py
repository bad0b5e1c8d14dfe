import json

import numpy as np
import pytest
from synthetic_data import N_ACTIONS, synthetic_episode

from playworld.data.chunks import ChunkedFrames
from playworld.data.layout import FRAMES_FILE
from playworld.data.store import SCHEMA_VERSION, Dataset, assign_split, create_or_append, split_of
from playworld.data.table import TABLE
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace


def _table(path) -> list[dict]:
    return [json.loads(line) for line in (path / TABLE).read_text().splitlines()]


def _check_content(ds: Dataset) -> None:
    for ep in ds.episode_ids():
        want = synthetic_episode(ep, ds.episode_length(ep))
        got = ds.load_episode(ep)
        assert isinstance(got.frames, (np.memmap, ChunkedFrames))  # read on access, not loaded
        np.testing.assert_array_equal(np.asarray(got.frames), want["frames"])
        np.testing.assert_array_equal(got.actions, want["actions"])
        assert got.actions.dtype == np.int64 and got.rewards.dtype == np.float32
        np.testing.assert_array_equal(got.rewards, want["rewards"])
        np.testing.assert_array_equal(got.terminated, want["terminated"])
        np.testing.assert_array_equal(got.truncated, want["truncated"])
        np.testing.assert_array_equal(got.state["pos"], want["state"]["pos"])
        assert got.state["pos"].dtype == np.float64


def test_round_trip(synthetic, layout):
    path = synthetic([12, 20, 7], layout=layout)
    ds = Dataset(path)
    assert (ds.world, ds.resolution, ds.fps, ds.action_space) == ("test/synthetic", 32, 10.0, ActionSpace.discrete(N_ACTIONS))
    assert ds.layout == layout and ds.episode_ids() == [0, 1, 2] and ds.num_frames == 39
    assert [ds.episode_length(e) for e in ds.episode_ids()] == [12, 20, 7]
    _check_content(ds)
    assert isinstance(ds.load_episode(0).frames, np.memmap if layout == "raw" else ChunkedFrames)
    assert ds.verify() == []
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION == 2 and manifest["layout"] == layout
    assert "episodes" not in manifest  # per-episode metadata lives in the table, one line each
    table = _table(path)
    assert [e["id"] for e in table] == [0, 1, 2]
    frames = table[1]["files"][FRAMES_FILE[layout]]
    assert frames["shape"] == [20, 32, 32, 3] and len(frames["sha256"]) == 64


def test_default_layout_is_compressed(synthetic):
    ds = Dataset(synthetic([5]))
    assert ds.layout == "compressed" and (ds.episode_dir(0) / "frames.chunks").is_file()


def test_continuous_actions(tmp_path, layout):
    space = ActionSpace.continuous([-1, -1], [1, 1])
    with create_or_append(tmp_path / "c", "test/cont", 32, space, fps=30, layout=layout) as w:
        w.add_episode(np.zeros((5, 32, 32, 3), np.uint8), np.full((5, 2), 0.5))
    e = Dataset(tmp_path / "c").load_episode(0)
    assert e.actions.dtype == np.float32 and e.actions.shape == (5, 2)
    with create_or_append(tmp_path / "c", "test/cont", 32, space, fps=30) as w, pytest.raises(ValueError):
        w.add_episode(np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5))


def test_append_keeps_episodes_and_splits(synthetic, layout):
    path = synthetic([10] * 5, layout=layout)
    before = Dataset(path)
    splits = {e: before.episode_split(e) for e in before.episode_ids()}
    entry = before.entry(2)
    synthetic([10] * 30)
    after = Dataset(path)
    assert after.layout == layout and after.episode_ids() == list(range(35))
    assert {e: after.episode_split(e) for e in range(5)} == splits
    assert after.entry(2) == entry
    assert after.verify() == []
    assert sorted(after.episode_ids("train") + after.episode_ids("val") + after.episode_ids("test")) == list(range(35))


def test_appending_writes_one_table_line_and_leaves_the_manifest(synthetic):
    """Per-episode metadata is written once: the manifest is not rewritten per episode, the table grows by a line."""
    path = synthetic([4])
    manifest = path / "manifest.json"
    with create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0) as w:
        opened = manifest.stat().st_ino, manifest.read_bytes()
        sizes = []
        for _ in range(5):
            w.add_episode(**synthetic_episode(w.next_id, 4))
            sizes.append((path / TABLE).stat().st_size)
            assert (manifest.stat().st_ino, manifest.read_bytes()) == opened
    lines = (path / TABLE).read_bytes().split(b"\n")
    assert len(lines) == 7 and lines[-1] == b""  # 6 episodes, each line committed by its newline
    steps = np.diff(sizes)
    assert steps.max() - steps.min() < 40  # each append adds one line of the same size, whatever came before


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
    with pytest.raises(PlayworldError, match="stores its episodes compressed") as err:
        create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0, layout="raw")
    assert "playworld data convert" in err.value.fix
    assert Dataset(path).verify() == []


def test_writer_lock(synthetic):
    path = synthetic([5])
    with create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0):
        with pytest.raises(PlayworldError, match="another process"):
            create_or_append(path, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0)


def test_leftovers_ignored_then_cleaned(synthetic, layout):
    path = synthetic([5, 5], layout=layout)
    (path / "episodes" / "000002").mkdir()  # renamed into place, then killed before its table line
    (path / ".tmp" / "000003.123").mkdir(parents=True)
    with open(path / TABLE, "ab") as f:
        f.write(b'{"id":2,"length":6,"spl')  # a line torn by a kill mid-write
    ds = Dataset(path)
    assert ds.episode_ids() == [0, 1] and ds.verify() == []
    synthetic([6])
    ds = Dataset(path)
    assert ds.episode_length(2) == 6 and ds.verify() == [] and not (path / ".tmp").exists()
    assert [e["id"] for e in _table(path)] == [0, 1, 2]  # the torn line was cut off, not glued to the next


def test_damaged_table_line_is_one_error(synthetic):
    path = synthetic([5, 5, 5])
    lines = (path / TABLE).read_bytes().split(b"\n")
    lines[1] = b'{"id": "one"}'
    (path / TABLE).write_bytes(b"\n".join(lines))
    with pytest.raises(PlayworldError, match=r"episodes.jsonl is damaged at line 2") as err:
        Dataset(path)
    assert "backup" in err.value.fix


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "state"])
def test_corruption_detected(synthetic, layout, damage):
    path = synthetic([8, 8, 8], layout=layout)
    small = "state.pos.npy" if layout == "raw" else "arrays.npz"
    target = path / "episodes" / "000001" / (small if damage == "state" else FRAMES_FILE[layout])
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


def test_corrupt_chunk_fails_when_read(synthetic):
    """A flipped bit inside a compressed chunk is caught by that chunk's checksum on reading, naming the file."""
    path = synthetic([70, 70])  # 32x32 frames: 64 per chunk, so episode 1 has two chunks
    target = path / "episodes" / "000001" / "frames.chunks"
    frames = ChunkedFrames(target)
    assert frames.num_chunks == 2
    data = bytearray(target.read_bytes())
    data[len(data) - 10] ^= 0x40  # inside the last chunk
    target.write_bytes(bytes(data))
    episode = Dataset(path).load_episode(1)
    np.testing.assert_array_equal(episode.frames[:64], synthetic_episode(1, 70)["frames"][:64])  # chunk 0 is intact
    with pytest.raises(PlayworldError, match=r"000001/frames.chunks: chunk 1 fails its checksum") as err:
        episode.frames[65]
    assert "playworld data verify" in err.value.fix


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


def test_schema1_dataset_opens_unchanged(schema1):
    """A dataset the schema-1 store wrote (tests/data/fixtures/make_schema1.py) reads, verifies and appends as before."""
    before = {p: p.read_bytes() for p in (schema1 / "episodes").rglob("*.npy")}
    ds = Dataset(schema1)
    assert ds.manifest["schema_version"] == 1 and ds.layout == "raw" and ds.episode_ids() == [0, 1, 2]
    assert [ds.episode_length(e) for e in ds.episode_ids()] == [6, 5, 7]
    _check_content(ds)
    assert ds.verify() == []
    with create_or_append(schema1, "test/synthetic", 32, ActionSpace.discrete(N_ACTIONS), 10.0) as w:
        w.add_episode(**synthetic_episode(w.next_id, 4))
    ds = Dataset(schema1)
    assert ds.manifest["schema_version"] == 1 and len(ds.manifest["episodes"]) == 4 and not (schema1 / TABLE).exists()
    _check_content(ds)
    assert ds.verify() == [] and all(p.read_bytes() == b for p, b in before.items())
