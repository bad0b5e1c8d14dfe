"""LeRobotDataset v3.0 in and out, read and written with pyarrow and PyAV (no `lerobot` dependency).

The v3.0 layout (lerobot >= 0.4; tests/fixtures/lerobot/tiny was written by LeRobot's own writer):

    meta/info.json                             codebase_version "v3.0", fps, features, data_path and video_path templates
    meta/tasks.parquet                         the task strings (pandas index) and their task_index
    meta/episodes/chunk-000/file-000.parquet   a row per episode: episode_index, length, tasks, data/{chunk,file}_index,
                                               dataset_{from,to}_index, videos/<camera>/{chunk_index,file_index,
                                               from_timestamp,to_timestamp}
    data/chunk-000/file-000.parquet            a row per frame: episode_index, frame_index, timestamp, index, task_index,
                                               action, observation.state, next.reward, next.done, ...
    videos/<camera>/chunk-000/file-000.mp4     many episodes per file, back to back in time

Time: LeRobot's row t holds the observation at t and the action taken there, which leads to t+1
(next.reward and next.done follow it). playworld's actions[t] leads INTO frames[t], so on import
    actions[0] = the no-op, actions[t] = action[t-1], rewards[t] = next.reward[t-1], terminated[t] = next.done[t-1];
the last row's action, reward and done (which lead past the recording) go into the episode's info,
and export puts them back. Other numeric features become state keys (`observation.state` ->
`observation_state`). Import checks every table, column, length and video before writing, decodes
one video file at a time, and builds the dataset beside --out, so a failure stores nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, building, create_or_append
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import check_resolution

VERSION = "v3.0"
ACTION, REWARD, DONE = "action", "next.reward", "next.done"
INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
EXPORT_CAMERA = "observation.image"
FILE_FRAMES = 50_000
"""frames per data and video file on export (LeRobot caps files at 100 / 200 MB; 64x64 video stays far below)"""
CHUNKS_SIZE = 1000
PLAYWORLD_META = "meta/playworld.json"
"""what LeRobot's format cannot hold (the discrete action space, splits, the video error), beside its files"""
_FIX_REEXPORT = "the dataset is incomplete or inconsistent: re-export it with LeRobot, or fix the file named"


def _err(message: str, fix: str = _FIX_REEXPORT) -> PlayworldError:
    return PlayworldError(message, fix)


# -- reading ------------------------------------------------------------------------------------------


def read_info(root: Path) -> dict:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise _err(f"{root} is not a LeRobot dataset: {path} is missing",
                   "pass the dataset's root folder (the one holding meta/, data/ and videos/), a local path")
    try:
        info = json.loads(path.read_text())
        version, fps, features = info["codebase_version"], float(info["fps"]), info["features"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise _err(f"{path} is not a LeRobot info.json ({type(e).__name__}: {e})") from None
    if not str(version).startswith("v3."):
        raise _err(f"{path} says codebase_version {version}; playworld reads LeRobotDataset {VERSION}",
                   "convert it with LeRobot first (lerobot's convert_dataset_v21_to_v30 script)")
    if not fps > 0 or not isinstance(features, dict):
        raise _err(f"{path} has fps {fps} and features of type {type(features).__name__}")
    return info


def pick_camera(info: dict, camera: str | None, root: Path) -> str:
    """The video feature to import: `camera` (a full key or its last part, e.g. `top`), else the first."""
    videos = [k for k, f in info["features"].items() if isinstance(f, dict) and f.get("dtype") == "video"]
    if not videos:
        images = [k for k, f in info["features"].items() if isinstance(f, dict) and f.get("dtype") == "image"]
        only = f" (only images: {', '.join(images)})" if images else ""
        raise _err(f"{root / 'meta/info.json'} declares no video camera{only}",
                   "playworld imports cameras stored as mp4 video (LeRobot's default, use_videos=True)")
    if camera is None:
        return videos[0]
    match = [k for k in videos if k == camera or k.split(".")[-1] == camera]
    if not match:
        raise _err(f"{root} has no camera {camera!r}", f"choose --camera from: {', '.join(videos)}")
    return match[0]


def _table(path: Path, columns: list[str], why: str) -> pa.Table:
    """`columns` of the parquet file `path`; a missing one is an error naming the file and the column."""
    try:
        names = pq.read_schema(path).names
    except FileNotFoundError:
        raise _err(f"{path} is missing ({why})") from None
    except (pa.ArrowException, OSError) as e:
        raise _err(f"{path} is not a readable parquet file ({e})") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise _err(f"{path} has no column {missing[0]!r} ({why})",
                   "re-write the file with every column meta/info.json declares, or remove the feature from meta/info.json")
    return pq.read_table(path, columns=columns)


def _array(column: pa.ChunkedArray, shape: list[int]) -> np.ndarray:
    """A parquet column -> (rows, *shape) numpy, scalar features (shape [1]) as (rows,)."""
    column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type) or pa.types.is_large_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), *shape)
    return column.to_numpy(zero_copy_only=False)


