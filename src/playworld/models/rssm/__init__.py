"""The `rssm` family: a DreamerV3-style recurrent state-space model, built for fast imagination.

    config.py   RSSMConfig (sizes, KL balancing, free bits, loss scales)
    network.py  encoder, RSSM core (GRU + categorical latents), decoder, reward and continue heads
    loss.py     the world-model objective on a Batch of K + F frames
    sampler.py  RSSMWorldModel: reset filters the context, step imagines with the prior; it also
                offers predict_reward(state) and predict_continue(state) for agents
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import Family, register_family
from playworld.models.rssm.config import RSSMConfig
from playworld.models.rssm.loss import rssm_loss
from playworld.models.rssm.network import RSSMNet
from playworld.models.rssm.sampler import RSSMState, RSSMWorldModel

__all__ = ["RSSMConfig", "RSSM", "RSSMNet", "RSSMState", "RSSMWorldModel"]


@register_family
class RSSM(Family):
    name = "rssm"
    Config = RSSMConfig
    capabilities = ("OnDevice", "LatentState", "RewardHead", "ContinueHead")

    def make_config(self, overrides=None) -> RSSMConfig:
        config = super().make_config(overrides)
        for field in ("horizon", "channels", "deter", "stoch", "classes", "hidden"):
            if getattr(config, field) < 1:
                raise PlayworldError(f"model.{field} must be >= 1, got {getattr(config, field)}", f"set model.{field} to 1 or more")
        if config.classes < 2:
            raise PlayworldError(f"model.classes must be >= 2, got {config.classes}", "set model.classes to 2 or more")
        if not 0.0 <= config.unimix < 1.0:
            raise PlayworldError(f"model.unimix must be in [0, 1), got {config.unimix}", "use e.g. 0.01")
        return config

    def build(self, config: RSSMConfig, spec: WorldSpec) -> nn.Module:
        return RSSMNet(config, spec)

    def loss(
        self, net: nn.Module, batch: Batch, config: RSSMConfig, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return rssm_loss(net, batch, config, step, generator)

    def world_model(self, net: nn.Module, config: RSSMConfig, spec: WorldSpec) -> RSSMWorldModel:
        return RSSMWorldModel(net, config, spec)
