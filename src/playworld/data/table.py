"""A dataset's description on disk: the manifest (small, rewritten rarely) and the episodes table (appended).

    DATA/manifest.json     schema version, world, resolution, fps, action space, state spec, layout,
                           split seed, history: written when a dataset is created or opened for
                           writing, and when a new state key first appears; never once per episode
    DATA/episodes.jsonl    one line per episode: id, length, split, info, files (sha256, bytes, ...),
                           appended once when the episode is complete, so appending costs the same
                           at episode 5,000 as at episode 1

Schema 1 datasets keep every episode in the manifest (`manifest["episodes"]`) and have no table;
they are read as they are, and appended to as they were written (the manifest rewritten per episode).

A table line is committed when its newline is on disk. A writer killed mid-line leaves a torn last
line: readers skip it, and the next writer cuts it off before appending. A damaged line anywhere
else, or a manifest field of the wrong type, is one clear error naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from playworld.data.layout import FRAMES_FILE, LAYOUTS
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import check_resolution, check_world_id

SCHEMA_VERSION = 2
FORMAT = "playworld-dataset"
SPLITS = ("train", "val", "test")
TABLE = "episodes.jsonl"
_DAMAGED_FIX = "restore it from a backup or re-collect the dataset"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_manifest(path: Path) -> dict:
    """The manifest of the dataset at `path`, checked: one clear PlayworldError for anything a reader cannot use."""
    mpath = path / "manifest.json"
    if not path.exists():
        raise PlayworldError(f"dataset {path} does not exist", "check the path, or create it with `playworld collect`")
    if not mpath.is_file():
        raise PlayworldError(
            f"{path} is not a playworld dataset (no manifest.json)",
            "pass a directory made by `playworld collect`, `playworld data import-video` or `playworld data import-lerobot`",
        )
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlayworldError(f"{mpath} is corrupt: {e}", _DAMAGED_FIX) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PlayworldError(f"{mpath} is not a playworld dataset manifest", "pass a dataset made by `playworld collect`")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise PlayworldError(
            f"dataset {path} has manifest schema version {version}, newer than this playworld reads "
            f"(up to {SCHEMA_VERSION})",
            "upgrade playworld (pip install -U playworld) or use the playworld version that wrote it",
        )
    _check(lambda: check_header(manifest), mpath)
    if version < 2:
        _check(lambda: [check_entry(e) for e in _as_list(manifest["episodes"])], mpath)
    return manifest


def _check(fn, where: Path) -> None:
    try:
        fn()
    except PlayworldError as e:
        raise PlayworldError(f"{where} is damaged: {e.message}", e.fix or _DAMAGED_FIX) from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise PlayworldError(f"{where} is damaged ({type(e).__name__}: {str(e)[:80]})", _DAMAGED_FIX) from None


def _as_list(x) -> list:
    if not isinstance(x, list):
        raise ValueError("bad episodes")
    return x


def check_header(m: dict) -> None:
    """The manifest fields readers use; raises ValueError/KeyError/TypeError (or PlayworldError) when one is bad."""
    check_world_id(m.get("world"), "in the manifest")
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
    if not isinstance(m.get("state", {}), dict):
        raise ValueError("bad state spec")
    if m["schema_version"] >= 2 and m.get("layout") not in LAYOUTS:
        raise ValueError(f"unknown layout {str(m.get('layout'))[:40]!r}")


def check_entry(e: dict) -> None:
    """One episode's entry (a table line, or a schema-1 manifest's episodes[i])."""
    files = e["files"]
    if (type(e["id"]) is not int or e["id"] < 0 or type(e["length"]) is not int or e["length"] < 0
            or e["split"] not in SPLITS or not isinstance(files, dict) or not any(f in files for f in FRAMES_FILE.values())):
        raise ValueError("bad episode entry")
    for f in files.values():
        if not isinstance(f, dict) or not isinstance(f["sha256"], str) or type(f["bytes"]) is not int:
            raise ValueError("bad file entry")
        if "shape" in f and (not isinstance(f["shape"], list) or not all(type(n) is int for n in f["shape"])
                             or not isinstance(f["dtype"], str)):
            raise ValueError("bad file entry")


def read_table(path: Path) -> tuple[list[dict], int]:
    """The committed entries of DATA/episodes.jsonl and the byte length they end at (a torn tail lies past it)."""
    tpath = path / TABLE
    try:
        data = tpath.read_bytes()
    except FileNotFoundError:
        return [], 0
    entries, end, seen = [], 0, set()
    lines = data.split(b"\n")
    for i, line in enumerate(lines[:-1]):  # lines[-1] has no newline: empty, or a torn write
        try:
            entry = json.loads(line)
            check_entry(entry)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            if i == len(lines) - 2 and not lines[-1]:
                break  # a last line of garbage (a write cut short by a power loss): not committed
            raise PlayworldError(f"{tpath} is damaged at line {i + 1} ({type(e).__name__})", _DAMAGED_FIX) from None
        if entry["id"] in seen:
            raise PlayworldError(f"{tpath} lists episode {entry['id']} twice (line {i + 1})", _DAMAGED_FIX)
        seen.add(entry["id"])
        entries.append(entry)
        end += len(line) + 1
    return entries, end


class TableAppender:
    """Appends entries to DATA/episodes.jsonl, one durable line each. The dataset's lock must be held."""

    def __init__(self, path: Path, committed_bytes: int):
        self.path = path / TABLE
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size > committed_bytes:  # a torn line left by a killed writer
            os.ftruncate(self._fd, committed_bytes)
            os.fsync(self._fd)

    def append(self, entry: dict) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