def _episodes_meta(root: Path, camera: str) -> list[dict]:
    """Every row of meta/episodes/*/*.parquet (the columns import uses), sorted by episode_index."""
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise _err(f"{root / 'meta/episodes'} holds no episodes parquet file")
    v = f"videos/{camera}/"
    columns = ["episode_index", "length", "data/chunk_index", "data/file_index", f"{v}chunk_index", f"{v}file_index",
               f"{v}from_timestamp", f"{v}to_timestamp"]
    rows = []
    for path in files:
        table = _table(path, columns + (["tasks"] if "tasks" in pq.read_schema(path).names else []), "LeRobot's episode index")
        for row in table.to_pylist():
            rows.append({**row, "meta_file": path})
    return sorted(rows, key=lambda r: r["episode_index"])


def _state_features(features: dict) -> dict[str, dict]:
    """Numeric per-frame features other than the index, action, reward and done columns."""
    skip = set(INDEX_FEATURES) | {ACTION, REWARD, DONE}
    return {k: f for k, f in features.items() if k not in skip and isinstance(f, dict)
            and f.get("dtype") not in ("video", "image", "string") and len(f.get("shape", ())) <= 1}


def _rows_by_episode(root: Path, info: dict, episodes: list[dict]) -> dict[int, dict[str, np.ndarray]]:
    """Per episode, its rows of every data file, sorted by frame_index; lengths checked against meta/episodes."""
    features = info["features"]
    wanted = [ACTION, REWARD, DONE, *_state_features(features)]
    columns = ["episode_index", "frame_index"] + [c for c in wanted if c in features]
    by_file: dict[Path, list[dict]] = {}
    for e in episodes:
        path = root / info["data_path"].format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])
        by_file.setdefault(path, []).append(e)
    out: dict[int, dict[str, np.ndarray]] = {}
    for path, eps in by_file.items():
        table = _table(path, columns, "meta/info.json declares it")
        arrays = {c: _array(table.column(c), list(features.get(c, {}).get("shape", [1]))) for c in columns}
        for e in eps:
            ep, length = e["episode_index"], e["length"]
            rows = np.flatnonzero(arrays["episode_index"] == ep)
            rows = rows[np.argsort(arrays["frame_index"][rows], kind="stable")]
            if len(rows) != length or not np.array_equal(arrays["frame_index"][rows], np.arange(length)):
                raise _err(f"mismatched episode lengths: episode {ep} is {length} frames long in "
                           f"{e['meta_file'].relative_to(root)} "
                           f"but has {len(rows)} rows in {path.relative_to(root)} (frame_index must run 0..{length - 1})")
            out[ep] = {c: arrays[c][rows] for c in columns[2:]}
    return out


