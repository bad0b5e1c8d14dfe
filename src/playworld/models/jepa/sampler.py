"""The `jepa` family behind the `WorldModel` interface: it imagines in representation space.

    state = model.reset(frames, actions)     # encodes the K context frames (online encoder)
    state, frame = model.step(state, action) # predicts the next representation; the probe decoder draws it
    model.advance(state, action)             # the same next state, no frame drawn (what planners use)
    model.features(state)   -> (B, D*h*w)    # the newest representation, flattened (LatentState)
    model.observe(state, frame, action)      # the state after `action` led into a real frame (encoded)
    model.decode(state)     -> (B, 3, R, R)  # the probe's frame for a state

The model is deterministic: the seed given to `reset` is accepted and unused. States are immutable:
each step makes a new one, so a planner may branch many futures from one state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from playworld.models.interface import WorldSpec, check_actions, check_frames, context_window, frames_to_unit, unit_to_frames
from playworld.models.jepa.network import JEPANet


@dataclass(frozen=True)
class JEPAState:
    window: Tensor  # (B, K, D, h, w) the K newest representations (encoded or predicted), newest last


class JEPAWorldModel:
    def __init__(self, net: JEPANet, config, spec: WorldSpec):
        self.net, self.config, self.spec = net, config, spec

    @property
    def device(self) -> torch.device:
        return self.net.decoder.net[0].weight.device

    @torch.no_grad()
    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> JEPAState:
        b = frames.shape[0]
        if b > 1 and frames.shape[1:] == (self.spec.context, *self.spec.frame_shape) and bool((frames[1:] == frames[:1]).all()):
            # one context repeated over the batch (how CEM / MPPI branch their plans): encoded once, the same result
            check_actions(actions, self.spec.action_space, tuple(frames.shape[:2]), self.device)
            x, _ = context_window(frames[:1], actions[:1], self.spec, self.device)
            return JEPAState(window=self.net.encode(x).expand(b, *([-1] * 4)))
        x, _ = context_window(frames, actions, self.spec, self.device)  # (B, K, 3, R, R) in [-1, 1]
        return JEPAState(window=self.net.encode(x))

    @torch.no_grad()
    def advance(self, state: JEPAState, action: Tensor) -> JEPAState:
        """`step` without drawing the frame: the predictor alone (the probe decoder is most of a step's cost)."""
        action = check_actions(action, self.spec.action_space, (state.window.shape[0],), self.device)
        z = self.net.predict(state.window, action)
        return JEPAState(window=torch.cat([state.window[:, 1:], z[:, None]], 1))

    @torch.no_grad()
    def step(self, state: JEPAState, action: Tensor) -> tuple[JEPAState, Tensor]:
        state = self.advance(state, action)
        return state, self.decode(state)

    @torch.no_grad()
    def decode(self, state: JEPAState) -> Tensor:
        """(B, 3, R, R) uint8: the probe decoder's frame of the newest representation."""
        return unit_to_frames(self.net.decoder(state.window[:, -1]).float())

    @property
    def feature_dim(self) -> int:
        d, h, w = self.net.token_shape
        return int(d * h * w)

    @torch.no_grad()
    def features(self, state: JEPAState) -> Tensor:
        """(B, D*h*w) float32: the newest representation (layer-normalised tokens), flattened."""
        return state.window[:, -1].flatten(1).float()

    @torch.no_grad()
    def observe(self, state: JEPAState, frame: Tensor, action: Tensor) -> JEPAState:
        """The state after `action` led into the real `frame` (B, 3, R, R) uint8: its encoding joins the window."""
        check_frames(frame[:, None], self.spec)
        check_actions(action, self.spec.action_space, (frame.shape[0],), self.device)
        z = self.net.encoder(frames_to_unit(frame.to(self.device)))
        return JEPAState(window=torch.cat([state.window[:, 1:], z[:, None]], 1))
