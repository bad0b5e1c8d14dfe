"""Goal-conditioned planning: reach the view of a goal frame by planning inside a world model,
executed in the real world (model-predictive control, replanning at every real step).

    planner = goal_planner(model, goal_frame, method="cem")   # a Planner whose objective is the goal
    episode = reach(world, planner, frame, state, steps=14)    # acts in the real world, returns the trajectory
    planner.objective.set_goal(next_goal)                      # another goal, the same planner

A plan is scored by how close its predicted representations come to the goal frame's:

    cost = mean over the horizon of d(r_t, g),   d(r, g) = mean |r - g|   (L1, V-JEPA 2-AC's energy)

r_t represents the state after the plan's first t + 1 actions, g the goal frame, in one of two ways:
- `latent` (models that declare LatentState: jepa, rssm): r_t = model.features(state) stepped with
  `advance` (no frame drawn); g = the features after the goal frame seen as a K-frame still context.
- `pixels` (any model): r_t = encoder(frame_t) of the frames the model draws, g = encoder(goal), with a
  `FrameEncoder` the caller brings (the eval suite's domain encoder: agents/ cannot train it itself).
`auto` takes the latent where the model has one. A plan's score is minus its cost over the distance
from the newest real frame to the goal (1: it keeps the distance, 0: it gets there at once), one scale
for every iteration of a real step, so MPPI's temperature is a share of the way still to go whatever
the representation's units.

`WorldAsModel` is the real world behind the WorldModel interface: a pool of worlds restored to the real
state at every planning call. Planning in it is the upper bound of planning with a learned model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from playworld.agents.planner import Planner
from playworld.errors import PlayworldError
from playworld.models.interface import LatentState, WorldModel, WorldSpec, model_device
from playworld.worlds.base import make_world
from playworld.worlds.policies import Policy

FrameEncoder = Callable[[Tensor], Tensor]
"""frames (B, 3, R, R) uint8 -> features (B, d) float: how a pixel family's frames are compared with the goal"""

Representation = Literal["auto", "latent", "pixels"]
REPRESENTATIONS = ("auto", "latent", "pixels")
REDUCTIONS = ("mean", "final", "min")


# -- checks ----------------------------------------------------------------------------------------
def check_goal_model(model: WorldModel) -> None:
    """PlayworldError unless `model` takes actions the real world takes (not none, not latent actions)."""
    space = model.spec.action_space
    if space.kind == "none":
        raise PlayworldError(
            "this model takes no actions (it was trained on action-free data): there is nothing to plan",
            "plan with a model trained on a dataset with actions (e.g. playworld collect --env explorer)")
    if space.is_latent:
        raise PlayworldError(
            f"this model acts in {space.n} latent actions learned from video, which the real world does not take",
            "train it with the dataset's actions (--set model.actions=true) to plan toward goals in the real world")


def goal_tensor(goal: Any, spec: WorldSpec) -> Tensor:
    """A goal frame, (R, R, 3) or (3, R, R), uint8 -> (3, R, R) uint8; a frame of another size is an error."""
    g = torch.as_tensor(np.array(goal))  # a copy: worlds and images may hand out read-only arrays
    r = spec.resolution
    if g.ndim == 3 and g.shape[-1] in (3, 4) and g.shape[0] != 3:
        g = g[..., :3].permute(2, 0, 1)
    if g.ndim != 3 or g.shape[0] != 3:
        raise PlayworldError(f"the goal image has shape {tuple(g.shape)}, not an RGB image",
                             f"pass an RGB image of {r}x{r} pixels")
    if tuple(g.shape[1:]) != (r, r):
        raise PlayworldError(f"the goal image is {g.shape[2]}x{g.shape[1]} pixels; this model works at {r}x{r}",
                             f"pass a goal of {r}x{r} pixels (a frame of the model's world at its resolution)")
    if g.dtype != torch.uint8:
        raise PlayworldError(f"the goal image is {g.dtype}, not 8-bit", "pass uint8 pixels (0..255)")
    return g.contiguous()


