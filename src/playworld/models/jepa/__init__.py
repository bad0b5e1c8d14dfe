"""The `jepa` family, after V-JEPA 2-AC (Assran et al. 2025): predict in representation space, plan toward goals.

    config.py   JEPAConfig (sizes, masking, EMA decay, loss scales)
    network.py  the conv encoder of token grids (online + EMA target), the action-conditioned predictor,
                the probe decoder
    loss.py     teacher forcing + rollout in representation space, the variance guard, the probe
    sampler.py  JEPAWorldModel: reset encodes the context, step predicts the next representation and the
                probe draws it; it declares LatentState, so planners compare representations directly

How the encoder is learned, and why. V-JEPA 2-AC freezes an encoder pretrained on a million hours of
video and trains only the predictor. Here there is no such encoder, and a run is bounded by minutes,
not by a step count known in advance (`--minutes`), so a stage switch "encoder first, then the
predictor" has no step to happen at. The encoder is learned at the same time, self-supervised, as
I-JEPA / V-JEPA learn theirs: the predictor's targets come from an EMA copy of the encoder under
stop-gradient, the online encoder sees masked frames, and no loss ever reads a pixel through the
representation (the probe decoder trains on it under stop-gradient). The predictor therefore shapes
the representation toward what actions change, which is what a planner compares.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.jepa.config import JEPAConfig
from playworld.models.jepa.loss import effective_rank, jepa_loss, spread
from playworld.models.jepa.network import JEPANet
from playworld.models.jepa.sampler import JEPAState, JEPAWorldModel
from playworld.models.registry import Family, register_family

__all__ = ["JEPA", "JEPAConfig", "JEPANet", "JEPAState", "JEPAWorldModel", "effective_rank", "spread"]


@register_family
class JEPA(Family):
    name = "jepa"
    Config = JEPAConfig
    stochastic = False  # the predictor is deterministic: one future per action sequence
    capabilities = ("OnDevice", "LatentState")

    def make_config(self, overrides=None) -> JEPAConfig:
        config = super().make_config(overrides)
        for field in ("horizon", "channels", "dim", "pred_channels", "pred_layers"):
            if getattr(config, field) < 1:
                raise PlayworldError(f"model.{field} must be >= 1, got {getattr(config, field)}", f"set model.{field} to 1 or more")
        if config.patch < 2 or config.patch & (config.patch - 1):
            raise PlayworldError(f"model.patch must be a power of two >= 2, got {config.patch}", "use e.g. 4 or 8")
        if not 0.0 <= config.mask_ratio < 1.0:
            raise PlayworldError(f"model.mask_ratio must be in [0, 1), got {config.mask_ratio}", "use e.g. 0.25 (0: no masking)")
        if not 0.0 <= config.target_decay < 1.0:
            raise PlayworldError(f"model.target_decay must be in [0, 1), got {config.target_decay}", "use e.g. 0.99")
        return config

    def build(self, config: JEPAConfig, spec: WorldSpec) -> nn.Module:
        return JEPANet(config, spec)

    def loss(
        self, net: nn.Module, batch: Batch, config: JEPAConfig, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return jepa_loss(net, batch, config, step, generator)

    def world_model(self, net: nn.Module, config: JEPAConfig, spec: WorldSpec) -> JEPAWorldModel:
        return JEPAWorldModel(net, config, spec)