def _check_videos(root: Path, info: dict, camera: str, episodes: list[dict]) -> dict[Path, list[dict]]:
    """Episodes grouped by the video file that holds them (in time order); every file exists, every span fits."""
    template, fps, v = info.get("video_path"), float(info["fps"]), f"videos/{camera}/"
    if not template:
        raise _err(f"{root / 'meta/info.json'} has no video_path template")
    by_file: dict[Path, list[dict]] = {}
    for e in episodes:
        path = root / template.format(video_key=camera, chunk_index=e[f"{v}chunk_index"], file_index=e[f"{v}file_index"])
        span = round((e[f"{v}to_timestamp"] - e[f"{v}from_timestamp"]) * fps)
        if span != e["length"]:
            raise _err(f"mismatched episode lengths: episode {e['episode_index']} is {e['length']} frames long but its video "
                       f"span in {e['meta_file'].relative_to(root)} holds {span} frames at {fps:g} fps")
        by_file.setdefault(path, []).append(e)
    cameras = ", ".join(k for k, f in info["features"].items() if f.get("dtype") == "video")
    for path in by_file:
        if not path.is_file():
            raise _err(f"no video for camera {camera!r}: {path.relative_to(root)} is missing",
                       f"choose another --camera ({cameras}), or restore the videos/ folder")
    return {p: sorted(eps, key=lambda e: e[f"{v}from_timestamp"]) for p, eps in by_file.items()}


def _resize(frame: np.ndarray, resolution: int) -> np.ndarray:
    """(H, W, 3) -> (R, R, 3): centre crop to a square, Lanczos resize (as `data import-video` does)."""
    h, w, _ = frame.shape
    s = min(h, w)
    frame = frame[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    if s == resolution:
        return frame
    return np.asarray(Image.fromarray(frame).resize((resolution, resolution), Image.LANCZOS))


def _decode(path: Path, root: Path, camera: str, eps: list[dict], fps: float, resolution: int):
    """Yield (episode meta, frames (L, R, R, 3)) for the episodes of one video file, decoding it once."""
    v, half = f"videos/{camera}/", 0.5 / fps
    pending = list(eps)
    frames = {e["episode_index"]: np.zeros((e["length"], resolution, resolution, 3), np.uint8) for e in eps}
    filled = {e["episode_index"]: np.zeros(e["length"], bool) for e in eps}

    def finish(e):
        got = int(filled[e["episode_index"]].sum())
        if got != e["length"]:
            raise _err(f"mismatched episode lengths: {path.relative_to(root)} holds {got} frames of episode "
                       f"{e['episode_index']} (from {e[v + 'from_timestamp']:g} s), which is {e['length']} frames long")
        return e, frames.pop(e["episode_index"])

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else None
                while pending and t is not None and t >= pending[0][v + "to_timestamp"] - half:
                    yield finish(pending.pop(0))
                if not pending:
                    break
                e = pending[0]
                k = round((t - e[v + "from_timestamp"]) * fps) if t is not None else -1
                if 0 <= k < e["length"]:
                    frames[e["episode_index"]][k] = _resize(frame.to_ndarray(format="rgb24"), resolution)
                    filled[e["episode_index"]][k] = True
    except PlayworldError:
        raise
    except Exception as e:  # PyAV raises many error types (InvalidDataError, EOFError, ...)
        raise _err(f"cannot decode video {path.relative_to(root)}: {e}",
                   "the file is corrupt: restore it or re-export the dataset") from None
    while pending:
        yield finish(pending.pop(0))


def _action_space(info: dict, rows: dict[int, dict], root: Path, extra: dict) -> ActionSpace:
    if "action_space" in extra:
        return ActionSpace.from_dict(extra["action_space"])
    feature = info["features"].get(ACTION)
    if feature is None:
        return ActionSpace.none()
    acts = np.concatenate([r[ACTION].reshape(len(r[ACTION]), -1) for r in rows.values()])
    if np.issubdtype(acts.dtype, np.integer):
        return ActionSpace.discrete(max(1, int(acts.max()) + 1))
    stats = _read_json(root / "meta" / "stats.json").get(ACTION, {})
    low, high = stats.get("min"), stats.get("max")
    if not (isinstance(low, list) and isinstance(high, list) and len(low) == len(high) == acts.shape[1]):
        low, high = acts.min(0).tolist(), acts.max(0).tolist()
    return ActionSpace.continuous(np.minimum(low, acts.min(0)), np.maximum(high, acts.max(0)))


def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text())
        return out if isinstance(out, dict) else {}
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _state_key(name: str, extra: dict) -> str:
    """The playworld state key of a LeRobot feature: the one a playworld export named it after, else the name
    with every character other than letters, digits and underscores replaced (`observation.state` -> `observation_state`)."""
    return (extra.get("state_keys") or {}).get(name) or re.sub(r"[^A-Za-z0-9_]", "_", name)


