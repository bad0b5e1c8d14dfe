"""`playworld data convert` between layouts, and the default store's size on real frames."""

import json

import numpy as np
import pytest
from synthetic_data import synthetic_episode

from playworld.data.collect import collect
from playworld.data.convert import convert
from playworld.data.info import dataset_info
from playworld.data.store import Dataset


def _same_episodes(a: Dataset, b: Dataset) -> None:
    assert a.episode_ids() == b.episode_ids()
    for ep in a.episode_ids():
        x, y = a.load_episode(ep), b.load_episode(ep)
        np.testing.assert_array_equal(np.asarray(x.frames), np.asarray(y.frames))
        for name in ("actions", "rewards", "terminated", "truncated"):
            got, want = getattr(y, name), getattr(x, name)
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
        assert x.state.keys() == y.state.keys() and all(np.array_equal(x.state[k], y.state[k]) for k in x.state)
        assert a.episode_split(ep) == b.episode_split(ep) and a.entry(ep).get("info") == b.entry(ep).get("info")


def test_schema1_to_compressed_and_back_to_raw(cli, schema1, tmp_path):
    code, out, err = cli("data", "convert", schema1, "--out", tmp_path / "z")
    assert code == 0, err
    assert "schema 1, raw" in out and "compressed" in out and "zstd-9" in out
    old, new = Dataset(schema1), Dataset(tmp_path / "z")
    assert new.manifest["schema_version"] == 2 and new.layout == "compressed" and new.verify() == []
    _same_episodes(old, new)
    assert new.manifest["history"][:-1] == old.manifest["history"] and new.manifest["history"][-1]["kind"] == "convert"
    assert new.manifest["state"] == old.manifest["state"] and new.manifest["split_seed"] == old.manifest["split_seed"]
    raw = convert(new, tmp_path / "r", layout="raw", progress=False)
    assert raw.layout == "raw" and raw.verify() == [] and isinstance(raw.load_episode(0).frames, np.memmap)
    _same_episodes(old, raw)
    for ep in old.episode_ids():  # the raw files are the schema-1 files, byte for byte
        for name in ("frames.npy", "actions.npy", "state.pos.npy"):
            assert (raw.episode_dir(ep) / name).read_bytes() == (old.episode_dir(ep) / name).read_bytes()
    assert json.loads((schema1 / "manifest.json").read_text())["schema_version"] == 1  # the source is untouched


def test_convert_refuses_an_existing_out_and_a_bad_layout(cli, schema1, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep")
    code, _, err = cli("data", "convert", schema1, "--out", tmp_path / "taken")
    assert code == 2 and "already exists" in err and (tmp_path / "taken" / "x").read_text() == "keep"
    code, _, err = cli("data", "convert", schema1, "--out", tmp_path / "new", "--layout", "zip")
    assert code == 2 and "unknown dataset layout 'zip'" in err and not (tmp_path / "new").exists()


def test_converted_dataset_appends(schema1, tmp_path):
    from playworld.data.store import create_or_append
    from playworld.spaces import ActionSpace

    ds = convert(schema1, tmp_path / "z", progress=False)
    with create_or_append(ds.path, ds.world, ds.resolution, ActionSpace.discrete(5), ds.fps) as w:
        w.add_episode(**synthetic_episode(w.next_id, 9))
    ds = Dataset(ds.path)
    assert len(ds) == 4 and ds.episode_length(3) == 9 and ds.verify() == []


@pytest.mark.slow
def test_explorer_store_is_over_10x_smaller_than_raw(tmp_path):
    """On explorer at 64x64 the default store keeps the frames (and the whole episode) 10x+ smaller than raw .npy."""
    ds = collect("explorer", tmp_path / "z", episodes=4, steps=100, resolution=64, seed=0, progress=False)
    raw = convert(ds, tmp_path / "raw", layout="raw", progress=False)
    z, r = dataset_info(ds), dataset_info(raw)
    assert z["storage"]["lossless"] and z["storage"]["frames_codec"] == "zstd-9"
    assert z["storage"]["raw_frame_bytes"] == 4 * 101 * 64 * 64 * 3 == r["storage"]["frame_bytes"] - 4 * 128  # .npy headers
    assert z["storage"]["frames_smaller_than_raw"] > 10 and r["bytes_stored"] / z["bytes_stored"] > 10
