"""The `jepa` family's configuration: one dataclass, one docstring per field (presets override it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JEPAConfig:
    horizon: int = 4
    """F, future frames per training window: the predictor is teacher-forced on all F and rolled out over them"""
    channels: int = 32
    """width of the encoder's first conv stage (doubles each stage, at most 4x) and the probe decoder's last"""
    dim: int = 32
    """D, channels of each representation token (the latent a planner compares with a goal's)"""
    patch: int = 8
    """pixels per token side: a frame of R x R pixels becomes (R / patch)^2 tokens (a power of two >= 2)"""
    pred_channels: int = 64
    """width of the action-conditioned predictor's conv blocks"""
    pred_layers: int = 2
    """residual conv blocks in the predictor, each modulated by the action (FiLM)"""
    mask_ratio: float = 0.25
    """fraction of each context frame's patches blanked before the online encoder sees it in the teacher-forced
    term (V-JEPA's masking: the predictor must infer the hidden parts from the other frames); 0 turns it off"""
    target_decay: float = 0.99
    """EMA decay of the target encoder toward the online one, once per training step (the targets are computed
    under stop-gradient by this slow copy, BYOL / I-JEPA's first guard against collapse)"""
    tf_scale: float = 1.0
    """scale of the teacher-forced loss: L1 between the predicted and the target representation of each next
    frame, the predictor given the real (encoded) past"""
    rollout_scale: float = 1.0
    """scale of the rollout loss: L1 over F autoregressive steps that feed the predictor its own predictions"""
    var_scale: float = 1.0
    """scale of the variance guard (VICReg's hinge): per token and channel, the std over the batch of the online
    representation is pushed up to `var_floor` (0 turns the guard off; the std is logged either way)"""
    var_floor: float = 0.5
    """the std below which the variance guard pushes (tokens are layer-normalised, so 1 is the most a channel has)"""
    probe_scale: float = 1.0
    """scale of the probe decoder's loss (squared error on [-1, 1] frames, mean over pixels); the probe reads
    representations under stop-gradient, so it never shapes them"""
