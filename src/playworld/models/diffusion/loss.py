"""The EDM training objective, under each training regime of train/regimes.py.

For each target frame: draw sigma ~ LogNormal(p_mean, p_std), noise the target, and regress F onto
(x0 - c_skip * x_noisy) / c_out, which equals the EDM-weighted loss on D (weight = 1 / c_out^2).
What differs between the regimes is the context the target is predicted from:

    teacher forcing    the K real frames before it, noised with one level per example drawn from
                       U[0, context_noise_max] (GameNGen context noise; off: clean context), and
                       first, with context_blur_max, blurred
    self forcing       the model's own few-step samples: a rollout of R frames from real context,
                       one loss term per rolled-out frame on the context generated so far (blurred
                       and noised as in teacher forcing)
    diffusion forcing  the K real frames, each noised with its own level (Karras schedule at a
                       uniform position), the network told every frame's level
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.diffusion.config import DiffusionConfig
from playworld.models.diffusion.network import coefficients
from playworld.models.diffusion.sampler import SAMPLERS, karras_sigmas
from playworld.models.draw import rand as _rand
from playworld.models.draw import randn as _randn
from playworld.models.interface import frames_to_unit


def teacher_forcing_windows(batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
    """Every future frame of the batch as one teacher-forced example, on the K real frames before it
    (K = the batch's context length, which the loader cut to the spec's).

    Returns context (N, K, 3, H, W) and target (N, 3, H, W) in [-1, 1], and actions (N, K+1[, dim]),
    with N = B * F.
    """
    frames = torch.cat([batch.context_frames, batch.future_frames], dim=1)  # (B, T, 3, H, W)
    actions = torch.cat([batch.context_actions, batch.future_actions], dim=1)  # (B, T[, dim])
    k, n_future = batch.context_frames.shape[1], batch.future_frames.shape[1]
    context = torch.cat([frames[:, j : j + k] for j in range(n_future)])
    target = torch.cat([frames[:, j + k] for j in range(n_future)])
    acts = torch.cat([actions[:, j : j + k + 1] for j in range(n_future)])
    return frames_to_unit(context), frames_to_unit(target), acts


def memory_inputs(
    batch: Batch, config: DiffusionConfig, generator: torch.Generator | None, steps: list[int] | None = None
) -> tuple[Tensor, Tensor] | None:
    """A memory model's (frames (N, 3, H, W) in [-1, 1], valid (N,) bool) for the batch's future frames
    `steps` (default: all, stacked in `teacher_forcing_windows`' order), a share memory_dropout of them
    withheld; None for a model without memory."""
    if not config.memory:
        return None
    if batch.memory_frames is None:
        raise PlayworldError("this diffusion model has memory and the batch carries no memory frames",
                             "build its loader with make_loader(..., memory=True) (training does so for model.memory=true)")
    steps = list(range(batch.future_frames.shape[1])) if steps is None else steps
    frames = torch.cat([batch.memory_frames[:, j] for j in steps])
    valid = torch.cat([batch.memory_valid[:, j] for j in steps])
    keep = _rand(valid.shape, generator, valid.device) >= float(config.memory_dropout)
    return frames_to_unit(frames), valid & keep


def edm_loss(
    net: torch.nn.Module, batch: Batch, config: DiffusionConfig, generator: torch.Generator | None = None,
    context_noise: bool = True,
) -> tuple[Tensor, dict[str, float]]:
    """Teacher forcing: every future frame of the batch from the real frames before it."""
    clean, target, actions = teacher_forcing_windows(batch)
    blurred = blur_context(clean, config, generator, context_noise)
    context, context_sigma = noise_context(blurred, config, generator, context_noise)
    loss, denoise_mse = denoising_loss(net, context, target, actions, context_sigma, config, generator, base_frame(clean, context, config, blurred),
                                       memory_inputs(batch, config, generator))
    return loss, {"loss": loss.item(), "denoise_mse": denoise_mse}


def noise_context(
    context: Tensor, config: DiffusionConfig, generator: torch.Generator | None, on: bool = True
) -> tuple[Tensor, Tensor]:
    """GameNGen context noise: context (N, K, 3, H, W) + one level (N,) ~ U[0, context_noise_max] per example,
    of the spectrum `context_noise_kind`."""
    n, device = context.shape[0], context.device
    level = float(config.context_noise_max) if on else 0.0
    context_sigma = _rand((n,), generator, device) * level
    if level > 0:
        noise = _randn(context.shape, generator, device)
        if config.context_noise_kind == "highpass":
            noise = highpass(noise)
        context = context + context_sigma.view(-1, 1, 1, 1, 1) * noise
    return context, context_sigma


def blur_context(context: Tensor, config: DiffusionConfig, generator: torch.Generator | None, on: bool = True) -> Tensor:
    """context (N, K, 3, H, W), each example's K frames blurred by a Gaussian of standard deviation ~ U[0,
    context_blur_max] pixels: the softness of the model's own frames (`context_blur_max`)."""
    level = float(config.context_blur_max) if on else 0.0
    if level <= 0:
        return context
    return gaussian_blur(context, _rand((context.shape[0],), generator, context.device) * level)


