"""The EDM training objective with context noise augmentation (teacher forcing).

For each target frame: draw sigma ~ LogNormal(p_mean, p_std), noise the target, noise the K
real context frames with a level drawn from U[0, context_noise_max] (GameNGen: the model learns to
correct the small errors its own generated context will have), and regress F onto
(x0 - c_skip * x_noisy) / c_out, which equals the EDM-weighted loss on D (weight = 1 / c_out^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from playworld.data.batch import Batch
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.network import edm_coefficients
from playworld.models.interface import frames_to_unit


def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    # sample on the generator's own device (a CPU generator may drive a GPU run), then move
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def _rand(shape, generator: torch.Generator | None, device) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def teacher_forcing_windows(batch: Batch, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every future frame of the batch as one teacher-forced example, on the real frames before it.

    Returns context (N, K, 3, H, W) and target (N, 3, H, W) in [-1, 1], and actions (N, K+1[, dim]),
    with N = B * F.
    """
    frames = torch.cat([batch.context_frames, batch.future_frames], dim=1)  # (B, T, 3, H, W)
    actions = torch.cat([batch.context_actions, batch.future_actions], dim=1)  # (B, T[, dim])
    start = batch.context_frames.shape[1] - k
    if start < 0:
        raise ValueError(f"the batch has {batch.context_frames.shape[1]} context frames, the model needs {k}")
    n_future = batch.future_frames.shape[1]
    context = torch.cat([frames[:, start + j : start + j + k] for j in range(n_future)])
    target = torch.cat([frames[:, start + j + k] for j in range(n_future)])
    acts = torch.cat([actions[:, start + j : start + j + k + 1] for j in range(n_future)])
    return frames_to_unit(context), frames_to_unit(target), acts


def edm_loss(
    net: torch.nn.Module, batch: Batch, config: DiffusionConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, float]]:
    context, target, actions = teacher_forcing_windows(batch, int(config.context))
    n, device = target.shape[0], target.device

    context_sigma = _rand((n,), generator, device) * float(config.context_noise_max)
    context = context + context_sigma.view(-1, 1, 1, 1, 1) * _randn(context.shape, generator, device)

    # the frame, or (residual) its change from the newest context frame the network sees
    x0 = target - context[:, -1] if config.residual else target
    sigma = (float(config.p_mean) + float(config.p_std) * _randn((n,), generator, device)).exp()
    x_noisy = x0 + sigma.view(-1, 1, 1, 1) * _randn(x0.shape, generator, device)

    out = net(x_noisy, sigma, context, actions, context_sigma)  # F, the U-Net's raw output
    c_skip, c_out, _, _ = edm_coefficients(sigma, float(config.sigma_data))
    loss = F.mse_loss(out, (x0 - c_skip * x_noisy) / c_out)
    with torch.no_grad():
        denoised = c_skip * x_noisy + c_out * out
        denoise_mse = F.mse_loss(denoised, x0).item()
    return loss, {"loss": loss.item(), "denoise_mse": denoise_mse}
