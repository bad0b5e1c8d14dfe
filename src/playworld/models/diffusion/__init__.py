"""The `diffusion` family: an EDM denoiser over pixels conditioned on past frames and actions (GameNGen / DIAMOND).

    config.py   DiffusionConfig (every option, documented)
    network.py  Denoiser: EDM preconditioning around the conditional U-Net of models/nn.py (or backbone.py's)
    backbone.py backbone 'diffusers': diffusers' UNet2DModel as that U-Net (the `video` extra)
    pretrained.py --init: a UNet2DModel saved with save_pretrained, from a local folder
    loss.py     the EDM objective: teacher forcing with context noise, self forcing, diffusion forcing
    sampler.py  Euler and Heun samplers over a Karras schedule
    here        the Family registration and `DiffusionWorldModel`, the sampler behind `WorldModel`
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.data.memory import nearest, thumbnails
from playworld.errors import PlayworldError
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.loss import diffusion_forcing_loss, edm_loss, self_forcing_loss
from playworld.models.diffusion.network import Denoiser
from playworld.models.diffusion.sampler import SAMPLERS, karras_sigmas
from playworld.models.interface import WorldSpec, check_actions, context_window, frames_to_unit, unit_to_frames
from playworld.models.registry import Family, register_family


@dataclass
class DiffusionState:
    frames: Tensor  # (B, K, 3, H, W) float in [-1, 1]: the context, newest last
    actions: Tensor  # (B, K) int64 or (B, K, dim) float32: actions[:, i] led into frames[:, i]
    rng: Tensor  # the sampler's generator state, so a state always samples the same next frame
    memory: Tensor | None = None  # memory models: (B, N, 3, H, W) the frames older than the context, oldest first
    keys: Tensor | None = None  # (B, N, D): their retrieval keys (playworld.data.memory)


class DiffusionWorldModel:
    """The denoiser plus its sampler as a `WorldModel`: each `step` denoises one new frame from noise."""

    def __init__(self, net: Denoiser, config: DiffusionConfig, spec: WorldSpec):
        self.net, self.config, self.spec = net, config, spec
        self.sample = SAMPLERS[config.sampler]
        self.sigmas = karras_sigmas(int(config.steps), config.sigma_min, config.sigma_max, config.rho)

    max_sampling_steps = 16
    """more denoising steps than this buys nothing at play speed"""

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def sampling_steps(self) -> int:
        return len(self.sigmas) - 1

    def set_sampling_steps(self, steps: int) -> int:
        """Sample with a Karras schedule of `steps` levels (1 to `max_sampling_steps`) from the next step on."""
        if not 1 <= int(steps) <= self.max_sampling_steps:
            raise PlayworldError(f"sampling steps {steps} outside 1 to {self.max_sampling_steps}", "choose a value in that range")
        c = self.config
        self.sigmas = karras_sigmas(int(steps), c.sigma_min, c.sigma_max, c.rho)
        return self.sampling_steps

    def _actions(self, actions: Any, lead: tuple[int, ...]) -> Tensor:
        """Validate and move actions of leading shape `lead` ((B,) or (B, T)) to the model's device."""
        return check_actions(actions, self.spec.action_space, lead, self.device, torch.float32)

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> DiffusionState:
        """frames (B, T, 3, H, W) uint8 (or float in [0, 1]) and their actions (B, T[, dim]).

        The newest K frames are kept; fewer than K are padded by repeating the oldest with no-op actions.
        """
        older = frames[:, : max(0, frames.shape[1] - self.spec.context)]  # what a memory model keeps beyond its context
        frames, actions = context_window(frames, actions, self.spec, self.device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        rng = torch.Generator(device=self.device).manual_seed(int(seed)).get_state()
        state = DiffusionState(frames=frames, actions=actions, rng=rng)
        if self.config.memory:
            memory = frames_to_unit(older.to(self.device))[:, -int(self.config.memory_size):]
            state.memory, state.keys = memory, thumbnails(memory)
        return state

    def step(self, state: DiffusionState, action: Tensor) -> tuple[DiffusionState, Tensor]:
        """action (B,) or (B, dim) taken at the newest frame -> the next frame (B, 3, H, W) uint8."""
        b = state.frames.shape[0]
        action = self._actions(action, (b,))
        generator = torch.Generator(device=self.device)
        generator.set_state(state.rng)
        with torch.inference_mode():
            context, level = state.frames, float(self.config.context_noise_sample)
            if level > 0:
                context = context + level * torch.randn(context.shape, generator=generator, device=self.device)
            actions = torch.cat([state.actions, action[:, None]], dim=1)  # (B, K+1[, dim])
            newest = context[:, -1] if self.config.residual_base == "noised" else state.frames[:, -1]
            base, inside = self.net.origin(context, actions, newest)
            context_sigma = torch.full((b,), level, device=self.device)
            x = torch.randn((b, *self.spec.frame_shape), generator=generator, device=self.device) * self.sigmas[0]

            def generate(memory: tuple[Tensor, Tensor] | None) -> Tensor:
                c = self.net.condition(context, actions, context_sigma, base, inside, memory)
                return (c.base + self.sample(lambda x, sigma: self.net.denoise(x, sigma, c), x, self.sigmas)).clamp(-1, 1)

            frame = generate(None)  # a memory model's draft: the key its memory frame is retrieved with
            if self.config.memory and state.memory.shape[1] > 0:
                at = nearest(state.keys, thumbnails(frame))
                rows = torch.arange(b, device=self.device)
                frame = generate((state.memory[rows, at], torch.ones(b, dtype=torch.bool, device=self.device)))
            frame = unit_to_frames(frame)  # (B, 3, H, W) uint8
            frames = torch.cat([state.frames[:, 1:], frames_to_unit(frame)[:, None]], dim=1)
            actions = actions[:, 1:]
        # outside inference mode, so callers may keep states (and, e.g., cat them) freely
        new = DiffusionState(frames=frames.clone(), actions=actions.clone(), rng=generator.get_state())
        if self.config.memory:  # the frame leaving the context joins the memory (a cat here makes ordinary tensors)
            size = int(self.config.memory_size)
            new.memory = torch.cat([state.memory, state.frames[:, :1]], dim=1)[:, -size:]
            new.keys = torch.cat([state.keys, thumbnails(state.frames[:, 0])[:, None]], dim=1)[:, -size:]
        return new, frame.clone()


def _unwrap(net: nn.Module) -> Denoiser:
    """The bare Denoiser inside a DDP and/or torch.compile wrapper."""
    for _ in range(3):
        net = getattr(net, "module", net)
        net = getattr(net, "_orig_mod", net)
    return net


@register_family
class Diffusion(Family):
    name = "diffusion"
    Config = DiffusionConfig
    supports_regimes = ("teacher_forcing", "self_forcing", "diffusion_forcing")
    capabilities = ("OnDevice", "TunableSampler")

    def future_length(self, config: DiffusionConfig) -> int:
        return 1  # teacher forcing: one target frame per window

    def uses_memory(self, config: DiffusionConfig) -> bool:
        return bool(config.memory)

    def build(self, config: DiffusionConfig, spec: WorldSpec) -> nn.Module:
        return Denoiser(config, spec)

    def loss(
        self, net: nn.Module, batch: Batch, config: DiffusionConfig, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return edm_loss(net, batch, config, generator)

    def check_regime(self, config: DiffusionConfig, regime: str) -> None:
        super().check_regime(config, regime)
        if regime == "diffusion_forcing" and not config.frame_noise_levels:
            raise PlayworldError(
                "diffusion forcing tells the network each context frame's noise level, and this model takes one level",
                "add --set model.frame_noise_levels=true (a new run: it changes the network)",
            )

    def regime_loss(self, net, batch, config: DiffusionConfig, step, generator, regime) -> tuple[Tensor, dict[str, float]]:
        """Teacher forcing (with or without context noise), self forcing or diffusion forcing; see loss.py."""
        if regime.name == "self_forcing":
            return self_forcing_loss(net, batch, config, generator, regime.rollout, regime.grad_steps, regime.context_noise)
        if regime.name == "diffusion_forcing":
            self.check_regime(config, regime.name)
            return diffusion_forcing_loss(net, batch, config, generator)
        self.check_regime(config, regime.name)
        return edm_loss(net, batch, config, generator, context_noise=regime.context_noise)

    def world_model(self, net: nn.Module, config: DiffusionConfig, spec: WorldSpec) -> DiffusionWorldModel:
        return DiffusionWorldModel(_unwrap(net), config, spec)

    def init_from(self, net: nn.Module, config: DiffusionConfig, spec: WorldSpec, path: Path) -> dict:
        """Copy a UNet2DModel saved with save_pretrained in the local folder `path` (backbone 'diffusers'); see
        pretrained.py."""
        if importlib.util.find_spec("diffusers") is None:
            raise PlayworldError("--init loads a diffusers UNet2DModel, and diffusers is not installed",
                                 "pip install 'playworld[video]'")
        from playworld.models.diffusion.pretrained import load_backbone  # diffusers: an optional extra

        return load_backbone(_unwrap(net), Path(path), config, spec)


__all__ = ["Diffusion", "DiffusionConfig", "DiffusionState", "DiffusionWorldModel", "Denoiser"]
