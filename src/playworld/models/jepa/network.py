"""The JEPA networks: a conv encoder of token grids (online and EMA target), the action-conditioned
predictor, and the probe decoder.

A frame (3, R, R) in [-1, 1] becomes a grid of tokens z (D, R/p, R/p), p = `patch`, each token
layer-normalised over its D channels (so no token can shrink to zero; the variance guard keeps them
from all agreeing). The predictor reads the K newest grids and the action that leads into the next
frame, and predicts that frame's grid:

    z_{t+1} = LN(z_t + out(blocks(in(cat(z_{t-K+1} .. z_t)), FiLM(a_{t+1}))))      # (B, D, h, w)

The probe decoder turns a grid back into a frame; it is trained on grids under stop-gradient, so it
shows what the representation holds without shaping it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec


def normalise(z: Tensor) -> Tensor:
    """Layer norm of each token over its channels: (..., D, h, w) -> the same shape."""
    return F.layer_norm(z.movedim(-3, -1), (z.shape[-3],)).movedim(-1, -3)


def _stages(patch: int) -> int:
    if patch < 2 or patch & (patch - 1):
        raise PlayworldError(f"model.patch must be a power of two >= 2, got {patch}", "use e.g. 4 or 8")
    return patch.bit_length() - 1


class Encoder(nn.Module):
    """Frames (N, 3, R, R) in [-1, 1] -> token grids (N, D, R/patch, R/patch), layer-normalised."""

    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__()
        layers, c_in = [], 3
        self.widths = [channels * 2 ** min(i, 2) for i in range(_stages(patch))]
        for c in self.widths:  # each stage halves the side: 4x4 convs, stride 2
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(1, c), nn.SiLU()]
            c_in = c
        layers.append(nn.Conv2d(c_in, dim, 3, padding=1))  # each token also sees its neighbours
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return normalise(self.net(x))


class Predictor(nn.Module):
    """K grids (B, K, D, h, w) and the next action's vector (B, A) -> the next grid (B, D, h, w)."""

    def __init__(self, context: int, dim: int, width: int, layers: int, act_dim: int):
        super().__init__()
        self.inp = nn.Conv2d(context * dim, width, 1)
        self.norms = nn.ModuleList(nn.GroupNorm(1, width) for _ in range(layers))
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(layers))
        self.width, self.layers = width, layers
        # FiLM: the action sets a scale and a shift of every block; an action-free world has none
        self.film = nn.Sequential(nn.Linear(act_dim, width), nn.SiLU(), nn.Linear(width, 2 * width * layers)) if act_dim else None
        self.out = nn.Conv2d(width, dim, 1)
        with torch.no_grad():  # starts near "nothing changes", z_{t+1} = z_t (not at it: every weight gets a gradient)
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, window: Tensor, action: Tensor | None) -> Tensor:
        b = window.shape[0]
        h = self.inp(window.flatten(1, 2))  # (B, W, h, w)
        if self.film is not None and action is not None:
            scale, shift = self.film(action).view(b, self.layers, 2, self.width, 1, 1).unbind(2)
        for i, (norm, conv) in enumerate(zip(self.norms, self.convs)):
            x = norm(h)
            if self.film is not None and action is not None:
                x = x * (1 + scale[:, i]) + shift[:, i]
            h = h + conv(F.silu(x))
        return normalise(window[:, -1] + self.out(F.silu(h)))


