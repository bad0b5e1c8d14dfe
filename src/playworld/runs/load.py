"""Reading a run back: its trained model as a `WorldModel`, its dataset, and whether the two fit.

    model = load_world_model("runs/explorer")            # EMA weights of the last checkpoint
    check_dataset_matches(model.spec, open_dataset("data/explorer"))

Eval, play, agents and `playworld.load` come through here; none of them imports the trainer.
"""

from __future__ import annotations

from pathlib import Path

import torch

from playworld.data.store import Dataset
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec
from playworld.runs.checkpoints import build_from_checkpoint, resolve_checkpoint


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


def open_dataset(data: str | Path) -> Dataset:
    """The dataset at `data`, or a PlayworldError saying how to make one."""
    if not Path(data).exists():
        raise PlayworldError(f"dataset {data} does not exist", "collect one first: playworld collect --env explorer --out DATA")
    return Dataset(data)
