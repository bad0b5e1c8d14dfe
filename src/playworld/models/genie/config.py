"""Configuration of the `genie` family. Presets (configs/*.yaml, `model: genie:`) override fields by name."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from playworld.errors import PlayworldError


@dataclass
class GenieConfig:
    # -- what the model sees ------------------------------------------------------------------
    actions: Literal["true", "latent", "auto"] = "auto"
    """'true': condition on the dataset's actions; 'latent': on actions the latent action model infers
    from the frames alone (labels unused); 'auto': latent when the dataset has no actions (kind 'none')"""

    # -- video tokenizer (tokenizer.py) -------------------------------------------------------
    levels: tuple[int, ...] = (8, 5, 5, 5)
    """FSQ levels per latent channel; the token vocabulary is their product (here 1000)"""
    tok_channels: tuple[int, ...] = (32, 64, 64)
    """width of the tokenizer's conv stages; every stage after the first halves the resolution,
    so a frame of R x R pixels becomes (R / 2^(stages-1))^2 tokens"""

    # -- latent action model (lam.py; built only when actions are latent) ---------------------
    codebook: int = 8
    """number of latent actions (VQ codebook entries); in play these are the actions 'latent 0'.."""
    lam_dim: int = 16
    """width of a latent action vector (the VQ codes are L2-normalised vectors of this size)"""
    lam_channels: tuple[int, ...] = (32, 64, 64)
    """width of the LAM encoder's and decoder's conv stages (each after the first halves the resolution)"""
    lam_beta: float = 0.25
    """commitment weight of the LAM's VQ loss (VQ-VAE's beta)"""
    lam_warmup: int = 300
    """training steps before the LAM quantizes: its latent first trains unquantized, then the codebook
    is initialised by k-means on the latents (see lam.py)"""

    # -- dynamics (dynamics.py) ---------------------------------------------------------------
    dim: int = 128
    """width of the spatio-temporal transformer"""
    layers: int = 4
    """spatio-temporal blocks (spatial attention, causal temporal attention, MLP)"""
    heads: int = 4
    """attention heads (dim must be divisible by heads, and dim / heads by 2 for the rotary time code,
    by 4 with spatial_rope)"""
    spatial_rope: bool = True
    """2D rotary code in spatial attention (rows on half the channels, columns on the other): attention
    sees offsets between tokens, so shifting the view by an action is easy to learn (dynamics.py)"""

    # -- MaskGIT (loss.py, sampler.py) --------------------------------------------------------
    steps: int = 4
    """parallel decoding iterations per generated frame"""
    temperature: float = 1.0
    """sampling temperature of the tokens (0 = argmax)"""
    choice_temperature: float = 0.0
    """Gumbel noise on the confidences that pick which tokens to keep, annealed to 0 over the steps"""
    cache: bool = True
    """stream generation with a KV cache over the temporal context (False recomputes it every step)"""

    # -- training stages ----------------------------------------------------------------------
    tokenizer_steps: int = 0
    """Genie's stages: for this many training steps only the tokenizer (and the LAM) train; then the
    tokenizer is frozen and the dynamics (with the LAM) trains on its fixed tokens. 0 trains all parts
    in one joint loss from the start, where the dynamics chases token ids that keep changing"""

    # -- loss weights -------------------------------------------------------------------------
    recon_scale: float = 1.0
    """weight of the tokenizer's reconstruction loss (mean squared error on [-1, 1] frames)"""
    lam_scale: float = 1.0
    """weight of the LAM's next-frame reconstruction loss plus its VQ loss"""
    dynamics_scale: float = 1.0
    """weight of the dynamics' cross-entropy on masked tokens"""

    def __post_init__(self) -> None:
        # YAML gives lists; keep tuples so configs compare and hash cleanly
        self.levels = tuple(int(v) for v in self.levels)
        self.tok_channels = tuple(int(v) for v in self.tok_channels)
        self.lam_channels = tuple(int(v) for v in self.lam_channels)
        if self.actions not in ("true", "latent", "auto"):
            raise PlayworldError(f"unknown genie actions {self.actions!r}", "set actions: true, latent or auto")
        if not self.levels or min(self.levels) < 2:
            raise PlayworldError(f"genie FSQ levels must each be >= 2, got {list(self.levels)}", "e.g. levels: [8, 5, 5, 5]")
        if math.prod(self.levels) > 2**16:
            raise PlayworldError(f"genie FSQ vocabulary {math.prod(self.levels)} is too large", "use fewer or smaller levels (<= 65536 codes)")
        if int(self.codebook) < 2:
            raise PlayworldError(
                f"genie codebook of {self.codebook} latent action(s) cannot tell actions apart",
                "set model.codebook to 2 or more (default 8)",
            )
        if int(self.lam_warmup) < 0:
            raise PlayworldError(f"genie lam_warmup must be >= 0, got {self.lam_warmup}", "set model.lam_warmup to 0 or more")
        if int(self.tokenizer_steps) < 0:
            raise PlayworldError(f"genie tokenizer_steps must be >= 0, got {self.tokenizer_steps}",
                                 "set model.tokenizer_steps to 0 (joint training) or more")
        for name in ("dim", "layers", "heads", "steps", "lam_dim"):
            if int(getattr(self, name)) < 1:
                raise PlayworldError(f"genie {name} must be >= 1, got {getattr(self, name)}", f"set model.{name} to 1 or more")
        if not self.tok_channels or not self.lam_channels:
            raise PlayworldError("genie tok_channels and lam_channels need at least one stage", "e.g. [32, 64, 64]")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise PlayworldError(
                f"genie dim {self.dim} does not split into {self.heads} heads of an even width",
                "pick dim divisible by 2 * heads (e.g. dim: 128, heads: 4)",
            )
        if self.spatial_rope and (self.dim // self.heads) % 4:
            raise PlayworldError(
                f"genie heads of width {self.dim // self.heads} cannot hold the 2D rotary code (rows and columns)",
                "pick dim divisible by 4 * heads (e.g. dim: 128, heads: 4), or set model.spatial_rope=false",
            )
        if self.temperature < 0 or self.choice_temperature < 0:
            raise PlayworldError("genie temperatures must be >= 0", "set temperature: 1.0, choice_temperature: 0.0")

    @property
    def vocab(self) -> int:
        """Number of distinct tokens the tokenizer can produce."""
        return math.prod(self.levels)
