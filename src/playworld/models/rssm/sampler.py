"""The `rssm` family behind the `WorldModel` interface, plus the heads agents use.

    state = model.reset(frames, actions, seed)  # filters the K context frames with the posterior
    state, frame = model.step(state, action)    # imagines one step with the prior, decodes the frame
    model.predict_reward(state)   -> (B,) float  reward on arriving at the state's newest frame
    model.predict_continue(state) -> (B,) float  probability that the newest frame is not terminal
    model.features(state)         -> (B, feature_dim) the latent state (h, flattened z) agents can read
    model.observe(state, frame, action) -> state  the posterior update with one real frame
    model.decode(state)           -> (B, 3, R, R) uint8 the decoder's frame for a state

`predict_reward` / `predict_continue` go beyond the shared interface; `WorldModelEnv` and the
planners use them when a model has them. `features`, `observe` and `advance` let an agent act on
the latent state (Dreamer's actor): it imagines without decoding a frame, and in the real world it
tracks the state by filtering each real frame with `observe`. States are immutable: each carries its own copy of the
sampling generator, so stepping one state twice with the same action gives the same frame, and a
seed given to `reset` fixes every later step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec, check_frames, frames_to_unit, unit_to_frames
from playworld.models.nn import symexp
from playworld.models.rssm.network import RSSMNet


@dataclass(frozen=True)
class RSSMState:
    h: Tensor  # (B, deter) deterministic state at the newest frame
    z: Tensor  # (B, stoch, classes) one-hot latents at the newest frame
    generator: torch.Generator  # sampling noise for the next step (owned by this state)


def _fork(generator: torch.Generator) -> torch.Generator:
    g = torch.Generator(device=generator.device)
    g.set_state(generator.get_state())
    return g


class RSSMWorldModel:
    def __init__(self, net: RSSMNet, config, spec: WorldSpec):
        self.net, self.config, self.spec = net, config, spec
        self.device = net.h0.device

    def _check(self, frames: Tensor, actions: Tensor) -> None:
        space = self.spec.action_space
        check_frames(frames, self.spec)
        if tuple(actions.shape) != tuple(frames.shape[:2]) + space.shape:
            raise PlayworldError(
                f"context actions of shape {tuple(actions.shape)} do not match frames {tuple(frames.shape[:2])} "
                f"and the model's action space {space.describe()}",
                f"pass actions shaped {tuple(frames.shape[:2]) + space.shape}",
            )

    def _action(self, action: Tensor) -> Tensor:
        space = self.spec.action_space
        action = torch.as_tensor(action, device=self.device)
        if space.kind == "continuous":
            if action.ndim != 2 or action.shape[1] != space.dim:
                raise PlayworldError(
                    f"action of shape {tuple(action.shape)} does not fit the model's {space.describe()} action space",
                    f"pass a float tensor shaped (B, {space.dim})",
                )
            return action.float()
        if action.ndim != 1 or action.is_floating_point() or bool(((action < 0) | (action >= space.n)).any()):
            raise PlayworldError(
                f"action {action.tolist()} does not fit the model's {space.describe()} action space",
                f"pass integer actions in [0, {space.n}) shaped (B,)",
            )
        return action.long()

    @torch.no_grad()
    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> RSSMState:
        self._check(frames, actions)
        generator = torch.Generator(device=self.device).manual_seed(0 if seed is None else int(seed))
        x = frames_to_unit(frames.to(self.device))
        a = actions.to(self.device)
        a = a.float() if self.spec.action_space.kind == "continuous" else a.long()
        out = self.net.observe(x, a, generator)
        return RSSMState(h=out["h"][:, -1], z=out["z"][:, -1], generator=generator)

    @torch.no_grad()
    def step(self, state: RSSMState, action: Tensor) -> tuple[RSSMState, Tensor]:
        state = self.advance(state, action)
        return state, self.decode(state)

    @torch.no_grad()
    def decode(self, state: RSSMState) -> Tensor:
        """(B, 3, R, R) uint8: the decoder's frame for a state (imagined by `step`, or filtered by `observe`)."""
        return unit_to_frames(self.net.decoder(self.net.feature(state.h, state.z)).float())

    @torch.no_grad()
    def advance(self, state: RSSMState, action: Tensor) -> RSSMState:
        """`step` without decoding the frame: the same next state (same random draws), for callers that
        read only the heads (a planner scoring returns); the decoder is most of a step's cost."""
        generator = _fork(state.generator)
        h, prior = self.net.img_step(state.h, state.z, self._action(action))
        return RSSMState(h=h, z=self.net.sample(prior, generator), generator=generator)

    @property
    def feature_dim(self) -> int:
        return int(self.net.feat_dim)

    @torch.no_grad()
    def features(self, state: RSSMState) -> Tensor:
        """(B, feature_dim) float32: the deterministic state h and the one-hot latents z, flattened."""
        return self.net.feature(state.h, state.z).float()

    @torch.no_grad()
    def observe(self, state: RSSMState, frame: Tensor, action: Tensor) -> RSSMState:
        """The state after `action` (B,) or (B, dim) led into the real `frame` (B, 3, R, R) uint8 (the posterior,
        as `reset` filters its context); how an agent keeps track of the real world one frame at a time."""
        action = self._action(action)
        check_frames(frame[:, None], self.spec)
        generator = _fork(state.generator)
        x = frames_to_unit(frame.to(self.device))[:, None]
        out = self.net.observe(x, action[:, None], generator, state.h, state.z)
        return RSSMState(h=out["h"][:, -1], z=out["z"][:, -1], generator=generator)

    @torch.no_grad()
    def predict_reward(self, state: RSSMState) -> Tensor:
        """(B,) reward on arriving at the state's newest frame (the reward head, symexp of its output)."""
        return symexp(self.net.reward_head(self.net.feature(state.h, state.z)).squeeze(-1).float())

    @torch.no_grad()
    def predict_continue(self, state: RSSMState) -> Tensor:
        """(B,) probability in [0, 1] that the episode goes on after the state's newest frame."""
        return torch.sigmoid(self.net.continue_head(self.net.feature(state.h, state.z)).squeeze(-1).float())
