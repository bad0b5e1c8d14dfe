"""The latent action model (LAM): actions learned from video alone (Genie, Bruce et al. 2024).

For a transition frame t -> frame t+1 the encoder looks at both frames (and their difference) and
emits a vector that is quantized to one of a few codebook entries (VQ-VAE with a straight-through
estimator). The decoder must rebuild frame t+1 from frame t (the past) and only that code, so the
few bits the code carries are spent on what the past cannot tell: the action. No labels are used.
(Genie's encoder attends over the whole past; at this scale the newest frame is the past that matters.)

The decoder is a U-Net whose every stage is modulated by the code (FiLM) and whose skips carry
frame t at full detail: an action typically moves things by a few pixels, and a decoder that must
squeeze frame t through a low-resolution bottleneck first cannot draw the moved frame, so it gains
nothing from the code and the encoder gets no signal to learn actions from.

Two more things make the LAM learn within a CPU budget (seeing the motion is easy; what is hard is
the signal reaching the encoder through the decoder):
- the encoder's features are pooled over space (mean and max), so a motion seen anywhere counts,
  and the latent is batch-normalised before the VQ: at initialisation pooled features hardly differ
  between transitions, and a decoder given a near-constant latent learns to ignore it;
- for the first `warmup` steps the latent goes to the decoder unquantized (a plain conditional
  autoencoder, which finds the action directions quickly), then the codebook is initialised by
  k-means on a batch of latents and quantization starts.
`bench/repro/genie_lam_alone.py` trains this model by itself and prints its mapping to the true actions
over training (`--warmup 0` and `--channels` show what the warm-up and the width buy).

Shapes: frames (B, 3, H, W) in [-1, 1]; latent vectors (B, lam_dim); latent actions (B,) int64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from playworld.models.genie.tokenizer import ConvEncoder, PlainResBlock, _groups


class VectorQuantizer(nn.Module):
    """Nearest of `n` L2-normalised codes (cosine VQ keeps a small codebook from collapsing onto one entry)."""

    def __init__(self, n: int, dim: int, beta: float, decay: float = 0.9):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(n, dim))
        self.beta, self.decay = beta, decay
        # running share of each code in training batches; codes that fall out of use are restarted
        self.register_buffer("usage", torch.full((n,), 1.0 / n))

    def forward(self, z: Tensor, quantize: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """z (B, dim) -> (quantized z (B, dim) with a straight-through gradient, indices (B,), VQ loss).
        quantize=False (the warm-up): z itself, normalised, with its nearest code's index; the loss only
        pulls the codes toward the latents (no commitment), and k-means replaces them at the switch."""
        z = F.normalize(z, dim=-1)
        codes = F.normalize(self.codebook, dim=-1)
        sim = z @ codes.t()  # (B, n)
        idx = sim.argmax(-1)  # nearest in L2 on the unit sphere == largest cosine
        if not quantize:
            return z, idx, F.mse_loss(codes[idx], z.detach())
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

    @torch.no_grad()
    def init_from(self, z: Tensor, iterations: int = 10) -> None:
        """k-means (farthest-point seeds, cosine distance) of latents z (B, dim) -> the codebook."""
        z = F.normalize(z.float(), dim=-1)
        n = self.codebook.shape[0]
        picks = [0]
        for _ in range(min(n, z.shape[0]) - 1):
            picks.append(int((z @ z[picks].t()).max(1).values.argmin()))
        centres = torch.cat([z[picks], F.normalize(torch.randn(n - len(picks), z.shape[1], device=z.device), dim=-1)])
        for _ in range(iterations):
            members = F.one_hot((z @ centres.t()).argmax(1), n).to(z.dtype)  # (B, n)
            sums = members.t() @ z  # (n, dim); a code with no member keeps its centre
            centres = torch.where(members.sum(0)[:, None] > 0, F.normalize(sums, dim=-1), centres)
        self.codebook.data.copy_(centres.to(self.codebook.dtype))
        self.usage.fill_(1.0 / n)

    def lookup(self, idx: Tensor) -> Tensor:
        return F.normalize(self.codebook, dim=-1)[idx]


class FilmUNet(nn.Module):
    """frame t (B, cin, H, W) and a latent action (B, dim) -> the change to frame t+1 (B, cin, H, W).

    One PlainResBlock per stage down (each after the first halves the resolution), FiLM by the latent at
    every stage, nearest upsampling with the skip of the same stage on the way up."""

    def __init__(self, cin: int, channels: tuple[int, ...], dim: int):
        super().__init__()
        self.stem = nn.Conv2d(cin, channels[0], 3, padding=1)
        self.down = nn.ModuleList([PlainResBlock(channels[0])] + [
            nn.Sequential(nn.Conv2d(p, c, 4, stride=2, padding=1), PlainResBlock(c)) for p, c in zip(channels[:-1], channels[1:])
        ])
        self.film = nn.Linear(dim, 2 * sum(channels))
        rev = tuple(reversed(channels))
        self.up = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c_low + c_skip, c_skip, 3, padding=1), PlainResBlock(c_skip)) for c_low, c_skip in zip(rev[:-1], rev[1:])
        ])
        self.head = nn.Sequential(nn.GroupNorm(_groups(channels[0]), channels[0]), nn.SiLU(), nn.Conv2d(channels[0], cin, 3, padding=1))
        self.channels = tuple(channels)

    def forward(self, x: Tensor, latent: Tensor) -> Tensor:
        films = self.film(latent).split([2 * c for c in self.channels], dim=1)
        h, skips = self.stem(x), []
        for stage, film in zip(self.down, films):
            scale, shift = film[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
            h = stage(h) * (1 + scale) + shift
            skips.append(h)
        for stage, skip in zip(self.up, reversed(skips[:-1])):
            h = stage(torch.cat([F.interpolate(h, scale_factor=2, mode="nearest"), skip], dim=1))
        return self.head(h)


class LatentActionModel(nn.Module):
    def __init__(
        self, codebook: int, dim: int, channels: tuple[int, ...], beta: float, image_channels: int = 3, warmup: int = 300
    ):
        super().__init__()
        # encoder: (frame t, frame t+1, their difference) -> features pooled over space -> one vector
        self.encoder = ConvEncoder(3 * image_channels, channels, channels[-1])
        self.to_latent = nn.Sequential(nn.Linear(2 * channels[-1], dim), nn.BatchNorm1d(dim, affine=False))
        self.vq = VectorQuantizer(codebook, dim, beta)
        self.warmup = int(warmup)
        # training steps seen (saved with the weights, so a resumed run knows whether it still warms up)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        # decoder: frame t through a U-Net modulated by the latent action -> the change to frame t+1
        self.decoder = FilmUNet(image_channels, channels, dim)

    def infer(self, prev: Tensor, nxt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """frames t and t+1 (B, 3, H, W) -> (quantized latent (B, dim), latent action (B,), VQ loss)."""
        h = self.encoder(torch.cat([prev, nxt, nxt - prev], dim=1))  # (B, C, h, w)
        z = self.to_latent(torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1))  # (B, dim)
        if not self.training:
            return self.vq(z)
        step = int(self.steps)
        if step == self.warmup and z.shape[0] > 1:
            self.vq.init_from(z.detach())  # the first quantized step: codes start where the latents are
        return self.vq(z, quantize=step >= self.warmup)

    def predict(self, prev: Tensor, latent: Tensor) -> Tensor:
        """frame t (B, 3, H, W) and a latent action vector (B, dim) -> predicted frame t+1 (B, 3, H, W)."""
        return prev + self.decoder(prev, latent)

    def forward(self, prev: Tensor, nxt: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Transitions prev -> nxt -> (training loss: next-frame MSE + VQ loss, latent actions (B,), logs)."""
        latent, idx, vq_loss = self.infer(prev, nxt)
        if self.training:
            self.steps += 1
        recon = F.mse_loss(self.predict(prev, latent), nxt)
        usage = torch.bincount(idx, minlength=self.vq.codebook.shape[0]).float()
        p = usage / usage.sum()
        perplexity = torch.exp(-(p * p.clamp_min(1e-10).log()).sum())  # effective number of codes in use
        return recon + vq_loss, idx, {"lam_recon": recon.detach(), "lam_vq": vq_loss.detach(), "lam_perplexity": perplexity}
