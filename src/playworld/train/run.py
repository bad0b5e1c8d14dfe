"""Setting up a run: resolve its configuration, open its data, write config.yaml and meta.json.

A fresh run resolves  family Config / TrainConfig defaults <- preset <- `--set` overrides, and K
(the context length) from `--set model.context=K` <- the preset's `context:` <- DEFAULT_CONTEXT;
from then on K is the run's WorldSpec.context. A resumed run reads its own config.yaml back and its
WorldSpec from the checkpoint; only `train.*` values may change (`--set`, `--steps`, `--minutes`),
and the dataset must still fit the checkpoint's WorldSpec.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from playworld.atomic import clean_temporaries, write_atomic
from playworld.compute import resolve_precision
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import Family, get_family
from playworld.options import config_to_dict, parse_sets
from playworld.runs.checkpoints import check_run_dir, list_checkpoints, read_metadata, resolve_checkpoint
from playworld.runs.files import CONFIG, META, read_run_config, read_run_meta
from playworld.runs.load import check_dataset_matches, open_dataset
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.train.config import TrainConfig, make_train_config, run_config_dict, validate

DEFAULT_FAMILY = "diffusion"
DEFAULT_PRESET = "small"


@dataclass
class RunPlan:
    run_dir: Path
    family: Family
    model_config: Any
    train_config: TrainConfig
    dataset: Any
    data_path: Path
    """the dataset's absolute path (what config.yaml stores, so a resume from any folder finds it)"""
    spec: WorldSpec
    resume_from: Path | None
    """the checkpoint folder to continue from (None for a fresh run)"""
    meta: dict | None = None
    """the run's meta.json as read back on resume (None for a fresh run, or a resumed one without it)"""


def prepare_run(
    run_dir: Path, data, model: str | None, preset: str | None, sets: list[str] | None,
    steps: int | None, minutes: float | None, resume: bool, checkpoint: str | int | None = None,
) -> RunPlan:
    """Everything a run needs, checked before anything is written. `minutes` 0 (as train.minutes=0) means no
    time budget (the command line refuses `--minutes 0`); `checkpoint` (a step, on resume) picks the checkpoint
    to continue from instead of the last; the ones after it are dropped when training starts."""
    overrides = parse_sets(sets)
    context = overrides["model"].pop("context", None)  # K is the run's, not a family option
    if minutes is not None and not (math.isfinite(minutes) and minutes >= 0):
        raise PlayworldError(f"minutes={minutes:g} is not a time budget", "pass minutes above 0, or 0 / None for no time limit")
    if checkpoint is not None and not resume:
        raise PlayworldError("--checkpoint picks the checkpoint to resume from", "add --resume, or drop --checkpoint")
    if checkpoint is not None and not str(checkpoint).isdigit():
        raise PlayworldError(f"--checkpoint {checkpoint} is not a step of the run", "pass the step number, e.g. --checkpoint 3000")
    meta = None
    if resume:
        if context is not None:
            raise PlayworldError("the context length cannot change on --resume", "drop --set model.context, or start a new run")
        family, mcfg, tcfg, data, ckpt = _resume_config(run_dir, data, model, preset, overrides, checkpoint)
        saved_spec = _saved_spec(ckpt)
        k = saved_spec.context
        meta = read_run_meta(run_dir)  # read (and checked) now: a damaged one stops the run before anything is written
    else:
        if data is None:
            raise PlayworldError("no dataset given", "pass --data DATA (a folder written by `playworld collect`)")
        if list_checkpoints(run_dir):
            raise PlayworldError(f"{run_dir} already holds a trained run", "pass --resume to continue it, or choose another --out")
        family = get_family(model or DEFAULT_FAMILY)
        p = load_preset(preset or DEFAULT_PRESET)
        mcfg = make_model_config(family, p, overrides["model"])
        tcfg = make_train_config(p, overrides["train"], family.name)
        k = resolve_context(p, context)
        ckpt = saved_spec = None
    if steps is not None:
        tcfg.steps = int(steps)
    if minutes is not None:
        tcfg.minutes = float(minutes)
    elif steps is not None and "minutes" not in overrides["train"]:
        # a step budget asked for without a time budget: the preset's (or the saved run's) minutes must
        # not cut it short
        tcfg.minutes = 0.0
    validate(tcfg)

    dataset = open_dataset(data)
    spec = WorldSpec(
        resolution=dataset.resolution, action_space=dataset.action_space, context=k, fps=dataset.fps, world=dataset.world,
    )
    family.check_dataset(mcfg, spec, dataset)
    if saved_spec is not None:
        check_dataset_matches(saved_spec, dataset, f"run {run_dir}")
    return RunPlan(run_dir, family, mcfg, tcfg, dataset, Path(data).resolve(), spec, ckpt, meta)


