"""The episode store: a directory per episode, a small manifest, and an append-only episodes table.

    DATA/manifest.json                  schema version, world, action space, resolution, fps, layout, ...
    DATA/episodes.jsonl                 one line per episode: id, length, split, files (sha256, bytes, ...)
    DATA/episodes/000042/frames.chunks  (T, H, W, 3) uint8 as zstd chunks (layout "compressed", the default)
                         arrays.npz     actions, rewards, terminated, truncated, state.<key> (exact)
    DATA/episodes/000042/frames.npy ... one .npy per array (layout "raw", schema 1's; frames memory-mapped)

(`table.py` describes the manifest and the table, `layout.py` the episode files, `chunks.py` the frames.)
actions[t] led into frames[t]; rewards[t] was received on arriving there (`playworld.data.batch`).

Crash safety: an episode is written into DATA/.tmp/ and renamed into episodes/ only when complete;
then its line is appended to the table and synced. A process killed at any moment therefore loses
at most the episode in flight; leftovers (.tmp, an episode directory the table does not list, a
torn last line) are ignored by readers and cleaned by the next writer. One writer at a time
(DATA/.lock). Schema-1 datasets (every episode in manifest.json, raw files) open unchanged and are
appended to as they were written; `playworld data convert` moves a dataset between layouts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from functools import cached_property
from pathlib import Path

import numpy as np

from playworld.data import chunks
from playworld.data.layout import COMPRESSED, FRAMES_FILE, LAYOUTS, RAW, Episode, check_files, read_episode, write_files
from playworld.data.progress import progress_iter
from playworld.data.table import (
    FORMAT,
    SCHEMA_VERSION,
    SPLITS,
    TABLE,
    TableAppender,
    fsync_dir,
    read_manifest,
    read_table,
    write_json_atomic,
)
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import check_resolution

__all__ = ["Dataset", "Episode", "EpisodeWriter", "create_or_append", "split_of", "assign_split", "SCHEMA_VERSION", "FORMAT",
           "SPLITS", "SPLIT_FRACTIONS", "DEFAULT_LAYOUT", "LAYOUTS"]

SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
DEFAULT_LAYOUT = COMPRESSED
_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")


def split_of(episode_id: int, seed: int) -> str:
    """The hash split of an episode: a fixed function of (id, seed), so appending never moves one."""
    digest = hashlib.blake2b(f"{seed}:{episode_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    return "train" if u < SPLIT_FRACTIONS["train"] else "val" if u < 1 - SPLIT_FRACTIONS["test"] else "test"


def assign_split(episode_id: int, seed: int, existing) -> str:
    """Split for a new episode given the splits already stored (each is fixed once written).

    Small datasets still get every split in order: the first episode trains, the second validates,
    the third tests; after that the hash decides. `existing` needs only `len` and `in`.
    """
    n = len(existing) + 1
    for need, at_least in (("train", 1), ("val", 2), ("test", 3)):
        if n >= at_least and need not in existing:
            return need
    return split_of(episode_id, seed)


class _SplitsSoFar:
    """The stored splits as `assign_split` reads them (how many, which occur), updated in O(1)."""

    def __init__(self, splits):
        self.count, self.present = 0, set()
        for s in splits:
            self.add(s)

    def add(self, split: str) -> None:
        self.count += 1
        self.present.add(split)

    def __len__(self) -> int:
        return self.count

    def __contains__(self, split) -> bool:
        return split in self.present


def _entries(path: Path, manifest: dict) -> tuple[list[dict], int]:
    """The episode entries (schema 1: the manifest's; schema 2: the table's) and the table's committed length."""
    if manifest["schema_version"] < 2:
        return manifest["episodes"], 0
    return read_table(path)


class Dataset:
    """A dataset on disk, opened read-only. Episodes load lazily (frames memory-mapped or decoded on access)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: dict = read_manifest(self.path)
        self.world: str = self.manifest["world"]
        self.resolution: int = int(self.manifest["resolution"])
        self.action_space: ActionSpace = ActionSpace.from_dict(self.manifest["action_space"])
        self.fps: float = float(self.manifest["fps"])
        self.layout: str = self.manifest.get("layout", RAW)
        self.entries: list[dict] = _entries(self.path, self.manifest)[0]
        self._episodes = {int(e["id"]): e for e in self.entries}

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, world={self.world!r}, episodes={len(self._episodes)}, frames={self.num_frames})"

    def __len__(self) -> int:
        return len(self._episodes)

    def episode_ids(self, split: str | None = None) -> list[int]:
        if split is not None and split not in SPLITS:
            raise PlayworldError(f"unknown split {split!r}", f"choose one of {', '.join(SPLITS)}")
        return [i for i, e in self._episodes.items() if split is None or e["split"] == split]

    def episode_split(self, ep: int) -> str:
        return self.entry(ep)["split"]

    def episode_length(self, ep: int) -> int:
        return int(self.entry(ep)["length"])

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
        for e in self.entries:
            frames = e["files"].get(FRAMES_FILE[COMPRESSED]) or e["files"][FRAMES_FILE[RAW]]
            h.update(json.dumps([e["id"], frames["sha256"]]).encode())
        return h.hexdigest()[:16]

    def episode_dir(self, ep: int) -> Path:
        return self.path / "episodes" / f"{ep:06d}"

    def entry(self, ep: int) -> dict:
        """Episode `ep`'s table entry: id, length, split, files, optional info."""
        try:
            return self._episodes[int(ep)]
        except KeyError:
            raise PlayworldError(f"dataset {self.path} has no episode {ep}", f"episodes are {_ranges(list(self._episodes))}") from None

    def load_episode(self, ep: int, mmap: bool = True) -> Episode:
        """Episode `ep`; frames are read on access (memory-mapped or decoded by chunk) unless mmap=False."""
        return read_episode(self.episode_dir(ep), self.entry(ep)["files"], mmap, f"run `playworld data verify {self.path}`")

    def verify(self, progress: bool = False) -> list[str]:
        """Check every episode file's existence, size, checksum and content (shape, dtype, length; compressed
        frames decoded and compared with the hash of the frames written). Returns the problems."""
        problems: list[str] = []
        for ep in progress_iter(list(self._episodes), "verifying", enabled=progress):
            entry = self._episodes[ep]
            problems += check_files(self.episode_dir(ep), entry["files"], int(entry["length"]), self.path)
        return problems


