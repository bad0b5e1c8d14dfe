"""The one interface between a trained model and everything that uses it.

Play, eval, agents and rollout talk to a model only through `WorldModel`:

    state = model.reset(frames, actions, seed=0)   # frames (B, K, 3, H, W) uint8; actions (B, K) or (B, K, dim)
    state, frame = model.step(state, action)       # action (B,) or (B, dim) -> next frame (B, 3, H, W) uint8

`actions[:, i]` led into `frames[:, i]` (see `playworld.data.batch`); `step`'s action is taken at
the newest frame and leads into the returned one. Models are batched, seeded (a given seed in
`reset` makes every later `step` deterministic) and device-agnostic (inputs may live on any
device; outputs come back on the model's device). States are opaque to callers.

Beyond the contract, a model may declare optional abilities, each a runtime-checkable protocol
below. A consumer asks `isinstance(model, LatentState)`, never `getattr(model, "observe", None)`,
and the contract tests check every registered family against each protocol it claims:

    OnDevice        device                               where inputs are best put
    LatentState     features / advance / observe / feature_dim   agents and planners act on the latent
    RewardHead      predict_reward(state)                rewards imagined by the model
    ContinueHead    predict_continue(state)              episode ends imagined by the model
    TunableSampler  sampling_steps / set_sampling_steps / max_sampling_steps   play's speed-quality dial
    WorldReplay     reset_world(frames, actions, world_state)    the oracle: needs the recorded world state
    DebugState      debug_state(state)                   what play shows beside the frame

K, the context length, has one source: `WorldSpec.context` (DEFAULT_CONTEXT unless a preset or
`--set model.context=K` says otherwise); families build their networks from it and `context_window`
cuts a model's context to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from playworld.data.batch import check_context
from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace

DEFAULT_CONTEXT = 4
"""K when neither the preset nor `--set model.context=K` gives one"""


@dataclass(frozen=True)
class WorldSpec:
    """What a world model consumes and produces."""

    resolution: int
    """frames are square: (3, resolution, resolution)"""
    action_space: ActionSpace
    context: int
    """K, the number of past frames (and their actions) a model conditions on"""
    channels: int = 3
    fps: float = 10.0
    world: str = ""
    """name of the world the data came from (e.g. 'explorer', 'gym:CartPole-v1'), for bookkeeping"""

    def __post_init__(self) -> None:
        check_context(self.context)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution, "action_space": self.action_space.to_dict(), "context": self.context,
            "channels": self.channels, "fps": self.fps, "world": self.world,
        }

    @staticmethod
    def from_dict(d: dict) -> "WorldSpec":
        return WorldSpec(
            resolution=int(d["resolution"]), action_space=ActionSpace.from_dict(d["action_space"]),
            context=int(d["context"]), channels=int(d.get("channels", 3)), fps=float(d.get("fps", 10.0)),
            world=str(d.get("world", "")),
        )


@runtime_checkable
class WorldModel(Protocol):
    spec: WorldSpec

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> Any: ...

    def step(self, state: Any, action: Tensor) -> tuple[Any, Tensor]: ...


# -- optional abilities (declared, never probed) --------------------------------------------------


@runtime_checkable
class OnDevice(Protocol):
    """A model that says where its tensors live; consumers put inputs there to save a copy."""

    @property
    def device(self) -> torch.device: ...


def model_device(model: Any) -> torch.device:
    """The device a model computes on (CPU for models that do not say)."""
    return torch.device(model.device) if isinstance(model, OnDevice) else torch.device("cpu")


@runtime_checkable
class LatentState(Protocol):
    """A model whose state holds a latent an agent can read (Dreamer's h and z).

    `features(state)` (B, feature_dim) float32; `advance(state, action)` the next state without decoding
    a frame (the same random draws as `step`); `observe(state, frame, action)` the state after `action`
    led into the real `frame` (B, 3, H, W) uint8 (the posterior), how an agent tracks the real world.
    """

    @property
    def feature_dim(self) -> int: ...

    def features(self, state: Any) -> Tensor: ...

    def advance(self, state: Any, action: Tensor) -> Any: ...

    def observe(self, state: Any, frame: Tensor, action: Tensor) -> Any: ...


@runtime_checkable
class RewardHead(Protocol):
    """A model that predicts rewards: (B,) reward on arriving at the state's newest frame."""

    def predict_reward(self, state: Any) -> Tensor: ...


@runtime_checkable
class ContinueHead(Protocol):
    """A model that predicts episode ends: (B,) probability in [0, 1] that the episode goes on after the
    state's newest frame (a model without it is taken to go on)."""

    def predict_continue(self, state: Any) -> Tensor: ...


@runtime_checkable
class TunableSampler(Protocol):
    """A model whose sampler trades speed for quality with a number of steps (play's dial).

    `set_sampling_steps(n)` rebuilds the sampler's own schedule for n steps (1 to `max_sampling_steps`)
    and returns the steps in use; callers never see the schedule."""

    @property
    def sampling_steps(self) -> int: ...

    @property
    def max_sampling_steps(self) -> int: ...

    def set_sampling_steps(self, steps: int) -> int: ...


@runtime_checkable
class WorldReplay(Protocol):
    """A model that replays the real world (the oracle): its reset needs the recorded world state at the
    newest context frame, one dict per batch element."""

    def reset_world(self, frames: Tensor, actions: Tensor, world_state: list[dict], seed: int | None = None) -> Any: ...


@runtime_checkable
class DebugState(Protocol):
    """A model that can describe a state in plain JSON-able values (play shows it beside the frame)."""

    def debug_state(self, state: Any) -> dict: ...


CAPABILITIES: dict[str, type] = {
    "OnDevice": OnDevice, "LatentState": LatentState, "RewardHead": RewardHead, "ContinueHead": ContinueHead,
    "TunableSampler": TunableSampler, "WorldReplay": WorldReplay, "DebugState": DebugState,
}
"""every optional ability by name (the contract tests walk over it)"""


def frames_to_unit(frames: Tensor) -> Tensor:
    """uint8 [0, 255] or float [0, 1] frames -> float32 in [-1, 1] (the models' working range)."""
    if frames.dtype == torch.uint8:
        return frames.float().div_(127.5).sub_(1.0)
    return frames.float().mul(2.0).sub(1.0)


def unit_to_frames(x: Tensor) -> Tensor:
    """float in [-1, 1] -> uint8 [0, 255] (clamped, rounded)."""
    return x.clamp(-1.0, 1.0).add(1.0).mul(127.5).round().to(torch.uint8)


def check_actions(actions: Any, space: ActionSpace, lead: tuple[int, ...], device: torch.device,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Validate actions of leading shape `lead` ((B,) or (B, T)) against `space`; move them to `device`.

    Continuous actions come back as `dtype`, discrete ones as int64 within [0, n). A mismatch is a
    PlayworldError naming the expected shape or range, so every adapter rejects bad input the same way.
    """
    actions = torch.as_tensor(actions, device=device)
    if tuple(actions.shape) != lead + space.shape:
        raise PlayworldError(
            f"actions of shape {tuple(actions.shape)} do not fit the {space.describe()} action space",
            f"pass actions shaped {lead + space.shape}",
        )
    if space.kind == "continuous":
        return actions.to(dtype)
    actions = actions.long()
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= space.n):
        bad = int(actions.max()) if int(actions.max()) >= space.n else int(actions.min())
        raise PlayworldError(f"action {bad} is out of range", f"this model takes discrete actions 0 to {space.n - 1}")
    return actions


def check_frames(frames: Tensor, spec: WorldSpec) -> None:
    """PlayworldError unless `frames` is a context batch (B, T, C, H, W) of the spec's frame shape."""
    if frames.ndim != 5 or tuple(frames.shape[2:]) != spec.frame_shape:
        raise PlayworldError(
            f"context frames of shape {tuple(frames.shape)} do not match the model",
            f"pass frames shaped (B, T, {', '.join(map(str, spec.frame_shape))})",
        )


def context_window(frames: Tensor, actions: Any, spec: WorldSpec, device: torch.device,
                   dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """Checked context of exactly K = spec.context steps: frames (B, K, C, H, W) in [-1, 1] as `dtype`,
    actions (B, K[, dim]).

    The newest K frames are kept; fewer than K are padded by repeating the oldest with no-op actions.
    """
    k = spec.context
    check_frames(frames, spec)
    b, t = frames.shape[:2]
    actions = check_actions(actions, spec.action_space, (b, t), device, dtype)
    x = frames_to_unit(frames.to(device)).to(dtype)
    if t < k:
        noop = torch.as_tensor(spec.action_space.noop(), device=device, dtype=actions.dtype)
        x = torch.cat([x[:, :1].expand(b, k - t, *x.shape[2:]), x], dim=1)
        actions = torch.cat([noop.expand(b, k - t, *noop.shape), actions], dim=1)
    return x[:, -k:].contiguous(), actions[:, -k:].contiguous()
