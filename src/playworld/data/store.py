"""The episode store: one directory per episode of .npy files, described by a manifest.

    DATA/manifest.json                  schema version, world, action space, resolution, fps,
                                        episodes (id, length, split, per-file sha256/bytes/shape/dtype)
    DATA/episodes/000042/frames.npy     (T, H, W, 3) uint8, memory-mapped on read
                         actions.npy    (T,) int64 or (T, dim) float32; actions[t] led into frames[t]
                         rewards.npy    (T,) float32;  terminated.npy, truncated.npy (T,) bool
                         state.<key>.npy  (T, ...) ground-truth state per frame

Crash safety: an episode is written into DATA/.tmp/ and renamed into episodes/ only when complete;
then the manifest is rewritten through a temp file, fsync and os.replace. A process killed at any
moment therefore loses at most the episode in flight; leftovers (.tmp, an episode directory the
manifest does not list) are ignored by readers and cleaned by the next writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from playworld.data.progress import progress_iter
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import check_resolution, check_world_id

SCHEMA_VERSION = 1
FORMAT = "playworld-dataset"
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass
class Episode:
    frames: np.ndarray  # (T, H, W, 3) uint8, memory-mapped
    actions: np.ndarray  # (T,) int64 or (T, dim) float32
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    state: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (T, ...)

    def __len__(self) -> int:
        return len(self.frames)


def split_of(episode_id: int, seed: int) -> str:
    """The hash split of an episode: a fixed function of (id, seed), so appending never moves one."""
    digest = hashlib.blake2b(f"{seed}:{episode_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    return "train" if u < SPLIT_FRACTIONS["train"] else "val" if u < 1 - SPLIT_FRACTIONS["test"] else "test"


def assign_split(episode_id: int, seed: int, existing: list[str]) -> str:
    """Split for a new episode given the splits already stored (each is fixed once written).

    Small datasets still get every split in order: the first episode trains, the second validates,
    the third tests; after that the hash decides.
    """
    n = len(existing) + 1
    for need, at_least in (("train", 1), ("val", 2), ("test", 3)):
        if n >= at_least and need not in existing:
            return need
    return split_of(episode_id, seed)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))  # compact: rewritten after every episode
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _read_manifest(path: Path) -> dict:
    mpath = path / "manifest.json"
    if not path.exists():
        raise PlayworldError(f"dataset {path} does not exist", "check the path, or create it with `playworld collect`")
    if not mpath.is_file():
        raise PlayworldError(
            f"{path} is not a playworld dataset (no manifest.json)",
            "pass a directory made by `playworld collect` or `playworld data import-video`",
        )
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlayworldError(f"{mpath} is corrupt: {e}", "restore it from a backup or re-collect the dataset") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PlayworldError(f"{mpath} is not a playworld dataset manifest", "pass a dataset made by `playworld collect`")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise PlayworldError(
            f"dataset {path} has manifest schema version {version}, newer than this playworld reads "
            f"(up to {SCHEMA_VERSION})",
            "upgrade playworld (pip install -U playworld) or use the playworld version that wrote it",
        )
    _check_manifest(manifest, mpath)
    return manifest


def _check_manifest(m: dict, mpath: Path) -> None:
    """The fields readers use, checked once, so a damaged or crafted manifest is one clear error."""
    fix = "restore it from a backup or re-collect the dataset"
    try:
        check_world_id(m.get("world"), f"in {mpath}")
        if type(m["resolution"]) is not int:
            raise ValueError("bad resolution")
        check_resolution(m["resolution"])
        if not (isinstance(m["fps"], (int, float)) and 0 < m["fps"] < 1e6):
            raise ValueError("bad fps")
        space = m["action_space"]
        if not isinstance(space, dict) or space.get("kind") not in ("discrete", "continuous", "none"):
            raise ValueError("bad action space")
        s = ActionSpace.from_dict(space)
        if (s.kind == "discrete" and s.n < 1) or (s.kind == "continuous" and not (s.dim == len(s.low) == len(s.high) > 0)):
            raise ValueError("bad action space")
        if not all(isinstance(x, (int, float)) for x in s.low + s.high) or not all(isinstance(x, str) for x in s.names):
            raise ValueError("bad action space")
        if not isinstance(m["episodes"], list) or not isinstance(m.get("state", {}), dict):
            raise ValueError("bad episodes")
        for e in m["episodes"]:
            files = e["files"]
            if (type(e["id"]) is not int or type(e["length"]) is not int or e["length"] < 0 or e["split"] not in SPLITS
                    or not isinstance(files, dict) or "frames.npy" not in files):
                raise ValueError("bad episode entry")
            for f in files.values():
                if (not isinstance(f["sha256"], str) or type(f["bytes"]) is not int or not isinstance(f["dtype"], str)
                        or not isinstance(f["shape"], list) or not all(type(n) is int for n in f["shape"])):
                    raise ValueError("bad file entry")
    except PlayworldError as e:
        raise PlayworldError(f"{mpath} is damaged: {e.message}", e.fix or fix) from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PlayworldError(f"{mpath} is damaged ({type(e).__name__}: {str(e)[:80]})", fix) from None


class Dataset:
    """A dataset on disk, opened read-only. Episodes load lazily and memory-mapped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: dict = _read_manifest(self.path)
        self.world: str = self.manifest["world"]
        self.resolution: int = int(self.manifest["resolution"])
        self.action_space: ActionSpace = ActionSpace.from_dict(self.manifest["action_space"])
        self.fps: float = float(self.manifest["fps"])
        self._episodes = {int(e["id"]): e for e in self.manifest["episodes"]}

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, world={self.world!r}, episodes={len(self._episodes)}, frames={self.num_frames})"

    def __len__(self) -> int:
        return len(self._episodes)

    def episode_ids(self, split: str | None = None) -> list[int]:
        if split is not None and split not in SPLITS:
            raise PlayworldError(f"unknown split {split!r}", f"choose one of {', '.join(SPLITS)}")
        return [i for i, e in self._episodes.items() if split is None or e["split"] == split]

    def episode_split(self, ep: int) -> str:
        return self._entry(ep)["split"]

    def episode_length(self, ep: int) -> int:
        return int(self._entry(ep)["length"])

    @property
    def num_frames(self) -> int:
        return sum(int(e["length"]) for e in self._episodes.values())

    @property
    def state_keys(self) -> list[str]:
        return list(self.manifest.get("state", {}))

    @cached_property
    def fingerprint(self) -> str:
        """A short id of the stored content (changes when episodes are added), for run metadata."""
        h = hashlib.sha256()
        for e in self.manifest["episodes"]:
            h.update(json.dumps([e["id"], e["files"]["frames.npy"]["sha256"]]).encode())
        return h.hexdigest()[:16]

    def episode_dir(self, ep: int) -> Path:
        return self.path / "episodes" / f"{ep:06d}"

    def _entry(self, ep: int) -> dict:
        try:
            return self._episodes[int(ep)]
        except KeyError:
            raise PlayworldError(f"dataset {self.path} has no episode {ep}", f"episodes are {_ranges(list(self._episodes))}") from None

    def _load(self, ep: int, name: str, mmap: bool) -> np.ndarray:
        path = self.episode_dir(ep) / name
        meta = self._entry(ep)["files"][name]
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise PlayworldError(f"episode file {path} is missing", f"run `playworld data verify {self.path}`") from None
        except (ValueError, OSError, EOFError) as e:
            raise PlayworldError(f"episode file {path} is corrupt or truncated ({e})", f"run `playworld data verify {self.path}`") from None
        if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
            raise PlayworldError(
                f"episode file {path} has shape {list(arr.shape)} {arr.dtype}, manifest says {meta['shape']} {meta['dtype']}",
                f"run `playworld data verify {self.path}`",
            )
        return arr

    def load_episode(self, ep: int, mmap: bool = True) -> Episode:
        """Episode `ep`; frames are memory-mapped (read on access) unless mmap=False."""
        files = self._entry(ep)["files"]
        state = {n[len("state."):-len(".npy")]: self._load(ep, n, mmap=False) for n in files if n.startswith("state.")}
        return Episode(
            frames=self._load(ep, "frames.npy", mmap=mmap),
            actions=self._load(ep, "actions.npy", mmap=False),
            rewards=self._load(ep, "rewards.npy", mmap=False),
            terminated=self._load(ep, "terminated.npy", mmap=False),
            truncated=self._load(ep, "truncated.npy", mmap=False),
            state=state,
        )

    def verify(self, progress: bool = False) -> list[str]:
        """Check every episode file's existence, size, checksum, shape and dtype. Returns the problems."""

        problems: list[str] = []
        for ep in progress_iter(list(self._episodes), "verifying", enabled=progress):
            entry = self._episodes[ep]
            for name, meta in entry["files"].items():
                path = self.episode_dir(ep) / name
                rel = path.relative_to(self.path)
                if not path.is_file():
                    problems.append(f"{rel}: missing file")
                    continue
                size = path.stat().st_size
                if size != meta["bytes"]:
                    problems.append(f"{rel}: {size} bytes, expected {meta['bytes']} (truncated or overwritten)")
                    continue
                if _sha256(path) != meta["sha256"]:
                    problems.append(f"{rel}: checksum mismatch (the file is corrupt)")
                    continue
                try:
                    arr = np.load(path, mmap_mode="r", allow_pickle=False)
                except (ValueError, OSError, EOFError) as e:
                    problems.append(f"{rel}: unreadable ({e})")
                    continue
                if list(arr.shape) != meta["shape"] or str(arr.dtype) != meta["dtype"]:
                    problems.append(f"{rel}: shape {list(arr.shape)} {arr.dtype}, expected {meta['shape']} {meta['dtype']}")
                elif arr.shape[0] != entry["length"]:
                    problems.append(f"{rel}: {arr.shape[0]} steps, episode length is {entry['length']}")
        return problems


