"""The shared vocabulary of the evaluation suite.

A metric group is a function ``group(model, ctx) -> GroupResult`` registered with
``@register_group("fidelity")``. The suite runner (eval/suite.py) calls every group on the model
under test and on the calibration baselines (oracle, copy-last, ignore-actions), so each metric's
table row shows its floor and what the baselines score.

A group may carry ``group.requires = fn(dataset) -> reason | None``; the suite asks it before any
work, so a group that cannot apply (physics on explorer) is skipped, or refused when named.

Groups never roll a model out themselves: they ask ``ctx.generate(model, windows, actions)``, which
knows how to drive a `WorldModel` and how to answer for the oracle (recorded frames when the actions
are the recorded ones; the real world restored from its state when they are not).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from playworld.data.batch import Batch
from playworld.data.windows import collate_windows, cut_window
from playworld.errors import PlayworldError
from playworld.models.baselines import CopyLast, IgnoreActions, WorldOracle
from playworld.models.interface import WorldModel, WorldSpec
from playworld.worlds.base import make_world


class Skip(Exception):
    """Raised by a metric that cannot be computed here; the reason is reported, never a 0."""


class NotApplicable(Skip):
    """The group does not apply to this dataset's world (e.g. physics metrics on explorer).

    The suite reports it as skipped, and as a user error when the group was asked for by name."""


class TooFewEpisodes(Skip):
    """The dataset has too few (or too short) episodes for `metric`; `needed` says what it needs."""

    def __init__(self, metric: str, needed: str, have: str):
        super().__init__(f"{metric} needs {needed}; the dataset has {have}")
        self.metric, self.needed, self.have = metric, needed, have


@dataclass
class Metric:
    value: float
    higher_is_better: bool
    floor: float | None = None
    """the best value reachable with a perfect model (e.g. the ground-truth parsing floor), if known"""
    unit: str = ""
    description: str = ""


@dataclass
class GroupResult:
    metrics: dict[str, Metric] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    """named per-step curves, e.g. 'psnr_by_step' for t = 1..H"""
    skipped: dict[str, str] = field(default_factory=dict)
    """metric name -> why it could not be computed"""
    videos: dict[str, np.ndarray] = field(default_factory=dict)
    """name -> (T, H, W, 3) uint8 clip for the report: the real world left, the model right (media.labelled_panels)"""
    extra: dict[str, Any] = field(default_factory=dict)
    """any other JSON-able detail"""


@dataclass
class Windows:
    """Evaluation windows: (episode, t) with t the index of the first future frame."""

    dataset: Any  # playworld.data.store.Dataset
    index: list[tuple[int, int]]
    context: int
    horizon: int

    def __len__(self) -> int:
        return len(self.index)

    def batch(self) -> Batch:
        """All windows as one Batch (uint8 frames, channels first)."""
        cut = [cut_window(self.dataset.load_episode(ep), t, self.context, self.horizon) for ep, t in self.index]
        return collate_windows(cut, self.context)

    def world_states(self) -> list[dict[str, np.ndarray]]:
        """The recorded world state at the last context frame of each window (for the oracle)."""
        out = []
        for ep, t in self.index:
            st = self.dataset.load_episode(ep).state
            out.append({k: np.asarray(v[t - 1]) for k, v in st.items()})
        return out


GroupFn = Callable[[Any, "EvalContext"], GroupResult]
_GROUPS: dict[str, GroupFn] = {}


def register_group(name: str) -> Callable[[GroupFn], GroupFn]:
    def deco(fn: GroupFn) -> GroupFn:
        if name in _GROUPS:
            raise ValueError(f"metric group {name!r} registered twice")
        _GROUPS[name] = fn
        return fn

    return deco


def get_groups() -> dict[str, GroupFn]:
    import playworld.eval as pkg  # the package imports this module, so it cannot be imported at the top

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("api", "suite", "report"):
            importlib.import_module(f"playworld.eval.{mod.name}")
    return dict(_GROUPS)


class DatasetOracle:
    """The oracle baseline for a dataset: the real world's frames.

    With the recorded actions it returns the recorded frames; with other actions it restores the
    built-in world from its recorded state and steps it (worlds that cannot restore raise Skip).
    """

    def __init__(self, dataset, spec: WorldSpec):
        self.dataset = dataset
        self.spec = spec


@dataclass
class EvalContext:
    dataset: Any  # playworld.data.store.Dataset
    spec: WorldSpec
    split: str = "test"
    episodes: int = 16
    """number of evaluation windows / clips drawn per metric (at most one per episode where possible)"""
    horizon: int = 64
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 16
    cache_dir: Path | None = None
    """where trained helper networks (domain encoder, inverse dynamics) are cached between runs"""
    cache: dict[str, Any] = field(default_factory=dict)
    """in-memory cache shared by the groups during one suite run (so baselines reuse encoders)"""
    options: dict[str, Any] = field(default_factory=dict)
    """per-group settings by group name, e.g. {"fidelity": {"psnr_threshold": 25.0}} (a dict of the
    group's config fields, or its config object); groups use their defaults for what is not given"""
    full: bool = False
    """the long evaluation (`playworld eval --full`): groups use their full-size settings, not the quick ones"""
    on_step: Callable[[str, int, int], None] | None = field(default=None, repr=False, compare=False)
    """called as on_step(what, done, total) while a rollout runs (the suite's per-rollout progress bar)"""

    def progress(self, what: str, done: int, total: int) -> None:
        """Tell the suite's bar how far the current rollout is (groups with rollouts of their own call it too)."""
        if self.on_step is not None:
            self.on_step(what, done, total)

    def windows(self, horizon: int | None = None, n: int | None = None, split: str | None = None) -> Windows:
        """Deterministic evaluation windows: up to `n` windows of K context + `horizon` future frames."""
        H = self.horizon if horizon is None else horizon
        n = self.episodes if n is None else n
        split = split or self.split
        K = self.spec.context
        eps = [e for e in self.dataset.episode_ids(split) if self.dataset.episode_length(e) >= K + H]
        if not eps:
            raise Skip(f"no {split} episode is long enough for {K} context + {H} future frames")
        rng = np.random.default_rng(self.seed)
        index = []
        order = rng.permutation(len(eps))
        for i in range(n):
            ep = eps[order[i % len(eps)]]  # spread windows over episodes, one per episode first
            T = self.dataset.episode_length(ep)
            index.append((ep, int(rng.integers(K, T - H + 1))))
        return Windows(self.dataset, index, K, H)

    def generate(self, model: Any, windows: Windows, actions: Tensor | None = None, seed: int | None = None) -> Tensor:
        """Roll `model` out over `windows` with `actions` (default: the recorded ones).

        Returns generated future frames (N, H, 3, res, res) uint8 on the CPU.
        """
        batch = windows.batch()
        acts = batch.future_actions if actions is None else actions
        if isinstance(model, DatasetOracle):
            if actions is None or torch.equal(actions.to(batch.future_actions.dtype), batch.future_actions):
                return batch.future_frames
            return self._world_oracle(windows, acts)
        seed = self.seed if seed is None else seed
        outs, steps = [], acts.shape[1]
        total = steps * -(-len(windows) // self.batch_size)
        what = f"{len(windows)} rollouts x {steps} steps"
        for s in range(0, len(windows), self.batch_size):
            sl = slice(s, s + self.batch_size)
            state = model.reset(batch.context_frames[sl].to(self.device), batch.context_actions[sl].to(self.device), seed=seed + s)
            frames = []
            for j in range(steps):
                state, frame = model.step(state, acts[sl, j].to(self.device))
                frames.append(frame.cpu())
                self.progress(what, (s // self.batch_size) * steps + j + 1, total)
            outs.append(torch.stack(frames, 1))
        return torch.cat(outs, 0)

    def _world_oracle(self, windows: Windows, actions: Tensor) -> Tensor:
        world = self.dataset.world
        try:
            can = make_world(world, resolution=self.spec.resolution).can_restore
        except PlayworldError as e:
            raise Skip(f"the oracle cannot replay {world!r} with other actions: {e}") from e
        if not can:
            raise Skip(f"the oracle cannot replay {world!r} with other actions (the world cannot be restored from its state)")
        oracle = WorldOracle(world, resolution=self.spec.resolution)
        batch = windows.batch()
        state = oracle.reset(batch.context_frames, batch.context_actions, world_state=windows.world_states())
        frames = []
        for j in range(actions.shape[1]):
            state, frame = oracle.step(state, actions[:, j])
            frames.append(frame.cpu())
        return torch.stack(frames, 1)


def calibration_baselines(model: WorldModel | None, ctx: EvalContext) -> dict[str, Any]:
    """The baselines every metric is checked against: oracle, copy-last, ignore-actions."""

    out: dict[str, Any] = {"oracle": DatasetOracle(ctx.dataset, ctx.spec), "copy-last": CopyLast(ctx.spec)}
    if model is not None and ctx.spec.action_space.kind != "none":
        out["ignore-actions"] = IgnoreActions(model, mode="random", seed=ctx.seed)
    return out
