"""`playworld data export --format lerobot`: a playworld dataset as a LeRobotDataset v3.0 folder.

The folder is what LeRobot's own writer makes (the layout in `playworld.data.lerobot`): one camera
(`observation.image`, or the camera a LeRobot import came from) as mp4 video, `action` (a float32
vector, or int64 for discrete actions), `next.reward`, `next.done`, and each state key that is a
per-frame scalar or vector as `observation.<key>` (or its original LeRobot name). Time is shifted
back to LeRobot's convention (row t's action leads to t+1). Episodes share data and video files,
FILE_FRAMES frames per file. Frames are re-encoded (CODECS: near-lossless H.264 4:4:4 by default,
or LeRobot's own AV1 4:2:0); the error against the stored frames is measured by decoding every file
back, and reported (and kept in meta/playworld.json with what LeRobot's format cannot hold: the
discrete action space, the splits, the world).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from playworld.data.lerobot import ACTION, CHUNKS_SIZE, DONE, EXPORT_CAMERA, FILE_FRAMES, PLAYWORLD_META, REWARD, VERSION
from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, building
from playworld.errors import PlayworldError

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CODECS = {  # name: (encoder, info.json's video.codec, pixel format, options); g=2 as LeRobot's writer (cheap seeks)
    "h264-444": ("libx264", "h264", "yuv444p", {"crf": "0", "g": "2", "preset": "medium"}),
    "av1": ("libsvtav1", "av1", "yuv420p", {"crf": "20", "g": "2", "preset": "8"}),
}
"""h264-444 (the default): lossless H.264 in yuv444p, so only the RGB -> YUV rounding remains (at most 2 grey
levels on explorer) and it is as small as lossy settings; decoded by PyAV and torchcodec, not by browsers.
av1: LeRobot's own default, plays in browsers, but yuv420p smears flat-colour pixel art (explorer: up to 234)."""
DEFAULT_CODEC = "h264-444"


def _codec(name: str) -> tuple[str, str, str, dict]:
    if name not in CODECS:
        raise PlayworldError(f"unknown video codec {name!r}", f"choose one of {', '.join(CODECS)}")
    encoder = CODECS[name][0]
    if encoder not in av.codecs_available:
        raise PlayworldError(f"this PyAV has no {encoder} encoder (for --codec {name})",
                             f"install a PyAV wheel from PyPI (pip install -U av), or choose another --codec "
                             f"({', '.join(CODECS)})")
    return CODECS[name]


def _source(ds: Dataset) -> dict:
    """The import-lerobot history entry, if the dataset came from LeRobot (its camera and feature names)."""
    return next((h for h in reversed(ds.manifest.get("history", [])) if h.get("kind") == "import-lerobot"), {})


def _features(ds: Dataset, camera: str, codec: str, pix_fmt: str) -> tuple[dict, dict[str, str], list[str]]:
    """info.json's features, the state keys exported (key -> LeRobot name), and those left out (not vectors)."""
    r, space = ds.resolution, ds.action_space
    features = {camera: {"dtype": "video", "shape": [r, r, 3], "names": ["height", "width", "channels"],
                         "info": {"video.height": r, "video.width": r, "video.codec": codec, "video.pix_fmt": pix_fmt,
                                  "video.is_depth_map": False, "video.fps": ds.fps, "video.channels": 3, "has_audio": False}}}
    names = _source(ds).get("state_features", {})
    exported, skipped = {}, []
    for key, spec in ds.manifest.get("state", {}).items():
        if len(spec["shape"]) > 1 or not (np.issubdtype(np.dtype(spec["dtype"]), np.number) or spec["dtype"] == "bool"):
            skipped.append(key)
            continue
        exported[key] = names.get(key, f"observation.{key}")
        features[exported[key]] = {"dtype": spec["dtype"], "shape": spec["shape"] or [1], "names": None}
    if space.kind == "continuous":
        features[ACTION] = {"dtype": "float32", "shape": [space.dim], "names": None}
    elif space.kind == "discrete":
        features[ACTION] = {"dtype": "int64", "shape": [1], "names": None}
    features[REWARD] = {"dtype": "float32", "shape": [1], "names": None}
    features[DONE] = {"dtype": "bool", "shape": [1], "names": None}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"),
                        ("task_index", "int64")):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    return features, exported, skipped


