"""Configuration of the `clip` family. Presets (configs/*.yaml, `model: clip:`) override fields by name."""

from __future__ import annotations

from dataclasses import dataclass

from playworld.errors import PlayworldError

SCHEDULERS = ("ddim", "dpm", "euler")
"""the diffusers samplers `scheduler` may name (diffusers' DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler)"""


@dataclass
class ClipConfig:
    # -- the chunk ----------------------------------------------------------------------------
    chunk: int = 4
    """T, the future frames denoised jointly: training windows hold K context frames and T future ones, and
    play generates T frames at a time (a chunk commits to the action given at its first step)"""
    replan_on_change: bool = False
    """when an action given to `step` differs from the one the current chunk committed to, drop the rest of the
    chunk and generate a new one from the newest K frames (responsive, but each change costs a whole chunk)"""

    # -- the denoiser: diffusers' LatteTransformer3DModel (factorised space-time attention) ----
    patch: int = 4
    """side of the square pixel patches a frame is cut into (tokens per frame: (resolution / patch)^2)"""
    heads: int = 4
    """attention heads of every spatial and temporal block"""
    head_dim: int = 32
    """width of each head; the transformer's width is heads * head_dim"""
    layers: int = 4
    """pairs of blocks: a spatial one (attention within each frame), then a temporal one (across the frames
    at each patch position), as in Latte and VDM"""
    activation: str = "gelu-approximate"
    """the feed-forward activation (diffusers' names: 'gelu-approximate' as Latte-1, 'geglu', 'gelu')"""
    action_dim: int = 32
    """embedding width of each frame's action (and its context/future role) before it joins the timestep embedding"""
    action_tokens: bool = False
    """also add each frame's action (and role) embedding to every token of that frame, through a zero-initialised
    linear map: the temporal blocks, where a scroll is carried from frame to frame, are otherwise modulated by
    the chunk's timestep alone and see the actions only through the spatial blocks' adaptive norm"""
    latte_init: bool = False
    """initialise as Latte and PixArt-alpha do (xavier linears, N(0, 0.02) timestep MLPs and output layer) instead
    of torch's defaults, which diffusers' model keeps as it is made to be loaded (--init overwrites either). What
    counts is the near-zero output (v ~ 0: 'nothing moves' with `residual`), which torch's larger one is not.
    Off by default because it starts the loss about 2x lower, so the contract test that wants a tiny batch's
    loss halved in 40 steps fails although the loss ends lower; `small`: on"""
    caption_channels: int = 0
    """0: no cross-attention (trained from scratch); > 0: the width of the text embeddings of a text-to-video
    backbone loaded with --init (Latte-1: 4096), whose cross-attention then attends to a learned caption"""
    caption_tokens: int = 1
    """tokens of that learned caption (zeros at the start, so the start is the backbone given an all-zero caption)"""

    # -- the diffusion process (diffusers' schedulers) ----------------------------------------
    train_timesteps: int = 1000
    """steps of the discrete forward process (the scheduler's num_train_timesteps)"""
    beta_schedule: str = "squaredcos_cap_v2"
    """diffusers' beta schedule: 'squaredcos_cap_v2' (the cosine schedule, better for pixels), 'linear',
    'scaled_linear' (Stable Diffusion and Latte-1)"""
    prediction_type: str = "v_prediction"
    """what the network predicts: 'v_prediction' (with zero_snr, one step from pure noise gives the mean
    frame), 'epsilon' (Latte-1) or 'sample'"""
    zero_snr: bool = True
    """rescale the betas to zero terminal SNR (Lin et al. 2024), so sampling starts from pure noise as training saw it"""
    scheduler: str = "ddim"
    """the sampler: 'ddim' (deterministic, trailing timesteps: good in 1-4 steps), 'dpm' (DPM-Solver++ 2M),
    'euler' (Euler discrete); every one is a diffusers scheduler built from the same training schedule"""
    steps: int = 2
    """denoising steps per chunk (play's dial changes it)"""
    timestep_sampling: str = "uniform"
    """how training draws each chunk's timestep: 'uniform' over the schedule, or 'logit_normal' (SD3, Esser et al.
    2024: t / train_timesteps = sigmoid(N(logit_mean, logit_std))); a positive logit_mean puts the training at the
    high-noise timesteps a 1-2 step sampler starts from, where the motion has to be predicted from the context"""
    logit_mean: float = 0.0
    """mean of the logit-normal timestep density (0: centred; 1: most draws in the noisier half)"""
    logit_std: float = 1.0
    """standard deviation of the logit-normal timestep density"""
    pure_noise: float = 0.0
    """the fraction of training chunks put at the last timestep instead (pure noise under zero_snr), where every
    sampler's first step starts and the chunk must be predicted from the context alone. Uniform draws put only
    ~2% of the chunks at SNR < 0.001; above it the noisy chunk still shows where things moved, so without this
    the network learns to denoise but not to predict motion (`small`: 0.5)"""
    residual: bool = True
    """diffuse each future frame's change from the newest context frame instead of the frame itself, so
    'nothing moves' is the zero output (as the diffusion family does); off for a pretrained backbone"""
    data_scale: float = 1.0
    """multiply the diffused values by this so that their spread suits unit-variance noise (residual
    changes are small: ~2.5 puts them at the spread of frames in [-1, 1]; a VAE's scaling factor, in effect)"""
    context_noise_max: int = 0
    """training noises the context frames to a timestep drawn uniformly from [0, this] (GameNGen's context
    noise, in scheduler timesteps; 0 disables); the network is told each frame's timestep"""
    context_noise_sample: int = 0
    """the timestep the context frames are noised to when sampling"""

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise PlayworldError(f"unknown clip scheduler {self.scheduler!r}", f"use one of {', '.join(SCHEDULERS)}")
        if self.timestep_sampling not in ("uniform", "logit_normal"):
            raise PlayworldError(f"unknown clip timestep_sampling {self.timestep_sampling!r}", "use uniform or logit_normal")
        if not 0 <= self.pure_noise <= 1:
            raise PlayworldError(f"clip pure_noise must be in [0, 1], got {self.pure_noise}", "use e.g. 0.5")
        if self.logit_std <= 0:
            raise PlayworldError(f"clip logit_std must be above 0, got {self.logit_std}", "use e.g. 1.0")
        if self.prediction_type not in ("v_prediction", "epsilon", "sample"):
            raise PlayworldError(f"unknown clip prediction_type {self.prediction_type!r}",
                                 "use v_prediction, epsilon or sample")
        for name in ("chunk", "patch", "heads", "head_dim", "layers", "action_dim", "caption_tokens", "steps", "train_timesteps"):
            if int(getattr(self, name)) < 1:
                raise PlayworldError(f"clip {name} must be at least 1, got {getattr(self, name)}", f"set model.{name} to 1 or more")
        for name in ("context_noise_max", "context_noise_sample"):
            if not 0 <= int(getattr(self, name)) < int(self.train_timesteps):
                raise PlayworldError(f"clip {name} must be in [0, {self.train_timesteps}), got {getattr(self, name)}",
                                     f"set model.{name} to a timestep of the training schedule")
        if self.zero_snr and self.prediction_type == "epsilon":
            raise PlayworldError("clip zero_snr leaves nothing to predict epsilon from at the last timestep (pure noise)",
                                 "use --set model.prediction_type=v_prediction, or --set model.zero_snr=false")
        if self.data_scale <= 0:
            raise PlayworldError(f"clip data_scale must be above 0, got {self.data_scale}", "use e.g. 1.0 or 2.5")
