"""Configuration of the `diffusion` family. Presets (configs/*.yaml, `model: diffusion:`) override fields by name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from playworld.errors import PlayworldError


@dataclass
class DiffusionConfig:
    # -- network (models/nn.py UNet) ----------------------------------------------------------
    channels: tuple[int, ...] = (64, 96, 128)
    """width of each U-Net level, finest first; each level after the first halves the resolution"""
    depths: tuple[int, ...] = (1, 1, 1)
    """residual blocks per level on the way down (the way up has one more, as in DIAMOND)"""
    attention: tuple[bool, ...] = (False, False, True)
    """self-attention after each block of a level (keep it to the coarsest level on CPU)"""
    mid_attention: Optional[bool] = None
    """self-attention in the bottleneck's first block; None: as the coarsest level (DIAMOND: true with no
    attention in the levels)"""
    patch: int = 2
    """pixel-unshuffle factor of the stem: 2 runs the finest level at half resolution (4x cheaper)"""
    cond_dim: int = 256
    """width of the condition vector (noise level + context noise level + actions) fed to every AdaGN"""
    action_dim: int = 32
    """embedding width of each action before the K+1 are flattened and projected to cond_dim"""
    groups: int = 8
    """groups of every group norm"""
    backbone: str = "playworld"
    """the U-Net: 'playworld' (models/nn.py, the presets' network) or 'diffusers' (diffusers' UNet2DModel built from
    channels/depths/attention/groups/mid_attention and `unet_options`, the context frames as extra input channels,
    the actions and context noise through its class embedding; what `--init` loads a saved UNet2DModel into,
    see backbone.py). 'diffusers' needs patch 1 and the `video` extra"""
    unet_options: dict[str, Any] = field(default_factory=dict)
    """backbone 'diffusers': further UNet2DModel arguments (e.g. {"freq_shift": 1, "flip_sin_to_cos": false}), a
    mapping in YAML or a JSON object on the command line; --init names the ones a saved model needs"""

    # -- learned transport (transport.py) -----------------------------------------------------------
    transport: int = 0
    """radius in pixels of the learned transport: the residual's origin is the newest frame moved by up to this
    many pixels per block (a softmax over the (2r+1)^2 shifts, read from the context and actions), so moved
    content stays sharp and the U-Net predicts only what moving cannot explain; 0: off (the newest frame)"""
    transport_patch: int = 4
    """side in pixels of the blocks that share one set of transport weights"""
    transport_channels: int = 64
    """width of the transport network (a stem on the context blocks, an attending and a plain residual block)"""
    transport_loss: float = 1.0
    """weight of the transport's own loss (the MSE of the moved frame against the next frame)"""
    transport_hard: bool = False
    """play (and validate) with each block's most likely displacement instead of the softmax mixture (training
    keeps the mixture, whose gradient reaches every displacement): a mixture blurs where the shift is uncertain,
    and over a long rollout the blur adds up"""
    transport_hard_train: bool = False
    """move by each block's most likely displacement in training too: the denoiser learns to continue from the
    sharp origin it will play from (with transport_hard alone it learns from the mixture and plays from the hard
    move, and the two disagree); the transport's own loss still scores the mixture, whose gradient reaches every
    displacement"""

    transport_flow: bool = False
    """move each block by its expected displacement under the softmax (bilinear warp, sub-pixel) in training and
    play, instead of the mixture: sharp where the shift is certain, and a speed of 1.5 pixels a step stays 1.5 where
    the most likely shift (transport_hard_train) rounds it to a whole pixel; the transport's own loss still scores
    the mixture (a flow field alone learns slowly); not with transport_hard / transport_hard_train"""
    transport_remainder: bool = False
    """with transport_hard_train: also hand the denoiser, per pixel, what the whole-pixel move left out, each block's
    expected displacement under the softmax less its most likely one (2 planes, in pixels), so a ball at 1.5 pixels a
    step that the block moved by 1 is known to lack half a pixel: the U-Net corrects the sub-pixel part of a move
    that the whole-pixel shift keeps sharp"""
    transport_global: bool = False
    """one displacement for the whole frame instead of one per block (the blocks' logits averaged before the
    softmax): the view moves as a camera moves it, with no tearing between blocks, and what moves inside the frame
    is left to the U-Net. Read from the frames (quality bench, 10 CPU-min, with transport_hard_train): explorer TF
    29.8 dB with replicate edges (29.1 with zeros) against 27.6, FD at step 64 1.7x its floor, but physics/uniform
    5.1x (5.7x) its floor: on a blank background the best frame-wide shift is the ball's, and the frame follows it
    (docs/results.md). With transport_keys_only (the `small` preset) the keys alone say the move"""
    transport_position: bool = False
    """with transport_global: beside the blocks' averaged logits, a linear map of the whole block grid to the logits,
    each block read by where it is (zero at the start): what decides the frame's move may sit at one place (the agent
    facing a wall), where in the average one block has one part in (H/transport_patch)^2 of the say"""
    transport_keys_only: bool = False
    """with transport_global: the frame's move read from the newest action alone (logits over the displacements per
    discrete key, or a linear map of a continuous action), not from the frames: the camera the keys move. Where the view moves with the keys it learns each key's
    move; where nothing but objects move (a ball on a blank background) it learns 'stay' (with transport_score
    'expected') and leaves the motion to the U-Net. The `small` preset's (quality bench, 10 CPU-min: explorer TF 30.1
    dB against 27.7, physics/uniform 2.0x its velocity floor; docs/results.md)"""
    transport_gate: bool = False
    """with transport_keys_only: the frames (read by the transport network, each block by where it is) say whether
    the keys' most likely move happens or the view stays: a move into a wall leaves the view where it was. One
    readout of the frames per key, trained as a classifier of which of the two is nearer the next frame (weighted by
    how much). The frames can only stop the keys' move, never make another, so a world whose keys do not move the
    view keeps 'stay'. The `small` preset's (quality bench, 10 CPU-min: explorer PSNR at step 4 26.8 / 26.6 dB
    against 24.2 / 25.2 without it, physics/uniform unchanged; docs/results.md)"""
    transport_score: str = "mixture"
    """the transport's own loss with transport_hard_train or transport_flow: 'mixture' (the MSE of the frame mixed
    by the softmax weights) or 'expected' (the squared error expected when one displacement is drawn from them, the
    mixture's MSE plus the shifts' variance: lowest for the one shift best on average, where the mixture's is lowest
    for a blur whose most likely shift may be none of the right ones)"""
    transport_warp: str = "bilinear"
    """how transport_flow moves the frame by a fractional displacement: 'bilinear' (resampled: each step of play blurs
    it a little) or, with transport_global, 'fourier' (a phase ramp in the Fourier domain: sharp, and shifts add up
    exactly over the steps of play)"""
    transport_action_logits: bool = False
    """add to the transport's logits a linear map of the actions' embedding, the same for every block: each key's usual
    move as a direct prior over the displacements, beside what the blocks read from the context (without it the key
    reaches the logits only through the blocks' adaptive norms). Off"""
    transport_edge: str = "replicate"
    """what the transport moves in from beyond the frame's edge: 'replicate' (the edge repeated: right for
    ground that continues, but an object at the edge is then copied inward step after step, a trail) or
    'zeros' (0, mid-grey: nothing, for the denoiser to draw; `inside` marks those pixels either way)"""

    # -- EDM (Karras et al. 2022) -------------------------------------------------------------
    sigma_data: float = 0.2
    """standard deviation of the data the denoiser predicts: about 0.5 for frames in [-1, 1], 0.15-0.2 for the
    frame-to-frame changes `residual` predicts (explorer: 0.15; 0.2 beat 0.5 by 1-2 dB over the first 300 steps)"""
    residual: bool = True
    """diffuse the change from the newest context frame instead of the frame itself, so 'nothing moves' is the
    zero output (on explorer it learns faster than predicting the frame: 22.7 vs 20.3 dB after 100 steps)"""
    residual_base: str = "clean"
    """the frame a residual is taken from: 'clean', the newest context frame before context blur and noise;
    'blurred', after `context_blur_max`'s blur and before noise, so the target also restores the sharpness the
    blur took; or 'noised', the frame as the network sees it, so the target also undoes the context noise and a
    model playing on its own frames learns to clean their errors instead of adding to them (diffusion forcing
    always uses 'clean'; in play, with no blur or noise, 'clean' and 'blurred' are the frame itself)"""
    prediction: str = "edm"
    """what the network's output means: 'edm' (Karras et al.'s preconditioning around sigma_data, the presets'),
    or a DDPM parameterisation as a pretrained diffusers model was trained with: 'epsilon' (the noise),
    'v_prediction' or 'sample' (the clean frame); the noise level then reaches a 'diffusers' backbone as the DDPM
    timestep of the same signal-to-noise ratio (train_timesteps / beta_*), so EDM's samplers drive it unchanged"""
    train_timesteps: int = 1000
    """backbone 'diffusers': the DDPM schedule's number of timesteps (a pretrained model's num_train_timesteps)"""
    beta_schedule: str = "linear"
    """backbone 'diffusers': the DDPM beta schedule, 'linear', 'scaled_linear' or 'squaredcos_cap_v2'"""
    beta_start: float = 1e-4
    """backbone 'diffusers': the DDPM schedule's first beta"""
    beta_end: float = 0.02
    """backbone 'diffusers': the DDPM schedule's last beta"""
    p_mean: float = -0.4
    """mean of log(sigma) of the log-normal training noise levels (DIAMOND: -0.4; the `small` preset uses 0.0;
    one-step sampling starts at sigma_max, but training at the low levels is what lets the model correct its own
    errors: LogNormal(1.6, 0.5) sharpened each frame and drifted, docs/results.md)"""
    p_std: float = 1.2
    """standard deviation of log(sigma) of the training noise levels"""

    # -- context noise augmentation (GameNGen) ------------------------------------------------
    context_noise_max: float = 0.1
    """training noises the context frames with a level drawn uniformly from [0, this]; 0 disables (GameNGen
    uses 0.7 in latent space; in pixel space with `residual` the newest frame is the origin, so keep it small)"""
    context_noise_sample: float = 0.0
    """the fixed context noise level given at sampling time"""
    context_noise_kind: str = "white"
    """the spectrum of the training context noise: 'white', or 'highpass' (white noise less its 3x3 local mean,
    rescaled to the same standard deviation), which perturbs only the finest detail, where a long rollout's
    error piles up, and leaves each region's colour alone; with `residual_base: noised` the model learns to
    clean fine detail the frame it continues from should not have without pulling colours towards the mean"""
    context_blur_max: float = 0.0
    """training blurs each example's context frames with a Gaussian of standard deviation drawn uniformly from
    [0, this] pixels, before context noise; 0 disables. A one-step sampler draws the
    conditional mean, so the model's own frames come out softer than real ones, and a model trained on sharp
    frames alone misreads softness as motion: on physics/uniform a context blurred by 0.5 px (about as soft as
    the model's own frames) gives a 4% faster ball at every step, which compounds over a rollout
    (bench/diagnose/soft_context.py). Trained on soft contexts too, it learns that softness is not motion, and
    with `residual_base: blurred` also to restore the sharpness its own frames lose"""
    frame_noise_levels: bool = False
    """tell the network one context noise level per context frame (a learned projection of the K level
    embeddings) instead of one per example; diffusion forcing (train.regime=diffusion_forcing) needs it"""

    # -- self forcing -------------------------------------------------------------------------------
    self_forcing_amplify: float = 1.0
    """self forcing scales each generated frame's error (against the true frame) by a factor drawn from
    U[1, this] before the frame becomes context, so the model learns to undo the error a long rollout piles
    up, not only one step's; 1: the frames as generated"""

    # -- memory (playworld.data.memory) ----------------------------------------------------------
    memory: bool = False
    """also condition each frame on one frame from before the context: the one that looks most like it (in
    training the true next frame is the key; in play a draft of it, made first without memory, so a step
    costs two network calls); a way to re-anchor on ground seen before instead of inventing it again"""
    memory_size: int = 1024
    """frames older than the context a playing model keeps to retrieve from (the oldest go first)"""
    memory_dropout: float = 0.1
    """share of training examples whose memory frame is withheld, so the model also predicts without one
    (the draft, and the first K steps of play, have none)"""

    # -- sampler ------------------------------------------------------------------------------
    sampler: str = "euler"
    """'euler' or 'heun' (Heun uses 2 network calls per step except the last)"""
    steps: int = 1
    """denoising steps, 1 to 4"""
    sigma_min: float = 2e-3
    """smallest noise level of the Karras schedule"""
    sigma_max: float = 5.0
    """largest noise level of the Karras schedule (sampling starts from noise of this level)"""
    rho: float = 7.0
    """Karras schedule curvature"""

    def __post_init__(self) -> None:
        # YAML gives lists; keep tuples so configs compare and hash cleanly
        self.channels = tuple(int(c) for c in self.channels)
        self.depths = tuple(int(d) for d in self.depths)
        self.attention = tuple(bool(a) for a in self.attention)
        if not (len(self.channels) == len(self.depths) == len(self.attention)):
            raise PlayworldError(
                "diffusion channels, depths and attention must have one entry per U-Net level",
                f"got {len(self.channels)}, {len(self.depths)} and {len(self.attention)} entries",
            )
        if self.residual_base not in ("clean", "blurred", "noised"):
            raise PlayworldError(f"unknown residual_base {self.residual_base!r}", "use residual_base: clean, blurred or noised")
        if not 0.0 <= float(self.context_blur_max) <= 4.0:
            raise PlayworldError(f"context_blur_max {self.context_blur_max} is outside 0 to 4 pixels",
                                 "use 0 (off) or a blur of about a pixel, e.g. context_blur_max: 0.8")
        if self.context_noise_kind not in ("white", "highpass"):
            raise PlayworldError(f"unknown context_noise_kind {self.context_noise_kind!r}",
                                 "use context_noise_kind: white or context_noise_kind: highpass")
        if isinstance(self.unet_options, str):  # --set model.unet_options='{"freq_shift": 1}' (JSON, never eval)
            try:
                self.unet_options = json.loads(self.unet_options or "{}")
            except json.JSONDecodeError as e:
                raise PlayworldError(f"model.unet_options is not JSON ({e})",
                                     """write a JSON object, e.g. --set 'model.unet_options={"freq_shift": 1}'""") from None
        if not isinstance(self.unet_options, dict):
            raise PlayworldError(f"model.unet_options must be a mapping, got {self.unet_options!r}",
                                 """write a JSON object, e.g. --set 'model.unet_options={"freq_shift": 1}'""")
        if self.transport_flow and (self.transport_hard or self.transport_hard_train):
            raise PlayworldError("transport_flow and transport_hard(_train) are two ways to move blocks",
                                 "set one of them")
        if self.transport_remainder and not self.transport_hard_train:
            raise PlayworldError("transport_remainder is what a whole-pixel move leaves out: it needs transport_hard_train",
                                 "add --set model.transport_hard_train=true, or drop transport_remainder")
        if self.transport_global and int(self.transport) <= 0:
            raise PlayworldError("transport_global sets how the learned transport moves, and transport is off",
                                 "add --set model.transport=4, or drop transport_global")
        if self.transport_keys_only and not self.transport_global:
            raise PlayworldError("transport_keys_only moves the whole frame as the keys say: it needs transport_global",
                                 "add --set model.transport_global=true, or drop transport_keys_only")
        if self.transport_gate and not self.transport_keys_only:
            raise PlayworldError("transport_gate says whether the keys' move happens: it needs transport_keys_only",
                                 "add --set model.transport_keys_only=true, or drop transport_gate")
        if self.transport_score not in ("mixture", "expected"):
            raise PlayworldError(f"unknown transport_score {self.transport_score!r}", "use transport_score: mixture or expected")
        if self.transport_score == "expected" and not (self.transport_hard_train or self.transport_flow):
            raise PlayworldError("transport_score 'expected' trains the one move play makes",
                                 "add --set model.transport_hard_train=true (or transport_flow), or drop transport_score")
        if self.transport_position and not self.transport_global:
            raise PlayworldError("transport_position reads the block grid for one frame-wide move: it needs transport_global",
                                 "add --set model.transport_global=true, or drop transport_position")
        if self.transport_warp not in ("bilinear", "fourier"):
            raise PlayworldError(f"unknown transport_warp {self.transport_warp!r}", "use transport_warp: bilinear or fourier")
        if self.transport_warp == "fourier" and not (self.transport_flow and self.transport_global):
            raise PlayworldError("transport_warp 'fourier' shifts the whole frame by one fractional displacement",
                                 "add --set model.transport_flow=true --set model.transport_global=true, or drop transport_warp")
        if self.transport_action_logits and int(self.transport) <= 0:
            raise PlayworldError("transport_action_logits is part of the learned transport, and transport is off",
                                 "add --set model.transport=4, or drop transport_action_logits")
        if self.transport_edge not in ("replicate", "zeros"):
            raise PlayworldError(f"unknown transport_edge {self.transport_edge!r}", "use transport_edge: replicate or zeros")
        if self.backbone not in ("playworld", "diffusers"):
            raise PlayworldError(f"unknown diffusion backbone {self.backbone!r}", "use backbone: playworld or backbone: diffusers")
        if self.backbone == "diffusers" and int(self.patch) != 1:
            raise PlayworldError("the diffusers backbone runs at full resolution (UNet2DModel has no patch stem)",
                                 "add --set model.patch=1")
        if self.unet_options and self.backbone != "diffusers":
            raise PlayworldError("model.unet_options configures the diffusers backbone", "add --set model.backbone=diffusers or drop them")
        if self.prediction not in ("edm", "epsilon", "v_prediction", "sample"):
            raise PlayworldError(f"unknown prediction {self.prediction!r}", "use prediction: edm, epsilon, v_prediction or sample")
        if self.beta_schedule not in ("linear", "scaled_linear", "squaredcos_cap_v2"):
            raise PlayworldError(f"unknown beta_schedule {self.beta_schedule!r}",
                                 "use beta_schedule: linear, scaled_linear or squaredcos_cap_v2")
        if self.sampler not in ("euler", "heun"):
            raise PlayworldError(f"unknown diffusion sampler {self.sampler!r}", "use sampler: euler or sampler: heun")
        if not 1 <= int(self.steps) <= 4:
            raise PlayworldError(f"diffusion steps must be 1 to 4, got {self.steps}", "set steps: 1, 2, 3 or 4")