def gaussian_blur(frames: Tensor, sigma: Tensor) -> Tensor:
    """frames (N, ..., H, W) blurred by a separable Gaussian of standard deviation sigma (N,) pixels, one per
    example (0: unchanged), edges repeated. Written here, not taken from torchvision (which pulls a CUDA torch)
    or scikit-image (numpy, one sigma per call): training blurs a batch of torch tensors, each its own level."""
    n, (h, w) = frames.shape[0], frames.shape[-2:]
    r = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-r, r + 1, device=frames.device, dtype=torch.float32)
    kernel = torch.exp(-taps[None] ** 2 / (2 * sigma.float().clamp_min(1e-3)[:, None] ** 2))  # 1e-3: the identity
    planes = frames[0].numel() // (h * w)  # the planes of one example, each blurred with its example's kernel
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(planes, dim=0)  # (N * planes, 2r + 1)
    x = frames.reshape(1, n * planes, h, w).float()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernel.view(-1, 1, 1, 2 * r + 1), groups=n * planes)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), kernel.view(-1, 1, 2 * r + 1, 1), groups=n * planes)
    return x.view(frames.shape).to(frames.dtype)


def highpass(noise: Tensor) -> Tensor:
    """Unit white noise (..., C, H, W) less its 3x3 local mean (replicate padding), rescaled to unit standard
    deviation (the interior's variance is 1 - 2/9 + 1/9 = 8/9): noise with no low-frequency part."""
    lead, (c, h, w) = noise.shape[:-3], noise.shape[-3:]
    flat = noise.reshape(-1, c, h, w)
    mean = F.avg_pool2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return ((flat - mean) * (3.0 / 8**0.5)).reshape(*lead, c, h, w)


def base_frame(clean: Tensor, noised: Tensor, config: DiffusionConfig, blurred: Tensor | None = None) -> Tensor:
    """The newest context frame a residual is taken from (N, 3, H, W): before context blur and noise, after the
    blur (`blurred`, the clean frames when none is given), or after both (residual_base)."""
    if config.residual_base == "noised":
        return noised[:, -1]
    return (clean if blurred is None or config.residual_base == "clean" else blurred)[:, -1]


def denoising_loss(
    net: torch.nn.Module, context: Tensor, target: Tensor, actions: Tensor, context_sigma: Tensor,
    config: DiffusionConfig, generator: torch.Generator | None, newest: Tensor, memory: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, float]:
    """The EDM loss of one target frame (N, 3, H, W) per example on a (noised) context; and D's MSE.
    newest (N, 3, H, W): the newest context frame a residual is taken from (`base_frame`); with transport
    the residual's origin is that frame moved, and the transport's own loss is added (weight transport_loss).
    memory: a memory model's (frames, valid) of `memory_inputs`."""
    n, device = target.shape[0], target.device
    # (N, 3, H, W): zeros, the newest frame, or it moved; the denoiser's target takes the transport as given
    origin, base, inside, spread = net.training_origin(context, actions, newest, target)
    # the frame, or (residual) its change from the origin
    x0 = target - base
    sigma = (float(config.p_mean) + float(config.p_std) * _randn((n,), generator, device)).exp()
    x_noisy = x0 + sigma.view(-1, 1, 1, 1) * _randn(x0.shape, generator, device)

    out = net(x_noisy, sigma, context, actions, context_sigma, base, inside, memory)  # F, the U-Net's raw output
    c_skip, c_out, _, _ = coefficients(config.prediction, sigma, float(config.sigma_data))
    loss = F.mse_loss(out, (x0 - c_skip * x_noisy) / c_out)
    if config.transport > 0:
        loss = loss + float(config.transport_loss) * (F.mse_loss(origin, target) + spread)
    with torch.no_grad():
        denoised = c_skip * x_noisy + c_out * out
        denoise_mse = F.mse_loss(denoised, x0).item()
    return loss, denoise_mse


# -- diffusion forcing (Chen et al. 2024) --------------------------------------------------------


