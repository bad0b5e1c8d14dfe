"""Checkpoints as a run stores them: their layout and metadata, finding them, rebuilding a network from one.

Layout (one folder per saved step, written to a temporary name then renamed, so a crash or
Ctrl-C never leaves a half-written checkpoint under its final name):

    runs/<name>/checkpoints/<step>/model.safetensors   EMA weights; what `playworld.load` uses
                                  /raw.safetensors     the optimised (non-averaged) weights
                                  /training_state.pt   optimiser, scheduler, step, RNG and loader state
    runs/<name>/checkpoints/last                       symlink to the newest <step> (a text file
                                                       holding its name where symlinks fail)

model.safetensors is self-describing: its metadata holds the schema version, the family name, the
family's resolved Config and the WorldSpec, so a checkpoint folder loads on its own. The trainer writes
them (train/checkpoint.py); everything that reads a run back comes through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model
from torch import nn

from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import Family, get_family
from playworld.options import config_to_dict
from playworld.runs.presets import make_model_config

SCHEMA = 1
"""Version of the checkpoint format; a checkpoint with a larger number needs a newer playworld."""


def weights_metadata(family: Family, model_cfg: Any, spec: WorldSpec, step: int) -> dict[str, str]:
    return {
        "playworld_schema": str(SCHEMA),
        "family": family.name,
        "config": json.dumps(config_to_dict(model_cfg)),
        "spec": json.dumps(spec.to_dict()),
        "step": str(step),
    }


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
    weights = ckpt / f"{which}.safetensors"
    meta = read_metadata(weights)
    family = get_family(meta["family"])
    try:
        saved = json.loads(meta["config"])
        saved.pop("context", None)  # checkpoints from before K moved to the WorldSpec kept it in the Config
        config = make_model_config(family, {"model": {family.name: saved}})
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