def _ranges(ids: list[int]) -> str:
    return f"{min(ids)}..{max(ids)}" if ids else "none (the dataset is empty)"


class EpisodeWriter:
    """Appends episodes to a dataset, each atomically. Hold one per process (it locks the dataset).

    Use `create_or_append(...)` to get one, `add_episode(...)` per episode, `close()` at the end.
    """

    def __init__(self, path: Path, manifest: dict, lock_fd: int, entries: list[dict], committed: int):
        self.path, self.manifest, self._lock_fd = path, manifest, lock_fd
        self.action_space = ActionSpace.from_dict(manifest["action_space"])
        self.resolution = int(manifest["resolution"])
        self.layout = manifest.get("layout", RAW)
        self.level = int(manifest.get("frames", {}).get("level", chunks.DEFAULT_LEVEL))
        self._next_id = max((int(e["id"]) for e in entries), default=-1) + 1
        self._splits = _SplitsSoFar(e["split"] for e in entries)
        self._table = TableAppender(path, committed) if manifest["schema_version"] >= 2 else None

    @property
    def next_id(self) -> int:
        return self._next_id

    def _arrays(self, frames, actions, rewards, terminated, truncated, state) -> dict[str, np.ndarray]:
        """The episode's arrays, checked against the dataset; a new state key is added to the manifest."""
        t, r = len(frames), self.resolution
        arrays = {
            "frames": np.ascontiguousarray(frames, dtype=np.uint8),
            "actions": np.ascontiguousarray(actions, dtype=self.action_space.dtype),
            "rewards": np.zeros(t, np.float32) if rewards is None else np.asarray(rewards, np.float32),
            "terminated": np.zeros(t, bool) if terminated is None else np.asarray(terminated, bool),
            "truncated": np.zeros(t, bool) if truncated is None else np.asarray(truncated, bool),
        }
        if t < 1 or arrays["frames"].shape != (t, r, r, 3):
            raise ValueError(f"frames must be (T, {r}, {r}, 3) with T >= 1, got {np.shape(frames)}")
        if arrays["actions"].shape != (t, *self.action_space.shape):
            raise ValueError(f"actions must be {(t, *self.action_space.shape)}, got {arrays['actions'].shape}")
        state_spec, new_keys = self.manifest.setdefault("state", {}), False
        for key, value in (state or {}).items():
            if not _KEY_RE.match(key):
                raise ValueError(f"state key {key!r} must be letters, digits and underscores")
            value = np.asarray(value)
            if value.shape[:1] != (t,):
                raise ValueError(f"state[{key!r}] must have {t} rows, got shape {value.shape}")
            spec = {"shape": list(value.shape[1:]), "dtype": str(value.dtype)}
            if key not in state_spec:
                state_spec[key], new_keys = spec, True
            elif state_spec[key] != spec:
                raise ValueError(f"state[{key!r}] is {spec}, earlier episodes stored {state_spec[key]}")
            arrays[f"state.{key}"] = np.ascontiguousarray(value)
        for name, a in arrays.items():
            if a.shape[0] != t:
                raise ValueError(f"{name} has {a.shape[0]} rows, frames have {t}")
        if new_keys and self._table is not None:  # the spec is on disk before any episode that uses it
            self.save_manifest()
        return arrays

    def save_manifest(self) -> None:
        """Rewrite manifest.json (atomically) after changing `self.manifest`'s dataset-level fields."""
        write_json_atomic(self.path / "manifest.json", self.manifest)

    def add_episode(
        self, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray | None = None,
        terminated: np.ndarray | None = None, truncated: np.ndarray | None = None,
        state: dict[str, np.ndarray] | None = None, info: dict | None = None, split: str | None = None,
    ) -> int:
        """Store one episode (arrays of length T, see the module doc); returns its id.

        `split` keeps a split chosen elsewhere (a converted dataset's); by default it is assigned."""
        arrays = self._arrays(frames, actions, rewards, terminated, truncated, state)
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        ep = self._next_id
        tmp = self.path / ".tmp" / f"{ep:06d}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = write_files(tmp, arrays, self.layout, self.level)
        final = self.path / "episodes" / f"{ep:06d}"
        shutil.rmtree(final, ignore_errors=True)  # an orphan left by a crash after rename, before the table line
        os.rename(tmp, final)
        fsync_dir(final.parent)

        split = split or assign_split(ep, self.manifest["split_seed"], self._splits)
        entry = {"id": ep, "length": len(arrays["frames"]), "split": split, "files": files}
        if info:
            entry["info"] = info
        if self._table is not None:
            self._table.append(entry)
        else:  # schema 1: the manifest holds every episode
            self.manifest["episodes"].append(entry)
            write_json_atomic(self.path / "manifest.json", self.manifest)
        self._splits.add(split)
        self._next_id += 1
        return ep

    def close(self) -> None:
        if self._lock_fd >= 0:
            if self._table is not None:
                self._table.close()
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
    layout: str | None = None, level: int | None = None,
) -> EpisodeWriter:
    """Open a dataset for writing, creating it if absent. An existing one must match world and resolution.

    `layout` ("compressed", the default, or "raw") applies to a new dataset; an existing one keeps its
    own (None accepts it). `level` is the zstd level of compressed frames. `source` (e.g. the collect
    command's policy and seed) is appended to the manifest's history.
    """
    path = Path(path)
    check_resolution(resolution)
    if layout is not None and layout not in LAYOUTS:
        raise PlayworldError(f"unknown dataset layout {layout!r}", f"choose one of {', '.join(LAYOUTS)}")
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
        manifest = _open_for_append(path, world, resolution, action_space, fps, world_options, split_seed, layout, level)
        entries, committed = _entries(path, manifest)
        _clean_leftovers(path, entries)
        if source:
            manifest.setdefault("history", []).append({**source, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                       "first_episode": max([e["id"] for e in entries], default=-1) + 1})
        write_json_atomic(path / "manifest.json", manifest)
        return EpisodeWriter(path, manifest, lock_fd, entries, committed)
    except BaseException:
        os.close(lock_fd)
        raise


