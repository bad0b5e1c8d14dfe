"""GenieNet: every trainable part of the family in one module (tokenizer, optional LAM, dynamics, action embedding).

`resolve_actions` decides, at build time, whether the dynamics is conditioned on the dataset's true
actions or on latent actions, and rejects combinations the data cannot support.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from playworld.errors import PlayworldError
from playworld.models.genie.config import GenieConfig
from playworld.models.genie.dynamics import Dynamics
from playworld.models.genie.lam import LatentActionModel
from playworld.models.genie.loss import genie_loss
from playworld.models.genie.tokenizer import Tokenizer
from playworld.models.interface import WorldSpec
from playworld.models.nn import ActionScale


def resolve_actions(config: GenieConfig, spec: WorldSpec) -> str:
    """'true' or 'latent' for this config on data with `spec`; PlayworldError for true actions on action-free data."""
    kind = spec.action_space.kind
    if config.actions == "auto":
        return "latent" if kind == "none" else "true"
    if config.actions == "true" and kind == "none":
        raise PlayworldError(
            f"genie is set to train on the dataset's true actions, but the data ({spec.world or 'this dataset'}) has none",
            "use --set model.actions=latent (or auto) to learn latent actions from the video",
        )
    return config.actions


class ActionTokens(nn.Module):
    """Per-frame action -> (B, T, D). Discrete/latent: a table; continuous: a linear map of the action scaled to [-1, 1]."""

    def __init__(self, spec: WorldSpec, mode: str, codebook: int, dim: int):
        super().__init__()
        space = spec.action_space
        self.continuous = mode == "true" and space.kind == "continuous"
        if self.continuous:
            self.scale = ActionScale(space.low, space.high)
            self.embed = nn.Linear(space.dim, dim)
        else:
            # latent: codebook entries plus one 'unknown' entry for a window's first frame, whose
            # action cannot be inferred (no frame before it)
            self.embed = nn.Embedding(codebook + 1 if mode == "latent" else space.n, dim)

    def forward(self, actions: Tensor) -> Tensor:
        if self.continuous:
            return self.embed(self.scale(actions))
        return self.embed(actions.long())


class GenieNet(nn.Module):
    def __init__(self, config: GenieConfig, spec: WorldSpec):
        super().__init__()
        self.mode = resolve_actions(config, spec)
        self.tokenizer = Tokenizer(config.levels, config.tok_channels, spec.channels)
        down = self.tokenizer.downsample
        lam_down = 2 ** (len(config.lam_channels) - 1)
        if spec.resolution % down or spec.resolution % lam_down:
            raise PlayworldError(
                f"genie halves {spec.resolution}x{spec.resolution} frames {len(config.tok_channels) - 1} times, which does not divide",
                "use fewer tok_channels/lam_channels stages, or a resolution divisible by 2^(stages - 1)",
            )
        self.side = spec.resolution // down
        self.codebook = int(config.codebook)
        self.lam = (
            LatentActionModel(
                config.codebook, config.lam_dim, config.lam_channels, config.lam_beta, spec.channels, config.lam_warmup
            )
            if self.mode == "latent" else None
        )
        self.actions = ActionTokens(spec, self.mode, config.codebook, config.dim)
        # band K + 1: a frame attends to itself and the K frames before it, as in a training window
        self.dynamics = Dynamics(config.vocab, self.side**2, config.dim, config.layers, config.heads, band=spec.context + 1,
                                spatial_rope=bool(config.spatial_rope))

    def forward(self, batch, config: GenieConfig, generator: torch.Generator | None = None, step: int = 0):
        """The training loss on a Batch at training step `step` -> (loss, logs); see loss.py."""
        return genie_loss(self, batch, config, generator, step)

    @property
    def unknown_action(self) -> int:
        """The latent action index of a frame whose predecessor is not known (latent mode only)."""
        return self.codebook

    def infer_actions(self, frames: Tensor) -> Tensor:
        """Latent actions of a clip (B, T, 3, H, W) in [-1, 1] -> indices (B, T) int64.

        [:, 0] is `unknown_action`; [:, t] is the LAM's code for the transition frame t-1 -> frame t.
        """
        b, t = frames.shape[:2]
        first = torch.full((b, 1), self.unknown_action, dtype=torch.long, device=frames.device)
        if t == 1:
            return first
        _, idx, _ = self.lam.infer(frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1))
        return torch.cat([first, idx.view(b, t - 1)], dim=1)
