"""Checkpoints: what a run saves, and `load_world_model`, which turns any run into a `WorldModel`.

Layout (one folder per saved step, written to a temporary name then renamed, so a crash or
Ctrl-C never leaves a half-written checkpoint under its final name):

    runs/<name>/checkpoints/<step>/model.safetensors   EMA weights; what `playworld.load` uses
                                  /raw.safetensors     the optimised (non-averaged) weights
                                  /training_state.pt   optimiser, scheduler, step, RNG and loader state
    runs/<name>/checkpoints/last                       symlink to the newest <step> (a text file
                                                       holding its name where symlinks fail)

model.safetensors is self-describing: its metadata holds the schema version, the family name, the
family's resolved Config and the WorldSpec, so a checkpoint folder loads on its own.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model
from torch import nn

from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec
from playworld.models.registry import Family, get_family

SCHEMA = 1
"""Version of the checkpoint format; a checkpoint with a larger number needs a newer playworld."""


# -- saving -----------------------------------------------------------------------------------------


def weights_metadata(family: Family, model_cfg: Any, spec: WorldSpec, step: int) -> dict[str, str]:
    from playworld.train.config import config_to_dict

    return {
        "playworld_schema": str(SCHEMA),
        "family": family.name,
        "config": json.dumps(config_to_dict(model_cfg)),
        "spec": json.dumps(spec.to_dict()),
        "step": str(step),
    }


def save_checkpoint(
    run_dir: Path, step: int, meta: dict[str, str], ema_net: nn.Module, raw_net: nn.Module,
    training_state: dict[str, Any], keep: int = 0,
) -> Path:
    """Write checkpoints/<step>/ atomically, point `last` at it, drop old ones beyond `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{step:08d}"
    tmp = root / f".tmp-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(ema_net, str(tmp / "model.safetensors"), metadata=meta)
    save_model(raw_net, str(tmp / "raw.safetensors"), metadata=meta)
    torch.save(training_state, tmp / "training_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _point_last(root, final.name)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _point_last(root: Path, name: str) -> None:
    last, tmp = root / "last", root / ".last-tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(name, tmp)
    except OSError:  # file systems without symlinks: a small file holding the folder's name
        tmp.write_text(name + "\n")
    os.replace(tmp, last)


# -- finding ----------------------------------------------------------------------------------------


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Saved checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.isdigit())


def check_run_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PlayworldError(f"run directory {run_dir} does not exist", "pass the --out folder of a `playworld train` run")
    return run_dir


def resolve_checkpoint(run_dir: str | Path, checkpoint: str | int | None = None) -> Path:
    """The checkpoint folder to use: `checkpoint` (a step number or a path) or the run's `last`."""
    run_dir = check_run_dir(run_dir)
    root = run_dir / "checkpoints"
    if checkpoint is not None:
        text = str(checkpoint)
        path = root / f"{int(text):08d}" if text.isdigit() else Path(text)
        if not path.is_dir():
            steps = ", ".join(str(int(p.name)) for p in list_checkpoints(run_dir)) or "none"
            raise PlayworldError(f"checkpoint {checkpoint} not found in {run_dir}", f"saved steps: {steps}")
        return path
    last = root / "last"
    if last.is_symlink() or last.is_dir():
        path = root / os.readlink(last) if last.is_symlink() else last
    elif last.is_file():
        path = root / last.read_text().strip()
    else:
        path = None
    if path is None or not path.is_dir():
        saved = list_checkpoints(run_dir)
        if not saved:
            raise PlayworldError(
                f"run {run_dir} has no checkpoint", "train it first (playworld train ... --out RUN) or check the path"
            )
        path = saved[-1]
    return path


# -- loading ----------------------------------------------------------------------------------------


def read_metadata(weights: Path) -> dict[str, str]:
    """The metadata of a model/raw.safetensors file, checked for schema and completeness."""
    if not weights.is_file():
        raise PlayworldError(f"checkpoint file {weights} is missing", _fix_corrupt(weights))
    try:
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise PlayworldError(f"checkpoint file {weights} is corrupt or truncated ({e})", _fix_corrupt(weights)) from None
    if "playworld_schema" not in meta or "family" not in meta:
        raise PlayworldError(f"{weights} is not a playworld checkpoint", "pass a run folder written by `playworld train`")
    schema = int(meta["playworld_schema"])
    if schema > SCHEMA:
        raise PlayworldError(
            f"checkpoint {weights} has schema {schema}, newer than this playworld understands ({SCHEMA})",
            "upgrade playworld (pip install -U playworld) to load it",
        )
    return meta


def _fix_corrupt(path: Path) -> str:
    return f"load an earlier checkpoint with --checkpoint STEP, or delete {path.parent} and resume from the one before"


def build_from_checkpoint(ckpt: Path, which: str = "model", device: str | torch.device = "cpu"):
    """Rebuild a family's network from a checkpoint folder -> (family, config, spec, net, metadata)."""
    from playworld.train.config import make_model_config

    weights = ckpt / f"{which}.safetensors"
    meta = read_metadata(weights)
    family = get_family(meta["family"])
    try:
        config = make_model_config(family, {"model": {family.name: json.loads(meta["config"])}})
        spec = WorldSpec.from_dict(json.loads(meta["spec"]))
        net = family.build(config, spec)
    except (PlayworldError, ValueError, KeyError, TypeError) as e:
        raise PlayworldError(
            f"checkpoint {weights} says model family {family.name}, but its configuration does not fit that family ({e})",
            "the checkpoint belongs to another family or another playworld version; retrain, or load it with that version",
        ) from None
    load_weights(net, weights)
    return family, config, spec, net.to(device).eval(), meta


def load_weights(net: nn.Module, weights: Path) -> None:
    """Load safetensors weights into `net`, turning every failure into a PlayworldError."""
    try:
        missing, unexpected = load_model(net, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise PlayworldError(f"cannot load weights from {weights}: {e}", _fix_corrupt(weights)) from None
    if missing or unexpected:
        raise PlayworldError(
            f"weights in {weights} do not fit the network (missing: {sorted(missing)[:3]}, unexpected: {sorted(unexpected)[:3]})",
            "the checkpoint was written by a different version of the family; retrain or use a matching playworld",
        )


def load_training_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / "training_state.pt"
    if not path.is_file():
        raise PlayworldError(f"checkpoint file {path} is missing", _fix_corrupt(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError... on a damaged file
        raise PlayworldError(f"checkpoint file {path} is corrupt or truncated ({type(e).__name__})", _fix_corrupt(path)) from None


def load_world_model(run_dir: str | Path, device: str | torch.device = "cpu", checkpoint: str | int | None = None) -> WorldModel:
    """The trained model of `run_dir` (EMA weights of its last checkpoint, or `checkpoint`) as a WorldModel."""
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    family, config, spec, net, _ = build_from_checkpoint(ckpt, "model", device)
    for p in net.parameters():
        p.requires_grad_(False)
    return family.world_model(net, config, spec)


def check_dataset_matches(spec: WorldSpec, dataset, what: str = "the run") -> None:
    """Raise a PlayworldError when `dataset` cannot feed a model with `spec` (resolution, actions)."""
    if int(dataset.resolution) != spec.resolution:
        raise PlayworldError(
            f"dataset {dataset.path if hasattr(dataset, 'path') else ''} is {dataset.resolution}x{dataset.resolution}"
            f" but {what} was trained at {spec.resolution}x{spec.resolution}",
            f"use a dataset collected with --resolution {spec.resolution}, or train a new run on this one",
        )
    have, want = dataset.action_space, spec.action_space
    if not want.accepts(have):
        raise PlayworldError(
            f"dataset actions are {have.describe()} but {what} was trained on {want.describe()}",
            "use a dataset of the same world, or train a new run on this one",
        )