def _episode_arrays(rows: dict[str, np.ndarray], space: ActionSpace, states: dict[str, str], length: int) -> dict:
    """One LeRobot episode's columns in playworld's time convention (see the module doc)."""
    actions = np.repeat(space.noop()[None], length, 0)
    if ACTION in rows:
        actions[1:] = rows[ACTION][:-1].reshape(length - 1, *space.shape)
    rewards, terminated = np.zeros(length, np.float32), np.zeros(length, bool)
    if REWARD in rows:
        rewards[1:] = rows[REWARD][:-1]
    if DONE in rows:
        terminated[1:] = rows[DONE][:-1]
    truncated = np.zeros(length, bool)
    truncated[-1] = not terminated[-1]  # the recording ends here
    last = {"last_action": rows[ACTION][-1].tolist() if ACTION in rows else None,
            "last_reward": float(rows[REWARD][-1]) if REWARD in rows else None,
            "last_done": bool(rows[DONE][-1]) if DONE in rows else None}
    state = {key: np.asarray(rows[name]) for name, key in states.items() if name in rows}
    return {"actions": actions, "rewards": rewards, "terminated": terminated, "truncated": truncated, "state": state,
            "last": last}


def import_lerobot(src: str | Path, out: str | Path, camera: str | None = None, resolution: int = 64,
                   progress: bool = True) -> Dataset:
    """Import the LeRobotDataset v3.0 at the local folder `src` into the new playworld dataset `out`."""
    root, out = Path(src), Path(out)
    check_resolution(resolution)
    if not root.is_dir():
        raise _err(f"LeRobot dataset {root} does not exist", "pass a local folder (playworld downloads nothing)")
    info = read_info(root)
    camera = pick_camera(info, camera, root)
    episodes = _episodes_meta(root, camera)
    if not episodes:
        raise _err(f"{root} has no episodes")
    rows = _rows_by_episode(root, info, episodes)
    videos = _check_videos(root, info, camera, episodes)
    extra = _read_json(root / PLAYWORLD_META)
    space, fps = _action_space(info, rows, root, extra), float(info["fps"])
    states = {name: _state_key(name, extra) for name in _state_features(info["features"])}  # LeRobot name -> state key
    splits = {int(k): s for k, s in (extra.get("splits") or {}).items()}
    world = extra.get("world") or f"lerobot:{root.resolve().name}"
    source = {"kind": "import-lerobot", "src": str(root.resolve()), "camera": camera,
              "codebase_version": info["codebase_version"], "state_features": {key: name for name, key in states.items()}}
    with building(out) as stage:
        with create_or_append(stage, world, resolution, space, fps, extra.get("world_options") or None,
                              split_seed=int(extra.get("split_seed", 0)), source=source) as writer:
            decoded = (pair for path, eps in videos.items() for pair in _decode(path, root, camera, eps, fps, resolution))
            for e, frames in progress_iter(decoded, f"importing {camera}", total=len(episodes), enabled=progress):
                a = _episode_arrays(rows[e["episode_index"]], space, states, e["length"])
                info_ep = {"lerobot_episode": e["episode_index"], "tasks": list(e.get("tasks") or []),
                           **{k: v for k, v in a.pop("last").items() if v is not None}}
                writer.add_episode(frames, a["actions"], a["rewards"], a["terminated"], a["truncated"], a["state"],
                                   info=info_ep, split=splits.get(e["episode_index"]))
    return Dataset(out)
