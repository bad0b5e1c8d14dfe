"""The clip objective: denoise the T future frames of each window jointly, given its K real context frames.

For each window: one timestep t for the whole chunk (uniform over the schedule, or logit-normal as in
SD3, with a `pure_noise` share at the last timestep, where sampling starts; the frames are noised together,
as a video model's clip is), noise the T future frames with diffusers' forward
process, and regress the network's output on them onto the scheduler's target (v, epsilon or the
clean sample). The context frames sit in the same sequence, clean or (GameNGen's context noise)
noised to a timestep drawn from U{0, ..., context_noise_max}, and the network is told each frame's
timestep; their outputs carry no loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import Tensor

from playworld.data.batch import Batch
from playworld.models.clip.config import ClipConfig
from playworld.models.draw import rand, randn
from playworld.models.draw import randint as _randint
from playworld.models.interface import frames_to_unit


def training_timesteps(n: int, config: ClipConfig, generator: torch.Generator | None, device) -> Tensor:
    """(n,) int64 timesteps: uniform, or logit-normal (SD3's density: sigmoid of a normal, scaled to the schedule);
    a `pure_noise` fraction of them then moved to the last timestep."""
    steps = int(config.train_timesteps)
    if config.timestep_sampling == "uniform":
        t = _randint(steps, (n,), generator, device)
    else:
        u = torch.sigmoid(float(config.logit_mean) + float(config.logit_std) * randn((n,), generator, device))
        t = (u * steps).long().clamp_(0, steps - 1)
    if config.pure_noise > 0:
        pure = rand((n,), generator, device) < float(config.pure_noise)
        t = torch.where(pure, torch.full_like(t, steps - 1), t)
    return t


def chunk_loss(
    net: torch.nn.Module, batch: Batch, config: ClipConfig, noise: DDPMScheduler, generator: torch.Generator | None = None,
    context_noise: bool = True, timestep: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The denoising loss of every window's T future frames; logs the loss and the MSE of the implied clean chunk.
    timestep: every chunk at this one (how well each noise level is learned); None: drawn as training draws them."""
    context = frames_to_unit(batch.context_frames)  # (B, K, C, H, W) in [-1, 1]
    future = frames_to_unit(batch.future_frames)  # (B, T, C, H, W)
    actions = torch.cat([batch.context_actions, batch.future_actions], dim=1)  # (B, K+T[, dim])
    (b, k), t_future, device = context.shape[:2], future.shape[1], context.device
    base = context[:, -1:] if config.residual else torch.zeros_like(context[:, -1:])
    x0 = (future - base) * float(config.data_scale)  # what is diffused: frames, or their change from the newest context frame

    t = training_timesteps(b, config, generator, device) if timestep is None else torch.full((b,), int(timestep), device=device)
    eps = randn(x0.shape, generator, device)
    x_t = noise.add_noise(x0, eps, t)
    target = {"epsilon": eps, "v_prediction": noise.get_velocity(x0, eps, t), "sample": x0}[config.prediction_type]

    level = int(config.context_noise_max) if context_noise else 0
    context_t = _randint(level + 1, (b,), generator, device)
    if level > 0:
        context = noise.add_noise(context, randn(context.shape, generator, device), context_t)
    timesteps = torch.cat([context_t[:, None].expand(b, k), t[:, None].expand(b, t_future)], dim=1).float()

    out = net(torch.cat([context, x_t], dim=1), timesteps, actions)[:, k:]  # (B, T, C, H, W)
    loss = F.mse_loss(out, target)
    with torch.no_grad():
        x0_mse = F.mse_loss(clean_estimate(out, x_t, t, noise, config.prediction_type), x0).item()
    return loss, {"loss": loss.item(), "x0_mse": x0_mse}


def clean_estimate(out: Tensor, x_t: Tensor, t: Tensor, noise: DDPMScheduler, prediction_type: str) -> Tensor:
    """The clean chunk a prediction implies at timesteps t (B,): x0 from v, epsilon or itself."""
    a = noise.alphas_cumprod.to(out.device)[t].view(-1, *([1] * (out.ndim - 1)))
    if prediction_type == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * out
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * out) / a.sqrt().clamp_min(1e-4)
    return out
