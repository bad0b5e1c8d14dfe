"""Checkpoints as a run stores them: their layout and metadata, finding them, checking them, rebuilding a network.

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

Integrity: each .safetensors file's metadata holds `tensors_sha256`, a digest of its tensors (names,
dtypes, shapes, bytes) and its other metadata, and `training_state_sha256`, the SHA-256 of the
training_state.pt saved beside it. Loading checks both, and that every weight is finite, so a flipped
bit or a NaN is refused with the file's name before anything trains on it or plays it. (Checkpoints
from before the digests load unchecked, but still must be finite.) A folder missing one of the three
files (a kill while old checkpoints were being removed) is not listed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model
from torch import nn

from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import Family, get_family
from playworld.options import config_to_dict
from playworld.runs.presets import make_model_config
from playworld.worlds.base import check_world_id

SCHEMA = 1
"""Version of the checkpoint format; a checkpoint with a larger number needs a newer playworld."""
FILES = ("model.safetensors", "raw.safetensors", "training_state.pt")
"""what a complete checkpoint folder holds"""
DIGEST, STATE_DIGEST = "tensors_sha256", "training_state_sha256"


def weights_metadata(family: Family, model_cfg: Any, spec: WorldSpec, step: int) -> dict[str, str]:
    return {
        "playworld_schema": str(SCHEMA),
        "family": family.name,
        "config": json.dumps(config_to_dict(model_cfg)),
        "spec": json.dumps(spec.to_dict()),
        "step": str(step),
    }


def tensors_digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over a weights file's metadata (but the digest itself) and its tensors' names, dtypes,
    shapes and bytes: what `tensors_sha256` holds."""
    h = hashlib.sha256()
    for key in sorted(metadata):
        if key != DIGEST:
            h.update(json.dumps([key, metadata[key]]).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- finding ----------------------------------------------------------------------------------------


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Saved checkpoint folders of a run, oldest first; folders missing one of `FILES` are left out."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name.isdigit()
                  and all((p / f).is_file() for f in FILES))


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
    path = None
    try:
        if last.is_symlink():
            name = os.readlink(last)
        elif last.is_file():
            name = last.read_bytes()[:64].decode("ascii").strip()
        else:
            name = last.name if last.is_dir() else ""
        path = root / name if name.isdigit() or (name == "last" and last.is_dir()) else None  # a step of this run only
    except (OSError, UnicodeDecodeError):  # a damaged pointer: fall back to the newest complete folder
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
    schema = meta["playworld_schema"]
    if not schema.isdigit():
        raise PlayworldError(f"checkpoint file {weights} is corrupt (schema {schema[:20]!r})", _fix_corrupt(weights))
    schema = int(schema)
    if schema > SCHEMA:
        raise PlayworldError(
            f"checkpoint {weights} has schema {schema}, newer than this playworld understands ({SCHEMA})",
            "upgrade playworld (pip install -U playworld) to load it",
        )
    return meta


def _fix_corrupt(path: Path) -> str:
    """A fix that works as printed: delete the damaged checkpoint, and the run falls back to the one before."""
    ckpt = path.parent
    run = ckpt.parent.parent
    earlier = [p for p in list_checkpoints(run) if p.name < ckpt.name] if ckpt.name.isdigit() else []
    if not earlier:
        return (f"{run} has no checkpoint before it; train the run again: rm -r {run / 'checkpoints'}, then the "
                "`playworld train` command that made it (meta.json's started.command)")
    step = int(earlier[-1].name)
    return (f"delete it and the run falls back to step {step}: rm -r {ckpt} (train --resume, rollout and dream "
            f"can also pick a step: --checkpoint {step})")


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
    except (PlayworldError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise PlayworldError(
            f"checkpoint {weights} says model family {family.name}, but its configuration does not fit that family ({e})",
            "the checkpoint belongs to another family or another playworld version; retrain, or load it with that version",
        ) from None
    if spec.world:  # a world id from a file: never one that makes Gymnasium import a module
        check_world_id(spec.world, f"the world {weights} was trained on")
    load_weights(net, weights)
    return family, config, spec, net.to(device).eval(), meta


def verify_weights(weights: Path) -> None:
    """Check a weights file against the digest saved in it (files from before digests pass unchecked)."""
    try:
        tensors = load_file(str(weights))
        with safe_open(str(weights), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise PlayworldError(f"checkpoint file {weights} is corrupt or truncated ({e})", _fix_corrupt(weights)) from None
    if DIGEST in meta and tensors_digest(tensors, meta) != meta[DIGEST]:
        raise PlayworldError(
            f"checkpoint file {weights} is corrupt: its weights do not match the checksum saved with them", _fix_corrupt(weights)
        )


def check_finite(net: nn.Module, weights: Path) -> None:
    """Refuse weights holding NaN or infinity (a flipped exponent bit, or a run saved after diverging)."""
    for name, t in net.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise PlayworldError(f"checkpoint file {weights} holds NaN or infinite weights (in {name})", _fix_corrupt(weights))


def load_weights(net: nn.Module, weights: Path) -> None:
    """Load safetensors weights into `net` after checking them, turning every failure into a PlayworldError."""
    verify_weights(weights)
    try:
        missing, unexpected = load_model(net, str(weights), strict=False)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise PlayworldError(f"cannot load weights from {weights}: {e}", _fix_corrupt(weights)) from None
    if missing or unexpected:
        raise PlayworldError(
            f"weights in {weights} do not fit the network (missing: {sorted(missing)[:3]}, unexpected: {sorted(unexpected)[:3]})",
            "the checkpoint was written by a different version of the family; retrain or use a matching playworld",
        )
    check_finite(net, weights)


def load_training_state(ckpt: Path) -> dict[str, Any]:
    """training_state.pt of a checkpoint folder, checked against the SHA-256 its raw.safetensors holds."""
    path = ckpt / "training_state.pt"
    if not path.is_file():
        raise PlayworldError(f"checkpoint file {path} is missing", _fix_corrupt(path))
    want = read_metadata(ckpt / "raw.safetensors").get(STATE_DIGEST)
    if want is not None and file_sha256(path) != want:
        raise PlayworldError(f"checkpoint file {path} is corrupt: it does not match the checksum saved with it",
                             _fix_corrupt(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError... on a damaged file
        raise PlayworldError(f"checkpoint file {path} is corrupt or truncated ({type(e).__name__})", _fix_corrupt(path)) from None
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "rng", "loader"} <= set(state):
        raise PlayworldError(f"checkpoint file {path} is not a playworld training state", _fix_corrupt(path))
    return state
