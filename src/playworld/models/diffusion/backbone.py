"""The diffusion family's diffusers backbone (`backbone: diffusers`): diffusers' UNet2DModel as the F of network.py.

    x (B, 3, H, W) + side (B, C_side, H, W) -> UNet2DModel(cat(x, side), timestep(sigma), class_labels=cond)

- the K context frames (and what transport or memory add) are extra input channels of `conv_in`, the
  way GameNGen conditions Stable Diffusion on past frames; a loaded backbone's conv_in gets zero
  weights for them (pretrained.py);
- the actions and the context noise level reach the network through `class_embed_type="identity"`:
  the Denoiser's condition vector, projected to the time-embedding width, is added to the time
  embedding (that projection starts at zero, network.py);
- the noise level sigma is given as the DDPM timestep with the same signal-to-noise ratio on the
  run's schedule (train_timesteps, beta_*), fractional between two timesteps, so a pretrained model
  sees exactly the timesteps it was trained on.

UNet2DModel takes one depth for every level and has no patch stem: `depths` must be equal and `patch`
1. Its other arguments come from `unet_options`. Why diffusers' network and not models/nn.py's: it
is what `save_pretrained` folders of pretrained image models hold, so their weights load as they are.
"""

from __future__ import annotations

import inspect

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor, nn

from playworld.errors import PlayworldError
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.interface import WorldSpec

SET_BY_OPTIONS = {  # UNet2DModel argument -> the diffusion option that sets it (never through unet_options)
    "block_out_channels": "channels", "layers_per_block": "depths", "down_block_types": "attention",
    "up_block_types": "attention", "norm_num_groups": "groups", "add_attention": "mid_attention",
    "in_channels": None, "out_channels": None, "sample_size": None, "class_embed_type": None, "num_class_embeds": None,
}
UNSUPPORTED = {  # UNet2DModel argument -> the only value the backbone works with, and why
    "time_embedding_type": ("positional", "the noise level is given as a DDPM timestep"),
    "mid_block_type": ("UNetMidBlock2D", "the U-Net's bottleneck"),
}


def unet_arguments() -> dict:
    """UNet2DModel's arguments and their defaults."""
    return {k: p.default for k, p in inspect.signature(UNet2DModel.__init__).parameters.items() if k != "self"}


def unet_kwargs(config: DiffusionConfig, spec: WorldSpec, c_side: int) -> dict:
    """The UNet2DModel arguments of a diffusion config whose network has `c_side` side channels."""
    levels = len(config.channels)
    if len(set(config.depths)) != 1:
        raise PlayworldError(f"the diffusers backbone has one depth for every level, got depths {list(config.depths)}",
                             f"--set model.depths={','.join([str(config.depths[0])] * levels)}")
    known = unet_arguments()
    unknown = sorted(set(config.unet_options) - set(known))
    if unknown:
        raise PlayworldError(f"model.unet_options: UNet2DModel has no argument(s) {', '.join(unknown)}",
                             f"its arguments are {', '.join(sorted(set(known) - set(SET_BY_OPTIONS)))}")
    clash = sorted(set(config.unet_options) & set(SET_BY_OPTIONS))
    if clash:
        options = sorted({f"model.{SET_BY_OPTIONS[k]}" for k in clash if SET_BY_OPTIONS[k]})
        raise PlayworldError(f"model.unet_options sets {', '.join(clash)}, which the run's own options decide",
                             f"drop them from unet_options{'; set ' + ', '.join(options) if options else ''}")
    for key, (value, why) in UNSUPPORTED.items():
        if config.unet_options.get(key, value) != value:
            raise PlayworldError(f"model.unet_options {key} {config.unet_options[key]!r} is not supported ({why})",
                                 f"use {key} {value!r}")
    mid = config.attention[-1] if config.mid_attention is None else bool(config.mid_attention)
    return {
        "sample_size": spec.resolution, "in_channels": spec.channels + c_side, "out_channels": spec.channels,
        "block_out_channels": tuple(int(c) for c in config.channels), "layers_per_block": int(config.depths[0]),
        "down_block_types": tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention),
        "up_block_types": tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention)),
        "norm_num_groups": int(config.groups), "add_attention": mid, "class_embed_type": "identity",
        **config.unet_options,
    }


def ddpm_log_sigmas(config: DiffusionConfig) -> Tensor:
    """log sigma_t = log sqrt((1 - alphabar_t) / alphabar_t) of each DDPM timestep t (increasing), in float64."""
    scheduler = DDPMScheduler(num_train_timesteps=int(config.train_timesteps), beta_schedule=config.beta_schedule,
                              beta_start=float(config.beta_start), beta_end=float(config.beta_end))
    alphabar = scheduler.alphas_cumprod.double()
    return 0.5 * ((1 - alphabar) / alphabar).log()


def sigma_to_timestep(sigma: Tensor, log_sigmas: Tensor) -> Tensor:
    """The (fractional) DDPM timestep whose noise level is sigma: linear in log sigma between two timesteps,
    clamped to the schedule's first and last; exact at the schedule's own levels."""
    log = sigma.double().log().clamp(log_sigmas[0], log_sigmas[-1])
    hi = torch.searchsorted(log_sigmas, log).clamp(1, len(log_sigmas) - 1)
    lo_level, hi_level = log_sigmas[hi - 1], log_sigmas[hi]
    frac = ((log - lo_level) / (hi_level - lo_level)).clamp(0, 1)
    return (hi - 1 + frac).float()


class DiffusersUNet(nn.Module):
    """UNet2DModel behind the interface of models/nn.py's UNet: embed_side(side), then (x, side, cond, sigma) -> F."""

    def __init__(self, config: DiffusionConfig, spec: WorldSpec, c_side: int):
        super().__init__()
        self.c_x, self.c_side = spec.channels, c_side
        self.model = UNet2DModel(**unet_kwargs(config, spec, c_side))
        self.time_dim = self.model.time_embedding.linear_2.out_features  # the width the condition is added at
        self.register_buffer("log_sigmas", ddpm_log_sigmas(config), persistent=False)

    def embed_side(self, side: Tensor | None) -> Tensor | None:
        """The side frames as they are: UNet2DModel's conv_in sees them with x, at every call."""
        return side

    def forward(self, x: Tensor, side: Tensor | None, cond: Tensor, sigma: Tensor) -> Tensor:
        """x (B, 3, H, W) already scaled by c_in, side (B, C_side, H, W), cond (B, time_dim), sigma (B,)."""
        sample = x if side is None else torch.cat([x, side.to(x.dtype)], dim=1)
        timestep = sigma_to_timestep(sigma, self.log_sigmas)  # (a buffer: on the module's device)
        return self.model(sample, timestep, class_labels=cond, return_dict=False)[0]