def new_manifest(world: str, resolution: int, action_space: ActionSpace, fps: float, world_options: dict | None,
                 split_seed: int, layout: str | None, level: int | None) -> dict:
    layout = layout or DEFAULT_LAYOUT
    manifest = {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "world": world, "world_options": world_options or {},
        "resolution": int(resolution), "fps": float(fps), "action_space": action_space.to_dict(),
        "split_seed": int(split_seed), "split_fractions": SPLIT_FRACTIONS, "state": {}, "layout": layout,
        "episodes_table": TABLE,
    }
    if layout == COMPRESSED:
        manifest["frames"] = {"codec": chunks.CODEC, "level": int(level or chunks.DEFAULT_LEVEL)}
    return manifest


def _open_for_append(path, world, resolution, action_space, fps, world_options, split_seed, layout, level) -> dict:
    if not (path / "manifest.json").exists():
        stray = [p.name for p in path.iterdir() if not p.name.startswith(".") and p.name not in ("episodes", TABLE)]
        if stray:
            raise PlayworldError(
                f"{path} is not empty and not a playworld dataset (it holds {', '.join(sorted(stray)[:3])})",
                "choose a new or empty --out directory",
            )
        (path / TABLE).unlink(missing_ok=True)  # a table left by a writer killed before its first manifest
        return new_manifest(world, resolution, action_space, fps, world_options, split_seed, layout, level)
    manifest = read_manifest(path)
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
    have = manifest.get("layout", RAW)
    if layout is not None and layout != have:
        raise PlayworldError(f"dataset {path} stores its episodes {have}, not {layout}",
                             f"append without --layout, or convert it first: "
                             f"playworld data convert {path} --out NEW --layout {layout}")
    return manifest


def _clean_leftovers(path: Path, entries: list[dict]) -> None:
    """Remove what a killed writer left behind: the temp dir and episode dirs the table does not list."""
    shutil.rmtree(path / ".tmp", ignore_errors=True)
    for stale in path.glob(".manifest.json.*.tmp"):
        stale.unlink(missing_ok=True)
    listed = {f"{int(e['id']):06d}" for e in entries}
    episodes = path / "episodes"
    episodes.mkdir(exist_ok=True)
    for d in episodes.iterdir():
        if d.name not in listed:
            shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def building(out: str | Path):
    """Build a new folder (a converted or imported dataset, an export) beside `out` and rename it to `out`
    only when complete: a command that fails half-way leaves nothing at `out`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PlayworldError(f"{out} already exists", "choose a new --out directory (this command writes a new one)")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        yield stage
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(stage, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def stored_bytes(entry: dict) -> int:
    """The bytes an episode's files hold (from its entry; no file is opened)."""
    return sum(int(meta["bytes"]) for meta in entry["files"].values())
