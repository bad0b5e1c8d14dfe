"""A tiny model family for the trainer's tests: a conv net that predicts the next frame with MSE.

It goes through exactly the `Family` API the real families use, so the loop, checkpoints, resume and
the CLI are tested without depending on any real family. `nan_at_step` makes the loss NaN on purpose;
`noise=0` makes the loss deterministic, so runs with different noise seeds (ranks) can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from playworld.models.interface import WorldSpec, frames_to_unit, unit_to_frames
from playworld.models.registry import Family, _FAMILIES, register_family

NAME = "tiny-test"


@dataclass
class TinyConfig:
    width: int = 8
    """hidden channels"""
    nan_at_step: int = -1
    """from this training step on the loss is NaN (-1 = never)"""
    noise: float = 0.01
    """std of the seeded noise added to the context in the loss (0: the loss is a deterministic function of the batch)"""


class TinyNet(nn.Module):
    def __init__(self, config: TinyConfig, spec: WorldSpec):
        super().__init__()
        n_act = spec.action_space.dim if spec.action_space.kind == "continuous" else spec.action_space.n
        self.continuous = spec.action_space.kind == "continuous"
        self.embed = nn.Linear(n_act, config.width) if self.continuous else nn.Embedding(n_act, config.width)
        self.inp = nn.Conv2d(3 * spec.context, config.width, 3, padding=1)
        self.out = nn.Conv2d(config.width, 3, 3, padding=1)
        self.register_buffer("calls", torch.zeros(()))  # a buffer, so EMA of buffers is exercised

    def forward(self, context: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        # context (B, K, 3, H, W) in [-1, 1]; action (B,) or (B, dim) -> next frame (B, 3, H, W)
        h = self.inp(context.flatten(1, 2)) + self.embed(action.float() if self.continuous else action)[..., None, None]
        return context[:, -1] + self.out(torch.relu(h))


class TinyWorldModel:
    def __init__(self, net: TinyNet, config: TinyConfig, spec: WorldSpec):
        self.net, self.config, self.spec = net.eval(), config, spec

    def reset(self, frames, actions, seed=None):
        dev = next(self.net.parameters()).device
        return frames_to_unit(frames[:, -self.spec.context :].to(dev))

    @torch.no_grad()
    def step(self, state, action):
        nxt = self.net(state, action.to(state.device)).clamp(-1, 1)
        return torch.cat([state[:, 1:], nxt[:, None]], 1), unit_to_frames(nxt)


class Tiny(Family):
    name = NAME
    Config = TinyConfig
    stochastic = False

    def build(self, config, spec):
        return TinyNet(config, spec)

    def loss(self, net, batch, config, step, generator=None):
        context = frames_to_unit(batch.context_frames)  # K = spec.context, cut by the loader
        target = frames_to_unit(batch.future_frames[:, 0])
        # a little seeded noise on the context, so the generator's state matters for resume
        noise = torch.randn(context.shape, generator=generator, device=context.device) * config.noise
        loss = F.mse_loss(net(context + noise, batch.future_actions[:, 0]), target)
        if 0 <= config.nan_at_step <= step:
            loss = loss * float("nan")
        return loss, {"mse": float(loss.detach())}

    def world_model(self, net, config, spec):
        return TinyWorldModel(net, config, spec)


if NAME not in _FAMILIES:
    register_family(Tiny)