def diffusion_forcing_loss(
    net: torch.nn.Module, batch: Batch, config: DiffusionConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Every context frame noised at its own level, the network given the (N, K) levels.

    A frame's level is the Karras schedule at a uniform position u ~ U(0, 1) (diffusion forcing's
    uniform timestep per token): mostly small, sometimes up to sigma_max, where the frame is all but
    unknown, so the model learns to predict from partly trusted context. The target keeps EDM's
    log-normal level, drawn independently.
    """
    context, target, actions = teacher_forcing_windows(batch)
    n, k, device = context.shape[0], context.shape[1], context.device
    u = _rand((n, k), generator, device)
    rho = float(config.rho)
    lo, hi = float(config.sigma_min) ** (1 / rho), float(config.sigma_max) ** (1 / rho)
    levels = (hi + u * (lo - hi)) ** rho  # (N, K): one level per frame
    noised = context + levels.view(n, k, 1, 1, 1) * _randn(context.shape, generator, device)
    loss, denoise_mse = denoising_loss(net, noised, target, actions, levels, config, generator, context[:, -1],
                                       memory_inputs(batch, config, generator))
    return loss, {"loss": loss.item(), "denoise_mse": denoise_mse, "context_level_mean": float(levels.mean())}


# -- self forcing (Huang et al. 2025) ------------------------------------------------------------


def sample_next_frame(
    net: torch.nn.Module, context: Tensor, actions: Tensor, config: DiffusionConfig, generator: torch.Generator | None,
    memory: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """The family's few-step sampler, as `DiffusionWorldModel.step` runs it but differentiable and
    unquantised: context (N, K, 3, H, W), actions (N, K+1[, dim]) -> next frame (N, 3, H, W) in [-1, 1].
    memory: the memory frame of the frame sampled (the true frame's retrieval, where play retrieves with a draft)."""
    n, device, clean = context.shape[0], context.device, context
    level = float(config.context_noise_sample)
    if level > 0:
        context = context + level * _randn(context.shape, generator, device)
    base, inside = net.origin(context, actions, base_frame(clean, context, config))
    c = net.condition(context, actions, torch.full((n,), level, device=device), base, inside, memory)
    sigmas = karras_sigmas(int(config.steps), config.sigma_min, config.sigma_max, config.rho)
    x = _randn(context[:, -1].shape, generator, device) * sigmas[0]
    x0 = SAMPLERS[config.sampler](lambda x, sigma: net.denoise(x, sigma, c), x, sigmas)
    return (c.base + x0).clamp(-1, 1)


def self_forcing_loss(
    net: torch.nn.Module, batch: Batch, config: DiffusionConfig, generator: torch.Generator | None = None,
    rollout: int = 4, grad_steps: int = 0, context_noise: bool = True,
) -> tuple[Tensor, dict[str, float]]:
    """Roll out R = `rollout` frames on the model's own samples; the loss is the mean over the R steps of
    the EDM loss of the true frame j on the context generated up to j (step 0: the real context).

    Gradient: each term reaches the network through its own call; the samples of the last
    `grad_steps` generation steps keep their graph too (truncated BPTT), earlier ones are constants.
    """
    k = batch.context_frames.shape[1]  # K: the loader cut the spec's
    if batch.future_frames.shape[1] < rollout:
        raise ValueError(f"self forcing over {rollout} frames needs windows of {rollout} future frames")
    frames = frames_to_unit(torch.cat([batch.context_frames[:, -k:], batch.future_frames[:, :rollout]], 1))
    actions = torch.cat([batch.context_actions[:, -k:], batch.future_actions[:, :rollout]], 1)
    context = frames[:, :k]  # (B, K, 3, H, W): real, then progressively the model's own frames
    total, mses, drift = 0.0, [], []
    for j in range(rollout):
        acts = actions[:, j : j + k + 1]  # (B, K+1[, dim]): the K context actions and the one into frame j
        target = frames[:, k + j]
        blurred = blur_context(context, config, generator, context_noise)
        noised, context_sigma = noise_context(blurred, config, generator, context_noise)
        memory = memory_inputs(batch, config, generator, [j])
        loss_j, mse = denoising_loss(net, noised, target, acts, context_sigma, config, generator, base_frame(context, noised, config, blurred), memory)
        total, mses = total + loss_j, mses + [mse]
        if j == rollout - 1:
            break
        keep_graph = j >= rollout - 1 - grad_steps and torch.is_grad_enabled()
        with torch.set_grad_enabled(keep_graph):
            frame = sample_next_frame(net, context, acts, config, generator, memory)  # (B, 3, H, W)
        drift.append(float((frame.detach() - target).pow(2).mean()))
        if float(config.self_forcing_amplify) > 1:  # the error a long rollout would have piled up, of the model's own kind
            scale = 1 + (float(config.self_forcing_amplify) - 1) * _rand((frame.shape[0], 1, 1, 1), generator, frame.device)
            frame = (target + scale * (frame - target)).clamp(-1, 1)
        context = torch.cat([context[:, 1:], frame[:, None]], dim=1)
    loss = total / rollout
    logs = {"loss": loss.item(), "denoise_mse": sum(mses) / len(mses)}
    if drift:
        logs["rollout_mse"] = sum(drift) / len(drift)  # the model's samples against the true frames
    return loss, logs
