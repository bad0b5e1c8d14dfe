"""Calibration baselines: models every metric is checked against, behind the `WorldModel` interface.

- `CopyLast`: repeats the newest context frame (what "nothing moves" scores).
- `IgnoreActions`: wraps any model and replaces each action it receives with a random one (or the
  no-op), so a metric of agency can be compared with a model that cannot follow actions.
- `WorldOracle`: replays the real built-in world from its recorded state (the best possible model).
- `ReplayOracle`: returns a dataset's recorded future frames in order (ground truth, action-blind).

All are batched; frames come back as uint8 (B, 3, H, W) on the baseline's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec, check_frames, model_device
from playworld.spaces import ActionSpace
from playworld.worlds.base import make_world


def _as_uint8(frames: Tensor) -> Tensor:
    """uint8 frames pass through; float frames in [0, 1] are scaled and rounded."""
    if frames.dtype == torch.uint8:
        return frames
    return frames.float().clamp(0, 1).mul(255).round().to(torch.uint8)


# ---------------------------------------------------------------------------------------------
@dataclass
class CopyLastState:
    last: Tensor  # (B, 3, H, W) uint8


class CopyLast:
    """Predicts that nothing changes: every step returns the newest context frame."""

    def __init__(self, spec: WorldSpec, device: str | torch.device = "cpu"):
        self.spec = spec
        self.device = torch.device(device)

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> CopyLastState:
        check_frames(frames, self.spec)
        return CopyLastState(last=_as_uint8(frames[:, -1]).to(self.device))

    def step(self, state: CopyLastState, action: Tensor) -> tuple[CopyLastState, Tensor]:
        return state, state.last.clone()


# ---------------------------------------------------------------------------------------------
@dataclass
class IgnoreActionsState:
    inner: Any
    generator: torch.Generator


class IgnoreActions:
    """Wraps `model`; every action it is given (context and step) is replaced before the model sees it.

    mode='random' draws uniformly from the action space (seeded by `seed` and the `reset` seed);
    mode='noop' always passes the do-nothing action.
    """

    def __init__(self, model: WorldModel, mode: Literal["random", "noop"] = "random", seed: int = 0):
        if mode not in ("random", "noop"):
            raise PlayworldError(f"unknown ignore-actions mode {mode!r}", "use mode='random' or mode='noop'")
        self.model, self.mode, self.seed = model, mode, int(seed)
        self.spec = model.spec
        self.device = model_device(model)

    def _replace(self, actions: Tensor, generator: torch.Generator) -> Tensor:
        """actions (B, ...) or (B, K, ...) -> same shape, replaced."""
        space: ActionSpace = self.spec.action_space
        lead = actions.shape[: actions.ndim - len(space.shape)]  # (B,) or (B, K)
        if space.kind == "continuous":
            if self.mode == "noop":
                out = torch.as_tensor(space.noop()).expand(*lead, space.dim).clone()
            else:
                low, high = torch.tensor(space.low), torch.tensor(space.high)
                out = low + (high - low) * torch.rand(*lead, space.dim, generator=generator)
            return out.to(device=actions.device, dtype=torch.float32)
        if self.mode == "noop":
            out = torch.zeros(lead, dtype=torch.long)
        else:
            out = torch.randint(space.n, lead, generator=generator)
        return out.to(actions.device)

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None, **kwargs: Any) -> IgnoreActionsState:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + (0 if seed is None else int(seed)))
        inner = self.model.reset(frames, self._replace(actions, generator), seed=seed, **kwargs)
        return IgnoreActionsState(inner=inner, generator=generator)

    def step(self, state: IgnoreActionsState, action: Tensor) -> tuple[IgnoreActionsState, Tensor]:
        inner, frame = self.model.step(state.inner, self._replace(action, state.generator))
        return IgnoreActionsState(inner=inner, generator=state.generator), frame


# ---------------------------------------------------------------------------------------------
@dataclass
class WorldOracleState:
    worlds: list  # one playworld World per batch element, in the current state
    last: Tensor  # (B, 3, H, W) uint8, the newest frame
    done: list[bool]  # episode over: the frame stays frozen from then on


class WorldOracle:
    """The real built-in world, put back into each batch element's recorded state and stepped.

    `reset_world(frames, actions, world_state=[state per batch element])` (the `WorldReplay` ability;
    `reset` takes the same keyword) needs the world's recorded state at the newest context frame
    (datasets store it beside each frame).
    """

    def __init__(
        self, world: str, resolution: int = 64, world_options: dict | None = None,
        context: int = 1, device: str | torch.device = "cpu",
    ):
        self.world_name, self.resolution = world, int(resolution)
        self.world_options = dict(world_options or {})
        self.device = torch.device(device)
        probe = make_world(world, resolution=self.resolution, **self.world_options)
        if not probe.can_restore:
            raise PlayworldError(
                f"world {world!r} cannot be restored from a recorded state, so it cannot be replayed",
                "use ReplayOracle with the dataset's recorded frames instead",
            )
        self.spec = WorldSpec(
            resolution=self.resolution, action_space=probe.action_space, context=int(context),
            fps=float(probe.fps), world=world,
        )
        self._spare = [probe]  # built worlds kept for reuse between resets

    def _world(self):
        return self._spare.pop() if self._spare else make_world(self.world_name, resolution=self.resolution, **self.world_options)

    def reset(
        self, frames: Tensor, actions: Tensor, seed: int | None = None,
        world_state: list[dict[str, np.ndarray]] | None = None,
    ) -> WorldOracleState:
        return self.reset_world(frames, actions, world_state, seed=seed)

    def reset_world(
        self, frames: Tensor, actions: Tensor, world_state: list[dict[str, np.ndarray]] | None, seed: int | None = None,
    ) -> WorldOracleState:
        batch = frames.shape[0]
        if world_state is None or len(world_state) != batch:
            raise PlayworldError(
                "the world oracle needs the recorded world state of every batch element",
                f"pass world_state=[state dict at the newest context frame] * {batch}",
            )
        worlds = [self._world() for _ in range(batch)]
        restored = [torch.from_numpy(np.ascontiguousarray(w.restore(s))) for w, s in zip(worlds, world_state)]
        last = torch.stack(restored).permute(0, 3, 1, 2).contiguous().to(self.device)  # (B, 3, H, W)
        return WorldOracleState(worlds=worlds, last=last, done=[False] * batch)

    def step(self, state: WorldOracleState, action: Tensor) -> tuple[WorldOracleState, Tensor]:
        acts = action.detach().cpu().numpy()
        out, done = [], list(state.done)
        for i, world in enumerate(state.worlds):
            if done[i]:
                out.append(state.last[i].cpu())
                continue
            result = world.step(acts[i])
            done[i] = bool(result.terminated or result.truncated)
            out.append(torch.from_numpy(np.ascontiguousarray(result.frame)).permute(2, 0, 1))
        last = torch.stack(out).to(self.device)
        return WorldOracleState(worlds=state.worlds, last=last, done=done), last.clone()


# ---------------------------------------------------------------------------------------------
@dataclass
class ReplayState:
    t: int  # index of the next recorded frame to return


class ReplayOracle:
    """Returns the dataset's recorded future frames (B, F, 3, H, W) one per step, ignoring actions."""

    def __init__(self, future_frames: Tensor, spec: WorldSpec | None = None, device: str | torch.device = "cpu"):
        if future_frames.ndim != 5:
            raise PlayworldError(
                f"recorded frames of shape {tuple(future_frames.shape)} are not (B, F, 3, H, W)",
                "pass the batch's future_frames",
            )
        self.device = torch.device(device)
        self.frames = _as_uint8(future_frames).to(self.device)
        self.spec = spec or WorldSpec(
            resolution=int(future_frames.shape[-1]), action_space=ActionSpace.none(), context=1,
            channels=int(future_frames.shape[2]),
        )

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> ReplayState:
        if frames.shape[0] != self.frames.shape[0]:
            raise PlayworldError(
                f"batch of {frames.shape[0]} contexts but {self.frames.shape[0]} recorded futures",
                "give the replay oracle the future frames of the same batch",
            )
        return ReplayState(t=0)

    def step(self, state: ReplayState, action: Tensor) -> tuple[ReplayState, Tensor]:
        if state.t >= self.frames.shape[1]:
            raise PlayworldError(
                f"the replay oracle has only {self.frames.shape[1]} recorded frames",
                "roll out no longer than the recorded future (or record a longer one)",
            )
        return ReplayState(t=state.t + 1), self.frames[:, state.t].clone()
