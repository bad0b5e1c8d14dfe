"""The `clip` family: video diffusion that denoises a chunk of T frames jointly (VDM / Latte / Kang et al.'s DiT).

    config.py      ClipConfig (every option, documented)
    network.py     ClipDenoiser: diffusers' LatteTransformer3DModel (factorised space-time attention) over
                   K context + T future frames, each frame with its own timestep, action and role
    loss.py        the objective: the T future frames noised together, regressed onto the scheduler's target
    sampler.py     the schedule (diffusers' DDPMScheduler) and the chunk sampler over any diffusers scheduler
    world.py       ClipWorldModel: chunked autoregression behind `WorldModel` (a chunk commits to its action)
    pretrained.py  --init: a LatteTransformer3DModel saved with save_pretrained, from a local folder
    here           the Family registration

diffusers is an optional extra (`pip install 'playworld[video]'`). Without it the family is not
listed, and asking for it is an error naming the extra. The modules that import diffusers are
imported inside the methods below, not at the top: diffusers takes 3-5 s to import (torch._dynamo
and every diffusers model class, measured on the 2-core machine), and the registry imports every
family each time it lists them, which is every `playworld` start.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.clip.config import ClipConfig
from playworld.models.interface import WorldSpec
from playworld.models.registry import Family, register_family, register_unavailable


class Clip(Family):
    name = "clip"
    Config = ClipConfig
    capabilities = ("OnDevice", "TunableSampler", "DebugState")

    def future_length(self, config: ClipConfig) -> int:
        return int(config.chunk)  # a training window: K context frames, then one chunk of T

    def check_dataset(self, config: ClipConfig, spec: WorldSpec, dataset) -> None:
        need = spec.context + int(config.chunk)
        longest = max((dataset.episode_length(e) for e in dataset.episode_ids()), default=0)
        if longest < need:
            raise PlayworldError(
                f"clip windows need {need} frames (K={spec.context} context + a chunk of {config.chunk}); "
                f"the longest episode in {dataset.path} has {longest}",
                "collect longer episodes, or lower --set model.chunk or --set model.context",
            )

    def build(self, config: ClipConfig, spec: WorldSpec) -> nn.Module:
        from playworld.models.clip.network import ClipDenoiser  # diffusers: see the module docstring

        return ClipDenoiser(config, spec)

    def loss(
        self, net: nn.Module, batch: Batch, config: ClipConfig, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return self._loss(net, batch, config, generator, context_noise=True)

    def regime_loss(self, net, batch, config: ClipConfig, step, generator, regime) -> tuple[Tensor, dict[str, float]]:
        """Teacher forcing, with or without context noise (train.context_noise)."""
        self.check_regime(config, regime.name)
        return self._loss(net, batch, config, generator, context_noise=regime.context_noise)

    def _loss(self, net, batch, config, generator, context_noise: bool) -> tuple[Tensor, dict[str, float]]:
        from playworld.models.clip.loss import chunk_loss  # diffusers: see the module docstring
        from playworld.models.clip.sampler import training_schedule

        return chunk_loss(net, batch, config, training_schedule(config), generator, context_noise)

    def world_model(self, net: nn.Module, config: ClipConfig, spec: WorldSpec):
        from playworld.models.clip.world import ClipWorldModel, unwrap  # diffusers: see the module docstring

        return ClipWorldModel(unwrap(net), config, spec)

    def init_from(self, net: nn.Module, config: ClipConfig, spec: WorldSpec, path: Path) -> dict:
        """Copy a LatteTransformer3DModel saved with save_pretrained in the local folder `path`; see pretrained.py."""
        from playworld.models.clip.pretrained import load_backbone  # diffusers: see the module docstring
        from playworld.models.clip.world import unwrap

        return load_backbone(unwrap(net), Path(path), config, spec)


if importlib.util.find_spec("diffusers") is not None:
    register_family(Clip)
else:
    register_unavailable("clip", PlayworldError(
        "the clip family is built on diffusers, which is not installed", "pip install 'playworld[video]'"))

__all__ = ["Clip", "ClipConfig"]