def _lerobot_columns(ds: Dataset, ep: int, exported: dict[str, str]) -> dict[str, np.ndarray]:
    """One episode's per-row columns in LeRobot's time convention (row t's action leads to t+1)."""
    e, info = ds.load_episode(ep), ds.entry(ep).get("info", {})
    t, space = len(e), ds.action_space
    cols: dict[str, np.ndarray] = {name: np.asarray(e.state[key]) for key, name in exported.items()}
    if space.kind != "none":
        last = np.asarray(info["last_action"], space.dtype) if "last_action" in info else space.noop()
        cols[ACTION] = np.concatenate([e.actions[1:], last.reshape(1, *space.shape)])
    cols[REWARD] = np.append(e.rewards[1:], np.float32(info.get("last_reward", 0.0))).astype(np.float32)
    cols[DONE] = np.append(e.terminated[1:], bool(info.get("last_done", True)))
    cols["timestamp"] = (np.arange(t) / ds.fps).astype(np.float32)
    cols["frame_index"] = np.arange(t, dtype=np.int64)
    return cols


def _arrow(values: np.ndarray) -> pa.Array:
    if values.ndim == 2:  # a vector per row: fixed_size_list, as LeRobot's writer stores it
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    return pa.array(values)


class _Stats:
    """Running min / max / mean / std / count per feature (images per channel, in [0, 1]), as meta/stats.json holds them."""

    def __init__(self):
        self.acc: dict[str, list] = {}

    def add(self, name: str, values: np.ndarray, image: bool = False) -> None:
        x = values.reshape(-1, 3).astype(np.float64) / 255 if image else values.reshape(len(values), -1).astype(np.float64)
        a = self.acc.setdefault(name, [np.inf, -np.inf, 0.0, 0.0, 0, image])
        a[0], a[1] = np.minimum(a[0], x.min(0)), np.maximum(a[1], x.max(0))
        a[2], a[3], a[4] = a[2] + x.sum(0), a[3] + (x**2).sum(0), a[4] + len(x)

    def to_json(self) -> dict:
        out = {}
        for name, (lo, hi, s, s2, n, image) in self.acc.items():
            mean = s / n
            std = np.sqrt(np.maximum(s2 / n - mean**2, 0))
            shape = (3, 1, 1) if image else (-1,)
            out[name] = {k: np.reshape(v, shape).tolist() for k, v in (("min", lo), ("max", hi), ("mean", mean), ("std", std))}
            out[name]["count"] = [int(n)]
        return out