class ProbeDecoder(nn.Module):
    """Token grids (N, D, h, w) -> frames (N, 3, R, R), unbounded (the loss compares them with [-1, 1] targets)."""

    def __init__(self, encoder: Encoder, dim: int):
        super().__init__()
        widths = encoder.widths[::-1]
        layers: list[nn.Module] = [nn.Conv2d(dim, widths[0], 3, padding=1), nn.GroupNorm(1, widths[0]), nn.SiLU()]
        for i, c_in in enumerate(widths):
            c_out = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.SiLU()]
        layers.append(nn.Conv2d(widths[-1], 3, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class JEPANet(nn.Module):
    """Every weight of the family: online encoder, EMA target encoder (no gradient), predictor, probe decoder."""

    def __init__(self, config, spec: WorldSpec):
        super().__init__()
        if spec.resolution % config.patch:
            raise PlayworldError(f"resolution {spec.resolution} is not divisible by model.patch={config.patch}",
                                 "pick a patch that divides the resolution (a power of two, e.g. 4 or 8)")
        space = spec.action_space
        self.kind = space.kind
        self.act_dim = space.dim if space.kind == "continuous" else (space.n if space.kind == "discrete" else 0)
        if space.kind == "continuous":
            low, high = torch.tensor(space.low), torch.tensor(space.high)
            finite = torch.isfinite(low) & torch.isfinite(high)
            self.register_buffer("act_center", torch.where(finite, (low + high) / 2, torch.zeros_like(low)), persistent=False)
            self.register_buffer("act_half", torch.where(finite, ((high - low) / 2).clamp_min(1e-6), torch.ones_like(low)),
                                 persistent=False)
        self.context, self.dim = spec.context, config.dim
        self.side = spec.resolution // config.patch
        self.encoder = Encoder(config.channels, config.dim, config.patch)
        self.target = copy.deepcopy(self.encoder)  # moved toward the online encoder by `update_target`, never by a gradient
        self.target.requires_grad_(False)
        self.predictor = Predictor(spec.context, config.dim, config.pred_channels, config.pred_layers, self.act_dim)
        self.decoder = ProbeDecoder(self.encoder, config.dim)
        # what a blanked patch shows the online encoder (only with masking: otherwise it would get no gradient)
        self.mask_token = nn.Parameter(torch.zeros(3, 1, 1)) if config.mask_ratio > 0 else None

    @property
    def token_shape(self) -> tuple[int, int, int]:
        return (self.dim, self.side, self.side)

    def action_input(self, action: Tensor) -> Tensor | None:
        """(B,) int or (B, dim) float -> (B, A) float: one-hot, or scaled to [-1, 1] by the bounds; None without actions."""
        if self.kind == "continuous":
            return ((action.float() - self.act_center) / self.act_half).clamp(-1, 1)
        if self.kind == "discrete":
            return F.one_hot(action.long(), self.act_dim).float()
        return None

    def encode(self, frames: Tensor) -> Tensor:
        """(B, T, 3, R, R) in [-1, 1] -> (B, T, D, h, w) with the online encoder."""
        return self.encoder(frames.flatten(0, 1)).unflatten(0, frames.shape[:2])

    def mask(self, frames: Tensor, ratio: float, generator: torch.Generator | None) -> Tensor:
        """Blank a `ratio` share of each frame's patches (one patch = one token's pixels) with the mask token."""
        b, t, _, r, _ = frames.shape
        p = r // self.side
        gen_device = generator.device if generator is not None else frames.device
        keep = torch.rand(b, t, 1, self.side, self.side, generator=generator, device=gen_device).to(frames.device) >= ratio
        keep = keep.repeat_interleave(p, -2).repeat_interleave(p, -1)  # (B, T, 1, R, R)
        return torch.where(keep, frames, self.mask_token.to(frames.dtype))

    @torch.no_grad()
    def update_target(self, decay: float) -> None:
        """target <- decay * target + (1 - decay) * online (the EMA step of the target encoder)."""
        for t, o in zip(self.target.parameters(), self.encoder.parameters()):
            t.lerp_(o.detach(), 1.0 - decay)
        for t, o in zip(self.target.buffers(), self.encoder.buffers()):
            t.copy_(o)

    def predict(self, window: Tensor, action: Tensor) -> Tensor:
        """window (B, K, D, h, w), action (B,) / (B, dim) -> (B, D, h, w)."""
        return self.predictor(window, self.action_input(action))
