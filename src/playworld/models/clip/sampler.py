"""The clip family's diffusion process, from diffusers' schedulers, and the sampler of one chunk.

One training schedule (diffusers' DDPMScheduler: betas, prediction type, zero terminal SNR) defines
the forward process; the loss draws from it (`add_noise`, `get_velocity`). Sampling runs any diffusers
scheduler built from that same schedule (`from_config`), through one loop, because every diffusers
scheduler shares one API (set_timesteps, init_noise_sigma, scale_model_input, step):

    sample(denoise, x, scheduler, steps, generator) -> x0
        denoise(x, t) -> the network's prediction for x at timestep t (a 0-d tensor)
        x: the starting noise, already scaled by scheduler.init_noise_sigma

Why these: DDIM with 'trailing' timesteps and zero terminal SNR starts from pure noise, as training
saw it, and is deterministic (all randomness is the starting noise, drawn from the caller's seeded
generator), so a seed fixes a chunk; it stays usable at 1-4 steps, what a CPU can play at.
DPM-Solver++ and Euler are the drop-in alternatives diffusers offers for more steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor

from playworld.models.clip.config import ClipConfig
from playworld.models.draw import randn

SAMPLING_SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler, "euler": EulerDiscreteScheduler}

Denoise = Callable[[Tensor, Tensor], Tensor]


def training_schedule(config: ClipConfig) -> DDPMScheduler:
    """The forward process the network is trained on (a diffusers DDPMScheduler)."""
    return DDPMScheduler(
        num_train_timesteps=int(config.train_timesteps), beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type, rescale_betas_zero_snr=bool(config.zero_snr),
        clip_sample=False, timestep_spacing="trailing",
    )


def sampling_scheduler(config: ClipConfig) -> SchedulerMixin:
    """The scheduler `config.scheduler` names, over the training schedule."""
    return SAMPLING_SCHEDULERS[config.scheduler].from_config(training_schedule(config).config)


def sample(denoise: Denoise, x: Tensor, scheduler: SchedulerMixin, steps: int, generator: torch.Generator | None) -> Tensor:
    """Run `scheduler`'s reverse process in `steps` steps from the noise `x`; returns the final sample."""
    scheduler.set_timesteps(int(steps), device=x.device)
    for t in scheduler.timesteps:
        out = denoise(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x


def sample_chunk(
    net, noise: DDPMScheduler, scheduler: SchedulerMixin, steps: int, context: Tensor, actions: Tensor,
    config: ClipConfig, generator: torch.Generator | None,
) -> Tensor:
    """T = config.chunk frames denoised jointly after `context` (B, K, C, H, W) in [-1, 1], under `actions`
    (B, K+T[, dim]) (the K context actions, then the T the chunk commits to) -> (B, T, C, H, W) in [-1, 1]."""
    b, k, device, t_future = context.shape[0], context.shape[1], context.device, int(config.chunk)
    base = context[:, -1:] if config.residual else torch.zeros_like(context[:, -1:])
    level = int(config.context_noise_sample)
    seen = context
    if level > 0:
        seen = noise.add_noise(context, randn(context.shape, generator, device), torch.full((b,), level, device=device))
    context_t = torch.full((b, k), float(level), device=device)

    def denoise(x: Tensor, t: Tensor) -> Tensor:
        timesteps = torch.cat([context_t, t.float().to(device).expand(b, t_future)], dim=1)  # (B, K+T)
        return net(torch.cat([seen, x], dim=1), timesteps, actions)[:, k:]

    x = randn((b, t_future, *context.shape[2:]), generator, device) * scheduler.init_noise_sigma
    x0 = sample(denoise, x, scheduler, steps, generator)
    return (base + x0 / float(config.data_scale)).clamp(-1, 1)
