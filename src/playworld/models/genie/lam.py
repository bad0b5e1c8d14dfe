"""The latent action model (LAM): actions learned from video alone (Genie, Bruce et al. 2024).

For a transition frame t -> frame t+1 the encoder looks at both frames (and their difference) and
emits a vector that is quantized to one of a few codebook entries (VQ-VAE with a straight-through
estimator). The decoder must rebuild frame t+1 from frame t (the past) and only that code, so the
few bits the code carries are spent on what the past cannot tell: the action. No labels are used.
(Genie's encoder attends over the whole past; at this scale the newest frame is the past that matters.)

Shapes: frames (B, 3, H, W) in [-1, 1]; latent vectors (B, lam_dim); latent actions (B,) int64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from playworld.models.genie.tokenizer import ConvDecoder, ConvEncoder


class VectorQuantizer(nn.Module):
    """Nearest of `n` L2-normalised codes (cosine VQ keeps a small codebook from collapsing onto one entry)."""

    def __init__(self, n: int, dim: int, beta: float, decay: float = 0.9):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(n, dim))
        self.beta, self.decay = beta, decay
        # running share of each code in training batches; codes that fall out of use are restarted
        self.register_buffer("usage", torch.full((n,), 1.0 / n))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z (B, dim) -> (quantized z (B, dim) with a straight-through gradient, indices (B,), VQ loss)."""
        z = F.normalize(z, dim=-1)
        codes = F.normalize(self.codebook, dim=-1)
        sim = z @ codes.t()  # (B, n)
        idx = sim.argmax(-1)  # nearest in L2 on the unit sphere == largest cosine
        if self.training and z.shape[0] > 0:
            idx = self._restart_dead_codes(z.detach(), sim.detach(), idx)
            codes = F.normalize(self.codebook, dim=-1)
        q = codes[idx]
        loss = F.mse_loss(q, z.detach()) + self.beta * F.mse_loss(z, q.detach())
        return z + (q - z).detach(), idx, loss

    @torch.no_grad()
    def _restart_dead_codes(self, z: Tensor, sim: Tensor, idx: Tensor) -> Tensor:
        """Codes whose running usage fell below 1/(4n) move onto the batch's worst-fitted latents
        (the 'random restart' of Jukebox/SoundStream, made deterministic): a small codebook otherwise
        tends to collapse onto one entry early, when every transition still looks alike to the encoder."""
        n = self.codebook.shape[0]
        share = torch.bincount(idx, minlength=n).float() / idx.numel()
        self.usage.mul_(self.decay).add_((1 - self.decay) * share)
        dead = (self.usage < 1.0 / (4 * n)).nonzero()[:, 0]
        if dead.numel() == 0:
            return idx
        worst = sim.max(-1).values.argsort()[: dead.numel()]  # latents farthest from every code
        dead = dead[: worst.numel()]
        self.codebook.data[dead] = z[worst].to(self.codebook.dtype) * self.codebook.data[dead].norm(dim=-1, keepdim=True)
        self.usage[dead] = 1.0 / n
        return (z @ F.normalize(self.codebook, dim=-1).t()).argmax(-1)

    def lookup(self, idx: Tensor) -> Tensor:
        return F.normalize(self.codebook, dim=-1)[idx]


class LatentActionModel(nn.Module):
    def __init__(
        self, codebook: int, dim: int, channels: tuple[int, ...], beta: float, resolution: int, image_channels: int = 3
    ):
        super().__init__()
        # encoder: (frame t, frame t+1, their difference) -> one vector per transition
        self.encoder = ConvEncoder(3 * image_channels, channels, channels[-1])
        # flattened, not pooled: where things moved (the direction) lives in the spatial layout
        side = resolution // 2 ** (len(channels) - 1)
        self.to_latent = nn.Linear(channels[-1] * side * side, dim)
        self.vq = VectorQuantizer(codebook, dim, beta)
        # decoder: frame t features, modulated by the latent action (FiLM), -> the change to frame t+1
        self.past = ConvEncoder(image_channels, channels, channels[-1])
        self.film = nn.Linear(dim, 2 * channels[-1])
        self.decoder = ConvDecoder(channels[-1], channels, image_channels)

    def infer(self, prev: Tensor, nxt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frames t and t+1 (B, 3, H, W) -> (quantized latent (B, dim), latent action (B,), VQ loss)."""
        h = self.encoder(torch.cat([prev, nxt, nxt - prev], dim=1)).flatten(1)  # (B, C * h * w)
        return self.vq(self.to_latent(h))

    def predict(self, prev: Tensor, latent: Tensor) -> Tensor:
        """frame t (B, 3, H, W) and a latent action vector (B, dim) -> predicted frame t+1 (B, 3, H, W)."""
        h = self.past(prev)
        scale, shift = self.film(latent)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return prev + self.decoder(h * (1 + scale) + shift)

    def forward(self, prev: Tensor, nxt: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Transitions prev -> nxt -> (training loss: next-frame MSE + VQ loss, latent actions (B,), logs)."""
        latent, idx, vq_loss = self.infer(prev, nxt)
        recon = F.mse_loss(self.predict(prev, latent), nxt)
        usage = torch.bincount(idx, minlength=self.vq.codebook.shape[0]).float()
        p = usage / usage.sum()
        perplexity = torch.exp(-(p * p.clamp_min(1e-10).log()).sum())  # effective number of codes in use
        return recon + vq_loss, idx, {"lam_recon": recon.detach(), "lam_vq": vq_loss.detach(), "lam_perplexity": perplexity}
