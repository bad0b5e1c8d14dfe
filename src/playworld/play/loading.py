"""What `playworld play RUN` plays: a trained run, or a pseudo-run for calibration.

    runs/NAME            a run folder of `playworld train` (any family, through `playworld.load`)
    oracle:<world>       the real built-in world behind the WorldModel interface (WorldOracle)
    copy-last:<world>    a model that never changes the frame (CopyLast)

and where its contexts come from: `env` (the real world from fresh seeds) or a dataset (val split).
The default is `env` when the run's world can be built here, else the run's own dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playworld.data.store import Dataset
from playworld.errors import PlayworldError
from playworld.models.baselines import CopyLast, WorldOracle
from playworld.models.interface import WorldModel, WorldSpec
from playworld.play.contexts import ContextSource, DatasetContexts, EnvContexts
from playworld.runs.files import read_run_config
from playworld.runs.load import load_world_model
from playworld.worlds.base import make_world

PSEUDO_RUNS = ("oracle", "copy-last")


class _TrackedWorld:
    """A world that remembers its latest ground-truth state (so the oracle can report it)."""

    def __init__(self, world: Any):
        self.world, self.state = world, None

    def restore(self, state: dict) -> Any:
        frame = self.world.restore(state)
        self.state = state
        return frame

    def step(self, action: Any) -> Any:
        result = self.world.step(action)
        self.state = result.state
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.world, name)


class PlayOracle(WorldOracle):
    """WorldOracle whose `debug_state(state)` returns the real world's current state (agent position...)."""

    def _world(self):
        world = super()._world()
        return world if isinstance(world, _TrackedWorld) else _TrackedWorld(world)

    def debug_state(self, state) -> dict:
        return {"world": state.worlds[0].state, "done": state.done[0]}


@dataclass
class PlayTarget:
    model: WorldModel
    contexts: ContextSource
    title: str


def _run_config(run: Path) -> dict:
    return read_run_config(run) or {}


def _world_options(data: str | Path | None) -> dict:
    if data and Path(data).is_dir():
        try:
            return dict(Dataset(data).manifest.get("world_options") or {})
        except PlayworldError:
            return {}
    return {}


def _contexts(spec: WorldSpec, context_from: str | None, run_data: str | None) -> ContextSource:
    if context_from not in (None, "env"):
        if not Path(context_from).exists():
            raise PlayworldError(f"dataset {context_from} does not exist", "pass --context-from DATA or --context-from env")
        return DatasetContexts(context_from, spec)
    if not spec.world:
        if context_from == "env" or not run_data:
            raise PlayworldError("the run does not name the world it was trained on",
                                 "pass --context-from DATA with the dataset it was trained on")
        return DatasetContexts(run_data, spec)
    try:
        return EnvContexts(spec.world, spec, world_options=_world_options(run_data))
    except PlayworldError:
        if context_from == "env" or not run_data or not Path(run_data).exists():
            raise
        return DatasetContexts(run_data, spec)  # e.g. a Gymnasium world whose extra is not installed


def load_target(run: str, context_from: str | None = None, resolution: int = 64, device: str = "cpu") -> PlayTarget:
    """RUN (a folder or a pseudo-run) -> the model to play and where its contexts come from."""
    kind, sep, world = run.partition(":")
    if sep and kind in PSEUDO_RUNS:
        if not world:
            raise PlayworldError(f"{run!r} names no world", f"use e.g. {kind}:explorer")
        if kind == "oracle":
            model: WorldModel = PlayOracle(world, resolution=resolution, device=device)
        else:
            probe = make_world(world, resolution=resolution)
            spec = WorldSpec(resolution=resolution, action_space=probe.action_space, context=1, fps=float(probe.fps), world=world)
            probe.close()
            model = CopyLast(spec, device=device)
        return PlayTarget(model, _contexts(model.spec, context_from, None), f"{kind} of {world}")

    path = Path(run)
    if not path.is_dir():
        raise PlayworldError(f"run {run} does not exist",
                             "pass the --out folder of `playworld train`, or oracle:<world> / copy-last:<world>")
    try:
        model = load_world_model(path, device=device)
    except PlayworldError:
        raise
    except Exception as e:  # a checkpoint that does not load is the user's to fix, not a traceback
        raise PlayworldError(f"cannot load the model in {run} ({type(e).__name__}: {e})",
                             "check that it is a finished `playworld train` run, or retrain it") from None
    run_data = _run_config(path).get("data")
    return PlayTarget(model, _contexts(model.spec, context_from, run_data), f"{path.name}")
