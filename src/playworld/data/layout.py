"""The files of one episode directory, in either layout: writing them, reading them, checking them.

    compressed (the default):  frames.chunks   (T, H, W, 3) uint8 as zstd chunks (`playworld.data.chunks`)
                               arrays.npz      actions, rewards, terminated, truncated, state.<key>:
                                               numpy's own zip of .npy files, deflated, exact
    raw (schema 1's layout):   frames.npy (memory-mapped on read), actions.npy, rewards.npy,
                               terminated.npy, truncated.npy, state.<key>.npy

Each file's entry in the episodes table holds its sha256 and size; `frames.chunks` also holds the
sha256 of the decoded frames (`content_sha256`), so `check_files` proves the frames read back are
bit for bit the frames written; `arrays.npz` lists its arrays' shapes and dtypes.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from playworld.data import chunks
from playworld.errors import PlayworldError

COMPRESSED, RAW = "compressed", "raw"
LAYOUTS = (COMPRESSED, RAW)
FRAMES_FILE = {COMPRESSED: "frames.chunks", RAW: "frames.npy"}
ARRAYS_FILE = "arrays.npz"
SMALL = ("actions", "rewards", "terminated", "truncated")


@dataclass
class Episode:
    frames: np.ndarray  # (T, H, W, 3) uint8: a read-only memory map (raw) or ChunkedFrames (compressed), read on access
    actions: np.ndarray  # (T,) int64 or (T, dim) float32
    rewards: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    state: Mapping[str, np.ndarray] = field(default_factory=dict)  # key -> (T, ...); compressed: read on first use

    def __len__(self) -> int:
        return len(self.frames)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _write(path: Path, data: bytes | None = None, save=None) -> dict:
    with open(path, "wb") as f:
        if save is not None:
            save(f)
        else:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def layout_of(files: dict) -> str:
    return COMPRESSED if FRAMES_FILE[COMPRESSED] in files else RAW


def write_files(folder: Path, arrays: dict[str, np.ndarray], layout: str, level: int = chunks.DEFAULT_LEVEL) -> dict:
    """Write an episode's arrays (`frames`, the SMALL ones, `state.<key>`) into `folder`, each file synced.

    Returns the episode's `files` entry: per file its sha256, bytes, and what it holds."""
    if layout == RAW:
        files = {}
        for name, a in arrays.items():
            meta = _write(folder / f"{name}.npy", save=lambda f, a=a: np.save(f, a, allow_pickle=False))
            files[f"{name}.npy"] = {**meta, "shape": list(a.shape), "dtype": str(a.dtype)}
        return files
    frames = arrays["frames"]
    blob, header = chunks.encode(frames, level)
    meta = _write(folder / FRAMES_FILE[COMPRESSED], blob)
    files = {FRAMES_FILE[COMPRESSED]: {**meta, "shape": list(frames.shape), "dtype": str(frames.dtype), "codec": header["codec"],
                                       "level": header["level"], "chunk": header["chunk"],
                                       "content_sha256": hashlib.sha256(frames.tobytes()).hexdigest()}}
    small = {name: a for name, a in arrays.items() if name != "frames"}
    meta = _write(folder / ARRAYS_FILE, save=lambda f: np.savez_compressed(f, allow_pickle=False, **small))
    files[ARRAYS_FILE] = {**meta, "arrays": {n: {"shape": list(a.shape), "dtype": str(a.dtype)} for n, a in small.items()}}
    return files


def _shape_error(path: Path, got: np.ndarray, want: dict, fix: str) -> PlayworldError:
    return PlayworldError(f"episode file {path} has shape {list(got.shape)} {got.dtype}, the episodes table says "
                          f"{want['shape']} {want['dtype']}", fix)


def _matches(a, want: dict) -> bool:
    return list(a.shape) == want["shape"] and str(a.dtype) == want["dtype"]


def _load_npy(path: Path, meta: dict, mmap: bool, fix: str) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise PlayworldError(f"episode file {path} is missing", fix) from None
    except (ValueError, OSError, EOFError) as e:
        raise PlayworldError(f"episode file {path} is corrupt or truncated ({e})", fix) from None
    if not _matches(arr, meta):
        raise _shape_error(path, arr, meta, fix)
    return arr