def _write_video(path: Path, frames_of, eps: list[int], fps: float, encoder: str, pix_fmt: str,
                 options: dict) -> tuple[float, int, int]:
    """Encode the episodes back to back; decode the file again and return (squared error sum, max error, values)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001), options=options)
        first = frames_of(eps[0])
        stream.width, stream.height, stream.pix_fmt = first.shape[2], first.shape[1], pix_fmt
        for ep in eps:
            for frame in frames_of(ep):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode(None))
    sse, worst, count = 0.0, 0, 0
    with av.open(str(path)) as container:
        decoded = (f.to_ndarray(format="rgb24") for f in container.decode(video=0))
        for ep in eps:
            for want in frames_of(ep):
                got = next(decoded, None)
                if got is None:
                    raise RuntimeError(f"{path} decodes to fewer frames than were encoded")
                diff = got.astype(np.int16) - want
                sse += float((diff.astype(np.float64) ** 2).sum())
                worst, count = max(worst, int(np.abs(diff).max())), count + diff.size
    return sse, worst, count


def export_lerobot(data: str | Path | Dataset, out: str | Path, camera: str | None = None, task: str | None = None,
                   codec: str = DEFAULT_CODEC, progress: bool = True) -> dict:
    """Write `data` as a LeRobotDataset v3.0 folder `out`; returns a summary with the video error.

    Each episode's task is the one a LeRobot import kept (its info's `tasks`), else `task`, else the world's name."""
    ds = data if isinstance(data, Dataset) else Dataset(data)
    ids = ds.episode_ids()
    if not ids:
        raise PlayworldError(f"dataset {ds.path} has no episodes", "collect or import some first")
    camera = camera or _source(ds).get("camera") or EXPORT_CAMERA
    encoder, codec_name, pix_fmt, options = _codec(codec)
    features, exported, skipped = _features(ds, camera, codec_name, pix_fmt)
    tasks: list[str] = []  # task_index -> text

    def frames_of(ep: int) -> np.ndarray:
        return np.asarray(ds.load_episode(ep).frames)

    groups, current, frames_in = [], [], 0  # episodes per data/video file
    for ep in ids:
        if current and frames_in + ds.episode_length(ep) > FILE_FRAMES:
            groups.append(current)
            current, frames_in = [], 0
        current.append(ep)
        frames_in += ds.episode_length(ep)
    groups.append(current)

    stats, episodes, index, sse, worst, values = _Stats(), [], 0, 0.0, 0, 0
    with building(out) as stage:
        bar = progress_iter(list(enumerate(groups)), f"exporting {len(ids)} episodes", enabled=progress)
        for g, eps in bar:
            chunk, file = divmod(g, CHUNKS_SIZE)
            seconds, tables = 0.0, []
            for i, ep in enumerate(eps):
                cols = _lerobot_columns(ds, ep, exported)
                t = len(cols["frame_index"])
                ep_tasks = list(ds.entry(ep).get("info", {}).get("tasks") or [task or ds.world])
                tasks += [x for x in ep_tasks if x not in tasks]
                cols.update(episode_index=np.full(t, len(episodes), np.int64), index=np.arange(index, index + t, dtype=np.int64),
                            task_index=np.full(t, tasks.index(ep_tasks[0]), np.int64))
                tables.append(pa.table({name: _arrow(v) for name, v in cols.items()}))
                for name, v in cols.items():
                    if name not in ("index", "episode_index", "task_index"):
                        stats.add(name, v)
                stats.add(camera, frames_of(ep), image=True)
                episodes.append({"episode_index": len(episodes), "tasks": ep_tasks, "length": t, "data/chunk_index": chunk,
                                 "data/file_index": file, "dataset_from_index": index, "dataset_to_index": index + t,
                                 f"videos/{camera}/chunk_index": chunk, f"videos/{camera}/file_index": file,
                                 f"videos/{camera}/from_timestamp": seconds,
                                 f"videos/{camera}/to_timestamp": seconds + t / ds.fps,
                                 "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0, "playworld_episode": ep})
                index, seconds = index + t, seconds + t / ds.fps
            path = stage / DATA_PATH.format(chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.concat_tables(tables), path)
            video = stage / VIDEO_PATH.format(video_key=camera, chunk_index=chunk, file_index=file)
            s, w, n = _write_video(video, frames_of, eps, ds.fps, encoder, pix_fmt, options)
            sse, worst, values = sse + s, max(worst, w), values + n
        psnr = round(min(100.0, 10 * math.log10(255**2 / (sse / values))), 2) if sse else 100.0  # capped, as eval caps it
        error = {"codec": codec_name, "encoder": encoder, "pix_fmt": pix_fmt, "options": options, "psnr_db": psnr,
                 "max_abs_error": worst}
        _write_meta(stage, ds, features, episodes, tasks, stats, error, exported, skipped, index)
    return {"out": str(out), "episodes": len(episodes), "frames": index, "camera": camera, "video": error,
            "state_not_exported": skipped}


def _write_meta(stage: Path, ds: Dataset, features: dict, episodes: list[dict], tasks: list[str], stats: _Stats, error: dict,
                exported: dict[str, str], skipped: list[str], frames: int) -> None:
    fps = int(ds.fps) if float(ds.fps).is_integer() else ds.fps
    info = {"codebase_version": VERSION, "robot_type": None, "total_episodes": len(episodes), "total_frames": frames,
            "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
            "fps": fps, "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": features}
    meta = stage / "meta"
    (meta / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    (meta / "info.json").write_text(json.dumps(info, indent=4))
    (meta / "stats.json").write_text(json.dumps(stats.to_json(), indent=4))
    table = pa.table({k: [e[k] for e in episodes] for k in episodes[0] if k != "playworld_episode"})
    pq.write_table(table, meta / "episodes" / "chunk-000" / "file-000.parquet")
    pandas_meta = {"index_columns": ["__index_level_0__"],  # pandas' own schema note: the task strings are the index
                   "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                       "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                                "metadata": None}, {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                                                    "numpy_type": "object", "metadata": None}], "attributes": {}}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), meta / "tasks.parquet")
    extra = {"format": "playworld-export", "source": str(ds.path.resolve()), "world": ds.world,
             "world_options": ds.manifest.get("world_options") or {}, "resolution": ds.resolution,
             "action_space": ds.action_space.to_dict(), "split_seed": ds.manifest.get("split_seed", 0),
             "splits": {str(i): ds.episode_split(e["playworld_episode"]) for i, e in enumerate(episodes)},
             "state_keys": {name: key for key, name in exported.items()}, "video": error, "state_not_exported": skipped}
    (stage / PLAYWORLD_META).write_text(json.dumps(extra, indent=1))