def _ranges(ids: list[int]) -> str:
    return f"{min(ids)}..{max(ids)}" if ids else "none (the dataset is empty)"


class EpisodeWriter:
    """Appends episodes to a dataset, each atomically. Hold one per process (it locks the dataset).

    Use `create_or_append(...)` to get one, `add_episode(...)` per episode, `close()` at the end.
    """

    def __init__(self, path: Path, manifest: dict, lock_fd: int):
        self.path, self.manifest, self._lock_fd = path, manifest, lock_fd
        self.action_space = ActionSpace.from_dict(manifest["action_space"])
        self.resolution = int(manifest["resolution"])

    @property
    def next_id(self) -> int:
        return max((int(e["id"]) for e in self.manifest["episodes"]), default=-1) + 1

    def add_episode(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray | None = None,
        terminated: np.ndarray | None = None, truncated: np.ndarray | None = None,
        state: dict[str, np.ndarray] | None = None, info: dict | None = None,
    ) -> int:
        """Store one episode (arrays of length T, see the module doc); returns its id."""
        t = len(frames)
        r = self.resolution
        arrays = {
            "frames.npy": np.ascontiguousarray(frames, dtype=np.uint8),
            "actions.npy": np.ascontiguousarray(actions, dtype=self.action_space.dtype),
            "rewards.npy": np.zeros(t, np.float32) if rewards is None else np.asarray(rewards, np.float32),
            "terminated.npy": np.zeros(t, bool) if terminated is None else np.asarray(terminated, bool),
            "truncated.npy": np.zeros(t, bool) if truncated is None else np.asarray(truncated, bool),
        }
        if t < 1 or arrays["frames.npy"].shape != (t, r, r, 3):
            raise ValueError(f"frames must be (T, {r}, {r}, 3) with T >= 1, got {np.shape(frames)}")
        if arrays["actions.npy"].shape != (t, *self.action_space.shape):
            raise ValueError(f"actions must be {(t, *self.action_space.shape)}, got {arrays['actions.npy'].shape}")
        state_spec = self.manifest.setdefault("state", {})
        for key, value in (state or {}).items():
            if not _KEY_RE.match(key):
                raise ValueError(f"state key {key!r} must be letters, digits and underscores")
            value = np.asarray(value)
            if value.shape[:1] != (t,):
                raise ValueError(f"state[{key!r}] must have {t} rows, got shape {value.shape}")
            spec = {"shape": list(value.shape[1:]), "dtype": str(value.dtype)}
            if state_spec.setdefault(key, spec) != spec:
                raise ValueError(f"state[{key!r}] is {spec}, earlier episodes stored {state_spec[key]}")
            arrays[f"state.{key}.npy"] = np.ascontiguousarray(value)
        for name, a in arrays.items():
            if a.shape[0] != t:
                raise ValueError(f"{name} has {a.shape[0]} rows, frames have {t}")

        ep = self.next_id
        tmp = self.path / ".tmp" / f"{ep:06d}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = {}
        for name, a in arrays.items():
            with open(tmp / name, "wb") as f:
                np.save(f, a, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[name] = {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size,
                           "shape": list(a.shape), "dtype": str(a.dtype)}
        final = self.path / "episodes" / f"{ep:06d}"
        shutil.rmtree(final, ignore_errors=True)  # an orphan left by a crash after rename, before manifest
        os.rename(tmp, final)
        _fsync_dir(final.parent)

        splits = [e["split"] for e in self.manifest["episodes"]]
        entry = {"id": ep, "length": t, "split": assign_split(ep, self.manifest["split_seed"], splits), "files": files}
        if info:
            entry["info"] = info
        self.manifest["episodes"].append(entry)
        _write_json_atomic(self.path / "manifest.json", self.manifest)
        return ep

    def close(self) -> None:
        if self._lock_fd >= 0:
            shutil.rmtree(self.path / ".tmp", ignore_errors=True)
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def dataset(self) -> Dataset:
        return Dataset(self.path)


def create_or_append(
    path: str | Path, world: str, resolution: int, action_space: ActionSpace, fps: float,
    world_options: dict | None = None, split_seed: int = 0, source: dict | None = None,
) -> EpisodeWriter:
    """Open a dataset for writing, creating it if absent. An existing one must match world and resolution.

    `source` (e.g. the collect command's policy and seed) is appended to the manifest's history.
    """
    path = Path(path)
    check_resolution(resolution)
    if path.exists() and not path.is_dir():
        raise PlayworldError(f"{path} is a file, not a dataset directory", "choose another --out path")
    path.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise PlayworldError(f"dataset {path} is being written by another process", "wait for it to finish") from None
    try:
        manifest = _open_for_append(path, world, resolution, action_space, fps, world_options, split_seed)
    except BaseException:
        os.close(lock_fd)
        raise
    _clean_leftovers(path, manifest)
    if source:
        manifest.setdefault("history", []).append({**source, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                   "first_episode": max([e["id"] for e in manifest["episodes"]], default=-1) + 1})
    _write_json_atomic(path / "manifest.json", manifest)
    return EpisodeWriter(path, manifest, lock_fd)


def _open_for_append(path, world, resolution, action_space, fps, world_options, split_seed) -> dict:
    if not (path / "manifest.json").exists():
        stray = [p.name for p in path.iterdir() if not p.name.startswith(".") and p.name != "episodes"]
        if stray:
            raise PlayworldError(
                f"{path} is not empty and not a playworld dataset (it holds {', '.join(sorted(stray)[:3])})",
                "choose a new or empty --out directory",
            )
        return {
            "format": FORMAT, "schema_version": SCHEMA_VERSION, "world": world, "world_options": world_options or {},
            "resolution": int(resolution), "fps": float(fps), "action_space": action_space.to_dict(),
            "split_seed": int(split_seed), "split_fractions": SPLIT_FRACTIONS, "state": {}, "episodes": [],
        }
    manifest = _read_manifest(path)
    if manifest["world"] != world or int(manifest["resolution"]) != int(resolution):
        raise PlayworldError(
            f"dataset {path} holds {manifest['world']} at {manifest['resolution']}x{manifest['resolution']}, "
            f"cannot append {world} at {resolution}x{resolution}",
            "use a new --out directory, or the same world and --resolution as the dataset",
        )
    if ActionSpace.from_dict(manifest["action_space"]) != action_space:
        raise PlayworldError(
            f"dataset {path} has action space {ActionSpace.from_dict(manifest['action_space']).describe()}, "
            f"the world has {action_space.describe()}",
            "use a new --out directory",
        )
    if (manifest.get("world_options") or {}) != (world_options or {}):
        raise PlayworldError(
            f"dataset {path} was collected with world options {manifest.get('world_options')}, not {world_options}",
            "use a new --out directory for different world options (e.g. --ood)",
        )
    return manifest


def _clean_leftovers(path: Path, manifest: dict) -> None:
    """Remove what a killed writer left behind: the temp dir and episode dirs not in the manifest."""
    shutil.rmtree(path / ".tmp", ignore_errors=True)
    for stale in path.glob(".manifest.json.*.tmp"):
        stale.unlink(missing_ok=True)
    listed = {f"{int(e['id']):06d}" for e in manifest["episodes"]}
    episodes = path / "episodes"
    episodes.mkdir(exist_ok=True)
    for d in episodes.iterdir():
        if d.name not in listed:
            shutil.rmtree(d, ignore_errors=True)