def resolve_representation(model: WorldModel, representation: str, encoder: FrameEncoder | None) -> str:
    """'latent' or 'pixels' for `model`; a PlayworldError when the model or the encoder cannot give it."""
    if representation not in REPRESENTATIONS:
        raise PlayworldError(f"unknown goal representation {representation!r}", f"use one of {', '.join(REPRESENTATIONS)}")
    latent = isinstance(model, LatentState)
    if representation == "latent" and not latent:
        raise PlayworldError(
            f"{type(model).__name__} has no latent state (it does not declare LatentState), so it cannot plan in its latent",
            "plan on its frames instead (representation 'pixels', with a frame encoder: `playworld plan --data DATA`), "
            "or use a family with a latent (jepa, rssm)")
    if representation == "pixels" or (representation == "auto" and not latent):
        if encoder is None:
            raise PlayworldError(
                f"planning on {type(model).__name__}'s frames needs a frame encoder to compare them with the goal",
                "pass the dataset (`playworld plan --data DATA` trains the eval suite's domain encoder on it)")
        return "pixels"
    return "latent"


def distance(features: Tensor, goal: Tensor) -> Tensor:
    """(N, d) and (1, d) -> (N,): mean absolute difference."""
    return (features.float() - goal.float().to(features.device)).abs().mean(-1)


# -- the objective ---------------------------------------------------------------------------------
MIN_SCALE = 1e-2
"""the smallest distance costs are divided by (at the goal itself the distance is about 0)"""


@dataclass
class _Started:
    begin: Any  # latent: the model's state after the context, which every iteration branches from; pixels: (frames, actions, seed)
    scale: float  # the newest real frame's distance to the goal


class GoalObjective:
    """The planner's objective (agents/planner.py `Objective`): get the predicted representation to the goal's."""

    def __init__(self, model: WorldModel, goal: Any, representation: Representation = "auto",
                 encoder: FrameEncoder | None = None, reduce: str = "mean"):
        check_goal_model(model)
        if reduce not in REDUCTIONS:
            raise PlayworldError(f"unknown cost reduction {reduce!r}", f"use one of {', '.join(REDUCTIONS)}")
        self.model, self.encoder, self.reduce = model, encoder, reduce
        self.mode = resolve_representation(model, representation, encoder)
        self.device = model_device(model)
        self.set_goal(goal)

    def represent(self, frames: Tensor) -> Tensor:
        """frames (B, 3, R, R) uint8 -> (B, d): the latent of each frame seen as a still K-frame context, or its encoding."""
        frames = frames.to(self.device)
        if self.mode == "pixels":
            return self.encoder(frames).float()
        spec = self.model.spec
        noop = torch.as_tensor(spec.action_space.noop())
        context = frames[:, None].expand(-1, spec.context, *frames.shape[1:])
        actions = noop.expand(len(frames), spec.context, *noop.shape).to(self.device)
        return self.model.features(self.model.reset(context, actions, seed=0))

    def set_goal(self, goal: Any) -> None:
        self.goal_frame = goal_tensor(goal, self.model.spec)
        self.goal = self.represent(self.goal_frame[None])  # (1, d)

    def distance_to_goal(self, frame: Any) -> float:
        """The representation distance from a real frame ((R, R, 3) or (3, R, R) uint8) to the goal."""
        return float(distance(self.represent(goal_tensor(frame, self.model.spec)[None]), self.goal)[0])

    def start(self, frames: Tensor, actions: Tensor, n: int, seed: int) -> _Started:
        many, acts = frames[None].expand(n, *frames.shape), actions[None].expand(n, *actions.shape)
        if self.mode == "latent":  # states are immutable: every iteration branches from this one
            begin = self.model.reset(many.to(self.device), acts.to(self.device), seed=seed)
            here = self.model.features(begin)[:1]
        else:
            begin, here = (many, acts, seed), self.represent(frames[-1:])
        return _Started(begin, max(float(distance(here, self.goal)[0]), MIN_SCALE))

    def costs(self, started: _Started, plans: Tensor) -> Tensor:
        """(N,) the cost of each plan (lower is better), in the representation's units."""
        if self.mode == "latent":
            state, per_step = started.begin, []
            for t in range(plans.shape[1]):
                state = self.model.advance(state, plans[:, t].to(self.device))
                per_step.append(distance(self.model.features(state), self.goal))
        else:
            frames, actions, seed = started.begin
            state, per_step = self.model.reset(frames.to(self.device), actions.to(self.device), seed=seed), []
            for t in range(plans.shape[1]):
                state, frame = self.model.step(state, plans[:, t].to(self.device))
                per_step.append(distance(self.encoder(frame), self.goal))
        d = torch.stack(per_step, 1)  # (N, H)
        return {"mean": d.mean(1), "final": d[:, -1], "min": d.min(1).values}[self.reduce].cpu()

    def score(self, started: _Started, plans: Tensor) -> Tensor:
        """-cost / (the newest real frame's distance to the goal): 1 keeps the distance, 0 reaches the goal."""
        return -self.costs(started, plans) / started.scale


