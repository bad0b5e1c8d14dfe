"""The EDM-preconditioned denoiser (Karras et al. 2022), as used by DIAMOND and GameNGen.

    D(x; sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma), context, actions)

x is the frame being generated, in [-1, 1] (or, with `residual`, its change from the newest context
frame); F is the U-Net of models/nn.py; the K context frames enter by channel concatenation (their
stem share is computed once per frame, see `Conditioning`), the noise level, the context noise
level and the K+1 actions through adaptive group norm.

With `backbone: diffusers`, F is diffusers' UNet2DModel (backbone.py), and with `prediction` other than
'edm' the coefficients are a DDPM parameterisation's, written in EDM's terms (Karras et al. 2022,
Table 1, "VP"): epsilon: D = x - sigma * F; v: D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * F;
sample: D = F; always c_in = 1 / sqrt(sigma^2 + 1), which turns EDM's x = x0 + sigma * n into the
DDPM sample of the same signal-to-noise ratio. A pretrained diffusers model then computes inside D
exactly what it computed in its own pipeline, and EDM's samplers and losses run it unchanged.

Shapes: frames (B, 3, H, W), context (B, K, 3, H, W), actions (B, K+1) or (B, K+1, dim).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from playworld.errors import PlayworldError
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.transport import Transport
from playworld.models.interface import WorldSpec
from playworld.models.nn import ActionEmbedding, FourierFeatures, UNet


@dataclass
class Conditioning:
    """What stays fixed while one frame is denoised: computed once, reused by every sampler step."""

    side: Tensor | None  # (B, C0, H/p, W/p): the context (and memory) frames' share of the U-Net stem (the diffusers
    # backbone: the side frames themselves, (B, C_side, H, W), concatenated to x at each call)
    base: Tensor  # (B, 3, H, W): the newest context frame (the residual origin; zeros when not residual)
    cond: Tensor  # (B, cond_dim): action + context-noise embedding (noise level added per step)


class Denoiser(nn.Module):
    def __init__(self, config: DiffusionConfig, spec: WorldSpec):
        super().__init__()
        self.config = config
        self.sigma_data = float(config.sigma_data)
        self.residual = bool(config.residual)
        k, c, d = spec.context, spec.channels, int(config.cond_dim)
        space = spec.action_space
        self.prediction = config.prediction
        diffusers = config.backbone == "diffusers"  # the noise level enters UNet2DModel's own time embedding
        self.noise_embed = None if diffusers else FourierFeatures(d)
        self.context_noise_embed = FourierFeatures(d)
        # diffusion forcing: the K per-frame level embeddings, flattened in frame order -> cond_dim
        self.frame_noise_proj = nn.Linear(k * d, d) if config.frame_noise_levels else None
        self.action_embed = ActionEmbedding(
            space.kind, space.n, space.dim, space.low, space.high, steps=k + 1, emb=int(config.action_dim), out_dim=d,
        )
        if diffusers and importlib.util.find_spec("diffusers") is None:
            raise PlayworldError("backbone 'diffusers' is diffusers' UNet2DModel, and diffusers is not installed",
                                 "pip install 'playworld[video]', or --set model.backbone=playworld")
        if not diffusers:  # (the diffusers backbone's is built beside its U-Net, whose time embedding it feeds)
            self.cond_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.transport = None
        if config.transport > 0:
            if not self.residual:
                raise ValueError("transport moves the origin of the residual: it needs residual=true")
            self.transport = Transport(
                spec, int(config.transport), int(config.transport_patch), int(config.transport_channels),
                int(config.action_dim), int(config.groups), hard=bool(config.transport_hard),
                hard_always=bool(config.transport_hard_train), edge=config.transport_edge, flow=bool(config.transport_flow),
                remainder=bool(config.transport_remainder), global_=bool(config.transport_global),
                action_logits=bool(config.transport_action_logits), warp=config.transport_warp,
                position=bool(config.transport_position), keys_only=bool(config.transport_keys_only),
                expected=config.transport_score == "expected", gate=bool(config.transport_gate),
            )
        # the moved frame, its share from inside the frame and (transport_remainder) the sub-pixel part of the move
        moved = 0 if self.transport is None else c + self.transport.planes
        self.memory = bool(config.memory)
        remembered = c + 1 if self.memory else 0  # the memory frame and a plane saying whether there is one
        c_side = k * c + moved + remembered  # the side input: the K context frames, what transport made, the memory
        if diffusers:
            from playworld.models.diffusion.backbone import DiffusersUNet  # diffusers: an optional extra

            self.unet = DiffusersUNet(config, spec, c_side)
            # actions and context noise -> UNet2DModel's class embedding (identity), added to its time embedding;
            # the last layer starts at zero, so a loaded backbone computes what it computed before (--init)
            self.cond_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, self.unet.time_dim))
            nn.init.zeros_(self.cond_mlp[-1].weight)
            nn.init.zeros_(self.cond_mlp[-1].bias)
        else:
            self.unet = UNet(
                c_x=c, c_side=c_side, c_out=c, cond_dim=d, channels=config.channels, depths=config.depths,
                attention=config.attention, patch=int(config.patch), groups=int(config.groups),
                mid_attention=config.mid_attention,
            )

    def origin(self, context: Tensor, actions: Tensor, newest: Tensor) -> tuple[Tensor, Tensor | None]:
        """The frame (B, 3, H, W) a residual model predicts the change from: the newest context frame, or it
        moved by the learned transport (transport.py); zeros for a model that predicts the frame itself.
        Second, with transport, the share of each pixel that came from inside the frame (B, 1, H, W; with
        transport_remainder also the move's sub-pixel remainder, (B, 3, H, W)), else None.

        context (B, K, 3, H, W) in [-1, 1] as the network sees it (noised in training), actions (B, K+1[, dim]);
        newest: the newest context frame before any noise (residual_base 'clean': noise on the context is then
        augmentation of what the network sees, never part of the target; diffusion forcing, whose context
        frames may be noised up to sigma_max, always takes it), or as noised ('noised': the change then
        also undoes the noise).
        """
        if not self.residual:
            return torch.zeros_like(newest), None
        return (newest, None) if self.transport is None else self.transport(context, actions, newest)

    def training_origin(self, context: Tensor, actions: Tensor, newest: Tensor, target: Tensor | None = None
                        ) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """In training: the transported frame the transport's own loss scores, the origin the denoiser continues
        from (without gradient: its target takes the transport as given), that origin's inside share (or None), and
        what the own loss adds to the scored frame's MSE against `target`, the next frame (0, or with transport_score
        'expected' the shifts' spread, and with transport_gate the gate's own error: `Transport.both`).
        The first two differ with transport_hard_train or transport_flow alone: the mixture, and the hard move or the
        warp play will use."""
        if self.transport is not None and (self.transport.hard_always or self.transport.flow):
            return self.transport.both(context, actions, newest, target)
        origin, inside = self.origin(context, actions, newest)
        return origin, origin.detach(), None if inside is None else inside.detach(), origin.new_zeros(())

    def condition(
        self, context: Tensor, actions: Tensor, context_sigma: Tensor, base: Tensor, inside: Tensor | None = None,
        memory: tuple[Tensor, Tensor] | None = None,
    ) -> Conditioning:
        """context (B, K, 3, H, W) in [-1, 1] (already noised by `context_sigma`), actions (B, K+1[, dim]),
        base (B, 3, H, W) and inside (B, 1 or 3, H, W) or None: the residual's origin, as `origin` returns them.

        context_sigma: (B,) one level per example, or (B, K) one per frame (needs frame_noise_levels).
        memory: a memory model's (frame (B, 3, H, W) in [-1, 1], valid (B,) bool); None: no example has one.
        """
        cond = self.action_embed(actions) + self._context_noise(context_sigma, context.shape[1])
        side = [context.flatten(1, 2)] + ([] if self.transport is None else [base, inside])
        if self.memory:
            b, _, h, w = base.shape
            frame, valid = memory if memory is not None else (base.new_zeros(base.shape), base.new_zeros(b, dtype=torch.bool))
            plane = valid.to(base.dtype).view(b, 1, 1, 1)
            side += [frame.to(base.dtype) * plane, plane.expand(b, 1, h, w)]
        elif memory is not None:
            raise ValueError("a memory frame was given to a model built without memory")
        side = side[0] if len(side) == 1 else torch.cat(side, dim=1)
        return Conditioning(side=self.unet.embed_side(side), base=base, cond=cond)

    def _context_noise(self, context_sigma: Tensor, k: int) -> Tensor:
        """The context noise level(s) as a (B, cond_dim) embedding."""
        if self.frame_noise_proj is None:
            if context_sigma.ndim != 1:
                raise ValueError("per-frame context noise levels need a model built with frame_noise_levels=true")
            return self.context_noise_embed(context_sigma.log1p())
        levels = context_sigma if context_sigma.ndim == 2 else context_sigma[:, None].expand(-1, k)  # (B, K)
        emb = self.context_noise_embed(levels.reshape(-1).log1p())  # (B*K, d)
        return self.frame_noise_proj(emb.view(levels.shape[0], -1))

    def raw(self, x: Tensor, sigma: Tensor, c: Conditioning) -> Tensor:
        """F(c_in * x, c_noise, ...): the U-Net's output for x (B, 3, H, W) in diffusion space at levels sigma (B,)."""
        _, _, c_in, c_noise = coefficients(self.prediction, sigma, self.sigma_data)
        if self.noise_embed is None:  # the diffusers backbone: sigma becomes its DDPM timestep inside
            return self.unet(c_in * x, c.side, self.cond_mlp(c.cond), sigma).float()
        cond = self.cond_mlp(c.cond + self.noise_embed(c_noise))
        return self.unet(c_in * x, c.side, cond).float()

    def denoise(self, x: Tensor, sigma: Tensor, c: Conditioning) -> Tensor:
        """D(x; sigma): the denoised estimate, in diffusion space (the frame, or its change when residual)."""
        c_skip, c_out, _, _ = coefficients(self.prediction, sigma, self.sigma_data)
        return c_skip * x + c_out * self.raw(x, sigma, c)

    def forward(
        self, x: Tensor, sigma: Tensor, context: Tensor, actions: Tensor, context_sigma: Tensor, base: Tensor,
        inside: Tensor | None = None, memory: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """The training call (through forward, so torch.compile sees it): F's raw output (B, 3, H, W)."""
        return self.raw(x, sigma, self.condition(context, actions, context_sigma, base, inside, memory))


def edm_coefficients(sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EDM preconditioning, sigma (B,) -> c_skip, c_out, c_in as (B, 1, 1, 1) and c_noise (B,)."""
    sd2, s2 = sigma_data**2, sigma.float() ** 2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * sigma_data / (s2 + sd2).sqrt()
    c_in = 1 / (s2 + sd2).sqrt()
    view = (-1, 1, 1, 1)
    return c_skip.view(view), c_out.view(view), c_in.view(view), sigma.log() / 4


def coefficients(prediction: str, sigma: Tensor, sigma_data: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """c_skip, c_out, c_in (B, 1, 1, 1) and c_noise (B,) of `prediction` (DiffusionConfig.prediction) at levels
    sigma (B,): EDM's, or a DDPM parameterisation's in EDM's terms (see the module docstring)."""
    if prediction == "edm":
        return edm_coefficients(sigma, sigma_data)
    s = sigma.float().view(-1, 1, 1, 1)
    c_in = 1 / (s**2 + 1).sqrt()
    if prediction == "epsilon":
        c_skip, c_out = torch.ones_like(s), -s
    elif prediction == "v_prediction":
        c_skip, c_out = 1 / (s**2 + 1), -s * c_in
    elif prediction == "sample":
        c_skip, c_out = torch.zeros_like(s), torch.ones_like(s)
    else:
        raise ValueError(f"unknown prediction {prediction!r}")
    return c_skip, c_out, c_in, sigma.log() / 4