def _saved_spec(ckpt: Path) -> WorldSpec:
    weights = ckpt / "model.safetensors"
    try:
        return WorldSpec.from_dict(json.loads(read_metadata(weights)["spec"]))
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise PlayworldError(f"checkpoint file {weights} is damaged: its spec does not parse ({type(e).__name__})",
                             "resume from another checkpoint with --checkpoint STEP, or start a new run") from None


def _resume_config(run_dir: Path, data, model, preset, overrides, checkpoint=None):
    check_run_dir(run_dir)
    saved = read_run_config(run_dir)
    if saved is None:
        raise PlayworldError(f"{run_dir} has no {CONFIG}, so it is not a run to resume", "start a new run without --resume")
    (family_name,) = saved["model"]
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    ckpt_family = read_metadata(ckpt / "model.safetensors")["family"]
    if ckpt_family != family_name:
        raise PlayworldError(
            f"checkpoint {ckpt} is of model family {ckpt_family}, but {run_dir}/config.yaml says {family_name}",
            "resume from a checkpoint of this run, or start a new run with another --out",
        )
    if model and model != family_name:
        raise PlayworldError(
            f"run {run_dir} trains model family {family_name}, not {model}", "drop --model, or start a new run with another --out"
        )
    if preset:
        raise PlayworldError("--preset cannot change a run being resumed", "drop --preset; change single values with --set train.KEY=VALUE")
    family = get_family(family_name)
    for section in saved["model"].values():  # runs from before K moved to the WorldSpec kept it per family
        section.pop("context", None)
    try:
        mcfg = make_model_config(family, saved)
        tcfg = make_train_config(saved, overrides["train"])
    except (TypeError, ValueError, KeyError) as e:  # a family's Config may check its fields itself
        raise PlayworldError(f"{run_dir / CONFIG} holds options that do not fit ({e})",
                             "restore it from a backup, or train a new run with another --out") from None
    if overrides["model"]:
        wanted = make_model_config(family, saved, overrides["model"])
        if config_to_dict(wanted) != config_to_dict(mcfg):
            raise PlayworldError("model options cannot change on --resume", "drop --set model.*, or start a new run with another --out")
    if data is None:
        data = Path(saved["data"])
        if not data.is_absolute() and not data.exists():  # runs from before paths were stored resolved
            raise PlayworldError(f"the dataset path {data} in {run_dir / CONFIG} is relative to the folder the run "
                                 "was started from", "pass --data DATA, or resume from that folder")
    return family, mcfg, tcfg, data, ckpt


# -- the run directory ----------------------------------------------------------------------------


def write_run_files(plan: RunPlan, d, step: int) -> None:
    """config.yaml (the resolved configuration) and meta.json (what produced the run), each written atomically."""
    run_dir = plan.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_temporaries(run_dir)  # what a write killed half-way left
    config = run_config_dict(str(plan.data_path), plan.spec.context, plan.family.name, plan.model_config, plan.train_config)
    write_atomic(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=False))
    invocation = {"command": sys.argv, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": step,
                  "world_size": d.world_size, "device": str(d.device),
                  "precision": resolve_precision(plan.train_config.precision, d.device)}
    if plan.resume_from is not None and plan.meta is not None:
        meta = dict(plan.meta)
        meta["resumed"] = [*meta.get("resumed", []), invocation]
    else:
        meta = {
            "family": plan.family.name,
            "started": invocation,
            "versions": _versions(),
            "git_sha": _git_sha(),
            "data": _data_identity(plan.dataset),
            "spec": plan.spec.to_dict(),
        }
    write_atomic(run_dir / META, json.dumps(meta, indent=2) + "\n")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("playworld", "torch", "numpy", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _git_sha() -> str | None:
    """The commit of the playworld source tree, when it is a git checkout."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
        return res.stdout.strip() or None if res.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _data_identity(dataset) -> dict[str, Any]:
    manifest = Path(dataset.path) / "manifest.json"
    return {
        "path": str(Path(dataset.path).resolve()),
        "world": dataset.world,
        "fingerprint": dataset.fingerprint,
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "episodes": len(dataset),
        "frames": dataset.num_frames,
    }


# -- RNG state as tensors and plain values (loadable with torch.load(weights_only=True)) ------------


def capture_rng(device: torch.device) -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
        "python": random.getstate(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