def goal_planner(
    model: WorldModel, goal: Any, method: Literal["cem", "mppi"] = "cem", representation: Representation = "auto",
    encoder: FrameEncoder | None = None, reduce: str = "mean", horizon: int = 8, population: int = 64,
    elites: int = 8, iterations: int = 3, seed: int = 0, temperature: float = 0.1, **planner_options: Any,
) -> Planner:
    """A CEM / MPPI planner that drives toward `goal` (a frame, (R, R, 3) uint8) in `model`. MPPI's `temperature`
    is a share of the distance still to go (scores are costs over the current distance)."""
    objective = GoalObjective(model, goal, representation, encoder, reduce)
    return Planner(model, method=method, horizon=horizon, population=population, elites=elites, iterations=iterations,
                   seed=seed, temperature=temperature, objective=objective, **planner_options)


# -- acting in the real world ----------------------------------------------------------------------
@dataclass
class Trajectory:
    """What happened in the real world: states[0] is the start, states[i] the state after actions[i - 1]."""

    states: list[dict] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    plan_seconds: list[float] = field(default_factory=list)
    """CPU seconds of this process spent choosing each action (planning, for a planner)"""


def reach(world, policy: Policy, frame: np.ndarray, state: dict, steps: int,
          sync: Callable[[dict], None] | None = None, keep_frames: bool = False) -> Trajectory:
    """Act with `policy` in `world` from (frame, state) for `steps` steps (fewer if the episode ends).

    `sync(state)` is called with the real state before each action is chosen (how `WorldAsModel` plans
    from where the real world is)."""
    policy.reset()
    out = Trajectory(states=[state], frames=[frame] if keep_frames else [])
    for _ in range(steps):
        if sync is not None:
            sync(state)
        c0 = time.process_time()
        action = np.asarray(policy(frame, state), world.action_space.dtype)
        out.plan_seconds.append(time.process_time() - c0)
        result = world.step(action)
        frame, state = result.frame, result.state
        out.states.append(state)
        out.actions.append(action)
        out.rewards.append(float(result.reward))
        if keep_frames:
            out.frames.append(frame)
        if result.terminated or result.truncated:
            break
    return out


@dataclass
class _Branches:
    worlds: list
    last: list[Tensor]  # (3, R, R) uint8 each: the newest frame of each branch
    done: list[bool]


class WorldAsModel:
    """The real world as a WorldModel: each `reset` restores a pool of worlds to the state last given to
    `sync` (the real world's now), each `step` steps them. Needs a world that can restore its state."""

    def __init__(self, world: str, resolution: int, context: int, world_options: dict | None = None):
        self.name, self.resolution, self.options = world, int(resolution), dict(world_options or {})
        probe = make_world(world, resolution=self.resolution, **self.options)
        if not probe.can_restore:
            raise PlayworldError(f"world {world!r} cannot be restored from a state, so it cannot be planned in",
                                 "plan in a trained model of it instead")
        self.spec = WorldSpec(resolution=self.resolution, action_space=probe.action_space, context=int(context),
                              fps=float(probe.fps), world=world)
        self.device = torch.device("cpu")
        self.pool, self.now = [probe], None

    def sync(self, state: dict) -> None:
        self.now = {k: np.array(v, copy=True) for k, v in state.items()}

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> _Branches:
        if self.now is None:
            raise PlayworldError("the real world as a model has not been given the real state",
                                 "call sync(state) before planning (reach(..., sync=model.sync) does)")
        while len(self.pool) < len(frames):
            self.pool.append(make_world(self.name, resolution=self.resolution, **self.options))
        worlds = self.pool[: len(frames)]
        last = [torch.from_numpy(np.ascontiguousarray(w.restore(self.now))).permute(2, 0, 1) for w in worlds]
        return _Branches(worlds=worlds, last=last, done=[False] * len(worlds))

    def step(self, state: _Branches, action: Tensor) -> tuple[_Branches, Tensor]:
        """Steps the branches in place (a branch cannot be stepped twice from one state)."""
        acts, last, done = action.detach().cpu().numpy(), list(state.last), list(state.done)
        for i, w in enumerate(state.worlds):
            if done[i]:  # an ended branch keeps its last frame
                continue
            result = w.step(acts[i])
            done[i] = bool(result.terminated or result.truncated)
            last[i] = torch.from_numpy(np.ascontiguousarray(result.frame)).permute(2, 0, 1)
        return _Branches(worlds=state.worlds, last=last, done=done), torch.stack(last)
