"""The `rssm` family's configuration: one dataclass, one docstring per field (presets override it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RSSMConfig:
    horizon: int = 12
    """F, future frames per training window; the model is trained on K + F consecutive frames"""
    channels: int = 32
    """width of the first conv stage of the encoder (doubles each stage) and the last of the decoder"""
    deter: int = 256
    """size of the deterministic (GRU) state h"""
    stoch: int = 16
    """number of categorical stochastic latents z"""
    classes: int = 16
    """number of classes of each categorical latent"""
    hidden: int = 256
    """width of the MLPs (GRU input, prior, posterior, reward and continue heads)"""
    unimix: float = 0.01
    """fraction of the uniform distribution mixed into every categorical (keeps log-probs finite)"""
    free_nats: float = 1.0
    """free bits: KL terms below this many nats (summed over latents) are not optimised"""
    kl_dyn: float = 0.5
    """scale of the dynamics KL, KL(sg(posterior) || prior): trains the prior toward the posterior"""
    kl_rep: float = 0.1
    """scale of the representation KL, KL(posterior || sg(prior)): keeps the posterior predictable"""
    recon_scale: float = 1.0
    """scale of the decoder loss (squared error on [-1, 1] frames, summed over pixels)"""
    reward_scale: float = 1.0
    """scale of the reward head's loss (squared error in symlog space)"""
    continue_scale: float = 1.0
    """scale of the continue head's loss (binary cross-entropy against 1 - terminated)"""