def _load_npz(path: Path, members: dict, fix: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {name: z[name] for name in members}
    except FileNotFoundError:
        raise PlayworldError(f"episode file {path} is missing", fix) from None
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise PlayworldError(f"episode file {path} is corrupt or truncated ({type(e).__name__}: {e})", fix) from None
    for name, a in out.items():
        if not _matches(a, members[name]):
            raise _shape_error(path, a, members[name], fix)
    return out


class LazyState(Mapping):
    """An episode's state arrays from its arrays.npz, read on first use (all keys at once). Training's
    windows never touch the state, and explorer's (coin positions per frame) outweighs the rest."""

    def __init__(self, path: Path, members: dict, fix: str):
        self._path, self._members, self._fix = path, members, fix
        self._arrays: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {n[len("state."):]: a for n, a in _load_npz(self._path, self._members, self._fix).items()}
        return self._arrays

    def __getitem__(self, key: str) -> np.ndarray:
        return self._load()[key]

    def __iter__(self):
        return (n[len("state."):] for n in self._members)

    def __len__(self) -> int:
        return len(self._members)


def read_episode(folder: Path, files: dict, mmap: bool, fix: str) -> Episode:
    """The episode stored in `folder` as `files` (its table entry) describes; problems are PlayworldErrors ending in `fix`.

    With `mmap` (the default of `Dataset.load_episode`) frames are read on access and compressed
    episodes read their state on first use; without it everything is read now."""
    if layout_of(files) == RAW:
        arrays = {n[: -len(".npy")]: _load_npy(folder / n, meta, mmap and n == "frames.npy", fix) for n, meta in files.items()}
        state = {n[len("state."):]: a for n, a in arrays.items() if n.startswith("state.")}
    else:
        meta = files[FRAMES_FILE[COMPRESSED]]
        frames = chunks.ChunkedFrames(folder / FRAMES_FILE[COMPRESSED], fix)
        if list(frames.shape) != meta["shape"] or str(frames.dtype) != meta["dtype"]:
            raise _shape_error(frames.path, frames, meta, fix)
        members = files[ARRAYS_FILE]["arrays"]
        small = {n: m for n, m in members.items() if not n.startswith("state.")}
        arrays = {"frames": frames if mmap else np.asarray(frames), **_load_npz(folder / ARRAYS_FILE, small, fix)}
        state = LazyState(folder / ARRAYS_FILE, {n: m for n, m in members.items() if n.startswith("state.")}, fix)
        if not mmap:
            state = dict(state)
    return Episode(frames=arrays["frames"], actions=arrays["actions"], rewards=arrays["rewards"],
                   terminated=arrays["terminated"], truncated=arrays["truncated"], state=state)


def check_files(folder: Path, files: dict, length: int, root: Path) -> list[str]:
    """Every file of one episode against its entry: existence, size, sha256, then what it holds. Problems as text."""
    problems = []
    for name, meta in files.items():
        path = folder / name
        rel = path.relative_to(root)
        if not path.is_file():
            problems.append(f"{rel}: missing file")
            continue
        size = path.stat().st_size
        if size != meta["bytes"]:
            problems.append(f"{rel}: {size} bytes, expected {meta['bytes']} (truncated or overwritten)")
            continue
        if sha256_file(path) != meta["sha256"]:
            problems.append(f"{rel}: checksum mismatch (the file is corrupt)")
            continue
        problem = _check_content(path, name, meta, length)
        if problem:
            problems.append(f"{rel}: {problem}")
    return problems


def _check_content(path: Path, name: str, meta: dict, length: int) -> str | None:
    try:
        if name.endswith(".npy"):
            arrays = {name: np.load(path, mmap_mode="r", allow_pickle=False)}
            want = {name: meta}
        elif name == ARRAYS_FILE:
            arrays, want = _load_npz(path, meta["arrays"], ""), meta["arrays"]
        else:
            frames = chunks.ChunkedFrames(path)
            problem = frames.check()
            if problem:
                return problem
            if hashlib.sha256(np.asarray(frames).tobytes()).hexdigest() != meta["content_sha256"]:
                return "decoded frames differ from the frames written (not lossless)"
            arrays, want = {name: frames}, {name: meta}
    except PlayworldError as e:
        return e.message
    except (ValueError, OSError, EOFError) as e:
        return f"unreadable ({e})"
    for n, a in arrays.items():
        if not _matches(a, want[n]):
            return f"{n}: shape {list(a.shape)} {a.dtype}, expected {want[n]['shape']} {want[n]['dtype']}"
        if a.shape[0] != length:
            return f"{n}: {a.shape[0]} steps, episode length is {length}"
    return None
