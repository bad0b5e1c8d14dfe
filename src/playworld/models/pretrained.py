"""Reading a pretrained diffusers model from a local folder (`playworld train --init PATH`), for every family
that can start from one (clip: a LatteTransformer3DModel; diffusion: a UNet2DModel).

PATH is what diffusers' `save_pretrained` writes: a model folder (config.json and
diffusion_pytorch_model.safetensors), or a pipeline folder whose `<subfolder>/` holds the model and whose
scheduler/scheduler_config.json says how it was trained. Nothing is downloaded. Everything a user can get
wrong is a PlayworldError that names the folder and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playworld.errors import PlayworldError


def backbone_folder(path: Path, subfolder: str, backbone: str) -> Path:
    """The model folder inside `path` (itself, or its `subfolder`/); a PlayworldError if there is none."""
    path = Path(path)
    if not path.is_dir():
        raise PlayworldError(f"--init {path}: no such folder", "pass a local folder written by diffusers' save_pretrained")
    for folder in (path, path / subfolder):
        if (folder / "config.json").is_file():
            return folder
    raise PlayworldError(
        f"--init {path}: no config.json there or in {path / subfolder}",
        f"pass the folder a {backbone}'s save_pretrained wrote (or a pipeline folder with a {subfolder}/ subfolder)",
    )


def read_config(folder: Path, backbone: str, family: str) -> dict:
    """The saved config.json of `folder`, which must describe a `backbone`."""
    try:
        saved = json.loads((Path(folder) / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise PlayworldError(f"--init {folder}: config.json is not JSON ({e})", "save the model again with save_pretrained") from None
    if not isinstance(saved, dict) or saved.get("_class_name") != backbone:
        name = saved.get("_class_name") if isinstance(saved, dict) else None
        raise PlayworldError(f"--init {folder}: a {name!r}, not a {backbone}", f"the {family} family starts from a {backbone}")
    return saved


def saved_schedule(path: Path) -> dict:
    """A pipeline folder's scheduler/scheduler_config.json ({} for a model folder)."""
    file = Path(path) / "scheduler" / "scheduler_config.json"
    if not file.is_file():
        return {}
    try:
        saved = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise PlayworldError(f"--init {file}: not JSON ({e})", "save the pipeline again with save_pretrained") from None
    if not isinstance(saved, dict):
        raise PlayworldError(f"--init {file}: not a scheduler config", "save the pipeline again with save_pretrained")
    return saved


def check_schedule(saved: dict, path: Path, options: dict[str, str], config: Any) -> None:
    """A pipeline folder's scheduler config (`saved_schedule(path)`) must describe the run's training schedule:
    `options` maps each saved scheduler key to the model option that must equal it."""
    diffs = [(k, opt) for k, opt in options.items() if k in saved and saved[k] != getattr(config, opt)]
    if diffs:
        raise PlayworldError(
            f"--init {path}: the backbone was trained with another schedule ("
            + "; ".join(f"{k} {saved[k]!r}, this run {getattr(config, opt)!r}" for k, opt in diffs) + ")",
            " ".join(f"--set model.{opt}={saved[k]}" for k, opt in diffs),
        )


def load_pretrained(cls: type, folder: Path) -> Any:
    """`cls.from_pretrained(folder)` from local files only; a PlayworldError when the folder is incomplete."""
    try:
        return cls.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise PlayworldError(f"--init {folder}: diffusers could not load it ({e})",
                             "pass a complete folder written by save_pretrained (config.json and the weights)") from None
