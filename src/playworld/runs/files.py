"""A run's own files read back: config.yaml (the resolved configuration) and meta.json (what produced it).

    config = read_run_config(run_dir)    # {'data': ..., 'context': K, 'model': {family: {...}}, 'train': {...}} or None
    meta = read_run_meta(run_dir)        # {'family': ..., 'started': {...}, ...} or None

Both are checked for shape as they are read, so a damaged file (empty, truncated, not UTF-8, bad
YAML/JSON, the wrong shape) is one PlayworldError naming it and a fix that works, never a traceback
from deep inside whatever used the value. The trainer writes them (train/run.py) atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from playworld.errors import PlayworldError

CONFIG, META = "config.yaml", "meta.json"
MAX_RUN_FILE_BYTES = 16 << 20
"""a run's config.yaml or meta.json is a few KiB; anything this large is not one"""


def read_text(path: Path, fix: str) -> str:
    """The UTF-8 text of a small run file, or a PlayworldError with `fix`."""
    try:
        if path.stat().st_size > MAX_RUN_FILE_BYTES:
            raise PlayworldError(f"{path} is {path.stat().st_size} bytes, far too large for a run file", fix)
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise PlayworldError(f"{path} is damaged: not UTF-8 text ({e.reason} at byte {e.start})", fix) from None
    except OSError as e:
        raise PlayworldError(f"cannot read {path} ({e.strerror or e})", fix) from None


def _config_fix(run_dir: Path) -> str:
    return f"restore {run_dir / CONFIG} from a backup, or train a new run with another --out"


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN/config.yaml as a checked mapping, or None when the run has none."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.is_file():
        return None
    fix = _config_fix(run_dir)
    try:
        data = yaml.safe_load(read_text(path, fix))
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise PlayworldError(f"{path} is damaged: not valid YAML{at}", fix) from None
    except RecursionError:
        raise PlayworldError(f"{path} is damaged: nested too deeply", fix) from None
    return check_run_config(data, path, fix)


def check_run_config(data: Any, path: Path, fix: str) -> dict[str, Any]:
    """The shape train/config.py's `run_config_dict` writes: data, context, model {family: {...}}, train {...}."""
    def bad(what: str) -> PlayworldError:
        return PlayworldError(f"{path} is damaged: {what}", fix)

    if not isinstance(data, dict):
        raise bad("empty" if data is None else f"a {type(data).__name__}, not a mapping of data/context/model/train")
    if not isinstance(data.get("data"), str) or not data["data"]:
        raise bad("'data' (the dataset path) is missing or not text")
    context = data.get("context")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool)):
        raise bad(f"'context' is {context!r}, not a whole number")
    model = data.get("model")
    if not isinstance(model, dict) or len(model) != 1:
        raise bad("'model' must map exactly one family name to its options")
    (family, options), = model.items()
    if not isinstance(family, str) or not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise bad("'model' must map a family name to a mapping of its options")
    train = data.get("train")
    if train is None:
        train = {}
    if not isinstance(train, dict) or not all(isinstance(k, str) for k in train):
        raise bad("'train' must be a mapping of training options")
    return {**data, "model": {family: dict(options)}, "train": dict(train)}


def read_run_meta(run_dir: str | Path) -> dict[str, Any] | None:
    """RUN/meta.json as a checked mapping, or None when the run has none."""
    path = Path(run_dir) / META
    if not path.is_file():
        return None
    fix = f"restore it from a backup, or delete it (the record of what produced the run is lost): rm {path}"
    try:
        data = json.loads(read_text(path, fix))
    except (json.JSONDecodeError, RecursionError):
        raise PlayworldError(f"{path} is damaged: not valid JSON", fix) from None
    if not isinstance(data, dict):
        raise PlayworldError(f"{path} is damaged: not a JSON object", fix)
    if not isinstance(data.get("resumed", []), list):
        raise PlayworldError(f"{path} is damaged: 'resumed' is not a list", fix)
    return data
