"""The data benches (bench/speed/store_scale.py, bench/speed/frame_codecs.py) run end to end at a budget
of seconds, and their figures follow what they were given and what is on disk (not literals)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_data import write_synthetic

from playworld.data.store import Dataset

ROOT = Path(__file__).resolve().parents[2]


def _bench(script: str, *args, timeout: float = 300) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    res = subprocess.run([sys.executable, str(ROOT / "bench" / script), *map(str, args), "--threads", "1"],
                         check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)  # only the JSON goes to stdout
    assert out["bench"] == Path(script).stem and out["machine"]["threads"] == 1
    return out


@pytest.mark.slow
def test_store_scale_bench_measures_the_store_it_wrote(tmp_path):
    out = _bench("speed/store_scale.py", "--out", tmp_path, "--episodes", 6, "--steps", 20, "--resolution", 32,
                 "--loader-seconds", 0.3, "--preset", "debug")
    ds = Dataset(tmp_path / "data")
    assert out["frames"] == 6 * 21 and out["collect"]["episodes"] == 6 and out["verify"]["frames"] == 6 * 21
    assert out["verify"]["problems"] == 0 and out["append"]["episodes_after"] == len(ds) == 7
    sizes = out["sizes"]
    assert sizes["raw_frames_bytes"] == 6 * 21 * 32 * 32 * 3
    files_now = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert sizes["files"] == len(files_now) - 2  # measured before the append phase added one episode (2 files)
    assert 0 < sizes["bytes_on_disk"] and 0 < sizes["bytes_in_files"] < sum(p.stat().st_size for p in files_now)
    assert sizes["raw_over_on_disk"] == pytest.approx(sizes["raw_bytes"] / sizes["bytes_on_disk"], abs=0.1)
    for phase in ("collect", "verify", "loader", "step", "append"):
        assert out[phase]["peak_rss_mb"] > 10 and out[phase]["wall_s"] > 0
    assert out["loader"]["windows_per_s"] == pytest.approx(out["loader"]["batches"] * out["loader"]["batch"] / 0.3, rel=0.5)
    assert out["loader_headroom"] == pytest.approx(out["loader"]["windows_per_s"] / out["step"]["windows_per_s"], abs=0.1)


@pytest.mark.slow
def test_frame_codecs_bench_sizes_follow_the_frames(tmp_path):
    write_synthetic(tmp_path / "ds", [40, 30], resolution=32)
    out = _bench("speed/frame_codecs.py", "--data", tmp_path / "ds", "--seconds", 0.1,
                 "--codecs", "zstd-9,zstd-9 + frame delta,libx264rgb crf0 (lossless),libx264 yuv420p crf10")
    row = out["datasets"]["test/synthetic"]
    assert row["frames"] == 70 and row["raw_bytes"] == 70 * 32 * 32 * 3 and row["chunk_frames"] == 64
    codecs = row["codecs"]
    assert set(codecs) == {"zstd-9", "zstd-9 + frame delta", "libx264rgb crf0 (lossless)", "libx264 yuv420p crf10"}
    for c in codecs.values():
        assert c["ratio"] == pytest.approx(row["raw_bytes"] / c["bytes"], abs=0.051) and c["decode_chunk_ms"] > 0  # (1 decimal)
    assert codecs["zstd-9"]["max_abs_error"] == 0 == codecs["libx264rgb crf0 (lossless)"]["max_abs_error"]
    assert codecs["libx264 yuv420p crf10"]["max_abs_error"] > 0  # random pixels do not survive chroma subsampling
