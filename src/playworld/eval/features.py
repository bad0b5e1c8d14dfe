"""A small domain encoder of short clips, trained on the dataset's TRAIN split, for FD and KID.

FID/FVD use networks trained on ImageNet/Kinetics; those see nothing of a 32x32 top-down world and
cannot be downloaded at run time here. Instead each dataset gets its own encoder, trained once
(self-supervised, a bounded number of steps) on real clips of its training split and never on a
model's output or with a model's tokenizer, so every model evaluated on that dataset is measured
in the same feature space. Cached in `ctx.cache` and on disk under `ctx.cache_dir`, keyed by the
dataset's content fingerprint and the encoder config.

The objective makes the features see both content and time:
- autoencoding: a decoder reconstructs the clip (at half resolution) from the feature vector;
- temporal order: a linear head on the features tells clips in their true order from clips whose
  frames were permuted (Shuffle & Learn, Misra et al. 2016).
Frames of a clip and their consecutive differences are stacked along channels (early fusion), and
the decoder must reconstruct both: motion (how far the view moved between frames) is part of what the
features encode, so a clip whose frames are out of order lands elsewhere in feature space.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from playworld.data.windows import WindowSampler
from playworld.errors import PlayworldError
from playworld.eval.api import TooFewEpisodes


@dataclass(frozen=True)
class EncoderConfig:
    clip: int = 8
    """frames per clip (generated and real clips are cut into pieces of this length)"""
    resolution: int = 32
    """clips are area-resized to this square size before encoding (a power of two, >= 16)"""
    dim: int = 32
    """feature dimension; small, because eval sets hold hundreds of clips, not tens of thousands"""
    width: int = 32
    """channels of the first convolution (doubled at each of the three stride-2 stages)"""
    steps: int = 300
    """training steps (batch `batch`); bounded: about 40 CPU-seconds, seconds on a GPU (400 steps: order accuracy
    0.95, 200: 0.92 on explorer)"""
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    min_train_clips: int = 256
    """FD/KID are skipped when the train split holds fewer clips (too little to train the encoder)"""


# -- caching of helper networks -----------------------------------------------------------------
def dataset_key(dataset: Any) -> str:
    """A short id of the dataset's content: its fingerprint, else a hash of its manifest."""
    fp = getattr(dataset, "fingerprint", None)
    if isinstance(fp, str) and fp:
        return fp
    manifest = getattr(dataset, "manifest", None)
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_network(ctx: Any, kind: str, config: Any, build: Callable[[], nn.Module],
                   train: Callable[[nn.Module], dict]) -> tuple[nn.Module, dict]:
    """The helper network `kind` for ctx.dataset and `config`: from ctx.cache, else from disk
    (ctx.cache_dir/<kind>-<dataset>-<config>.safetensors), else built and trained with `train(net)`,
    which returns a JSON-able dict of training facts (stored beside the weights). The network lives
    on ctx.device; its inputs may come from the CPU."""
    cfg_hash = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:8]
    key = f"{kind}-{dataset_key(ctx.dataset)}-{cfg_hash}"
    if key in ctx.cache:
        return ctx.cache[key]
    path = Path(ctx.cache_dir) / f"{key}.safetensors" if ctx.cache_dir else None
    device = torch.device(getattr(ctx, "device", "cpu") or "cpu")
    with torch.random.fork_rng(devices=[]):  # seeded init and training, the caller's global RNG untouched
        torch.manual_seed(getattr(config, "seed", 0))
        net = build().to(device)
        if path is not None and path.is_file():
            net.load_state_dict(load_file(str(path), device=str(device)))
            info = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").is_file() else {}
        else:
            net.train()
            info = train(net)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(path),
                      metadata={"config": json.dumps(asdict(config))})
            path.with_suffix(".json").write_text(json.dumps({"config": asdict(config), **info}, indent=1))
    net.eval()
    ctx.cache[key] = (net, info)
    return net, info


def train_windows(ctx: Any, frames: int, what: str, minimum: int):
    """A sampler of `frames`-frame windows from the train split; TooFewEpisodes (a Skip naming `what`)
    when the split holds fewer than `minimum` windows, too few to train a helper network on."""

    need = f"{minimum} windows of {frames} frames in the train split to train its helper network"
    try:
        sampler = WindowSampler(ctx.dataset, context=1, horizon=frames - 1, split="train")
    except PlayworldError:
        raise TooFewEpisodes(what, need, "none (collect more or longer episodes)") from None
    if len(sampler) < minimum:
        raise TooFewEpisodes(what, need, f"{len(sampler)} (collect more episodes)")
    return sampler


def to_unit(frames: Tensor, resolution: int) -> Tensor:
    """(..., 3, H, W) uint8 -> float (..., 3, r, r) in [-1, 1], area-resized when H != r."""
    x = frames.float().div(127.5).sub(1.0)
    if x.shape[-1] != resolution:
        lead = x.shape[:-3]
        x = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(resolution, resolution), mode="area")
        x = x.reshape(*lead, *x.shape[-3:])
    return x


def shuffle_frames(clips: Tensor, generator: torch.Generator) -> Tensor:
    """clips (N, L, ...) -> each clip's frames in a random order other than the identity."""
    n, length = clips.shape[:2]
    if length < 2:
        raise ValueError("a clip needs at least 2 frames to shuffle")
    perms = torch.argsort(torch.rand(n, length, generator=generator), dim=1)
    ident = (perms == torch.arange(length)).all(1)
    perms[ident] = perms[ident].roll(1, dims=1)  # a cyclic shift of the identity is not the identity
    return torch.gather(clips, 1, perms.view(n, length, *[1] * (clips.ndim - 2)).expand_as(clips))


# -- the network ---------------------------------------------------------------------------------
class ClipEncoder(nn.Module):
    """(N, L, 3, H, W) uint8 clips -> (N, dim) features; plus the decoder and order head used in training."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.resolution < 16 or cfg.resolution & (cfg.resolution - 1):
            raise PlayworldError(f"encoder resolution {cfg.resolution} is not a power of two >= 16", "use 32 or 64")
        self.cfg = cfg
        c, w, s = 3 * (2 * cfg.clip - 1), cfg.width, cfg.resolution // 8  # frames + consecutive differences
        self.encoder = nn.Sequential(
            nn.Conv2d(c, w, 4, 2, 1), nn.SiLU(),  # (r/2)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),  # (r/4)
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.SiLU(),  # (r/8)
            nn.Flatten(), nn.Linear(4 * w * s * s, cfg.dim),
        )
        self.decoder = nn.Sequential(  # features -> frames and differences at r/2
            nn.Linear(cfg.dim, 2 * w * s * s), nn.Unflatten(1, (2 * w, s, s)), nn.SiLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),  # (r/4)
            nn.ConvTranspose2d(w, c, 4, 2, 1),  # (r/2)
        )
        self.order = nn.Linear(cfg.dim, 1)  # logit: frames were shuffled

    @staticmethod
    def stack(x: Tensor) -> Tensor:
        """x (N, L, 3, r, r) -> (N, (2L-1)*3, r, r): the frames, then the L-1 consecutive differences."""
        return torch.cat([x, x[:, 1:] - x[:, :-1]], 1).flatten(1, 2)

    def embed_unit(self, x: Tensor) -> Tensor:
        """x (N, L, 3, r, r) in [-1, 1] -> (N, dim)."""
        return self.encoder(self.stack(x))

    def forward(self, clips: Tensor) -> Tensor:
        if clips.shape[1] != self.cfg.clip:
            raise ValueError(f"encoder takes clips of {self.cfg.clip} frames, got {clips.shape[1]}")
        return self.embed_unit(to_unit(clips, self.cfg.resolution))


def train_encoder(net: ClipEncoder, sampler, cfg: EncoderConfig) -> dict:
    """Autoencoding + temporal-order training on real train clips; returns final losses."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = next(net.parameters()).device
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    recon = order = acc = 0.0
    for _ in range(cfg.steps):
        b = sampler.sample(cfg.batch, rng)
        clips = torch.cat([b.context_frames, b.future_frames], 1)  # (B, L, 3, H, W) uint8
        half = cfg.batch // 2
        shuffled = shuffle_frames(clips[:half], gen)
        label = torch.zeros(cfg.batch)
        label[:half] = (shuffled != clips[:half]).flatten(1).any(1).float()  # a static clip stays "in order"
        label = label.to(dev)
        x = to_unit(torch.cat([shuffled, clips[half:]]).to(dev), cfg.resolution)
        z = net.embed_unit(x)
        target = F.avg_pool2d(net.stack(x), 2)
        l_rec = F.mse_loss(net.decoder(z), target)
        logit = net.order(z).squeeze(1)
        l_ord = F.binary_cross_entropy_with_logits(logit, label)
        opt.zero_grad(set_to_none=True)
        (l_rec + l_ord).backward()
        opt.step()
        sched.step()
        # exponential moving averages for the training report
        recon = 0.9 * recon + 0.1 * l_rec.item()
        order = 0.9 * order + 0.1 * l_ord.item()
        acc = 0.9 * acc + 0.1 * ((logit > 0).float() == label).float().mean().item()
    return {"recon_mse": recon, "order_bce": order, "order_accuracy": acc, "steps": cfg.steps}


def domain_encoder(ctx: Any, cfg: EncoderConfig | None = None) -> tuple[ClipEncoder, dict]:
    """The (cached) clip encoder of ctx.dataset, trained on its train split."""
    cfg = cfg or EncoderConfig()
    sampler = train_windows(ctx, cfg.clip, "FD/KID", cfg.min_train_clips)
    return cached_network(ctx, "encoder", cfg, lambda: ClipEncoder(cfg), lambda net: train_encoder(net, sampler, cfg))


@torch.no_grad()
def embed(encoder: ClipEncoder, clips: Tensor, batch: int = 256) -> np.ndarray:
    """clips (N, L, 3, H, W) uint8 -> features (N, dim) float64 numpy."""
    dev = next(encoder.parameters()).device
    outs = [encoder(clips[i:i + batch].to(dev)).cpu() for i in range(0, len(clips), batch)]
    return torch.cat(outs).double().numpy() if outs else np.zeros((0, encoder.cfg.dim))


def cut_clips(frames: Tensor, length: int) -> Tensor:
    """frames (N, T, 3, H, W) -> (N * (T // length), length, 3, H, W): consecutive non-overlapping clips."""
    n, t = frames.shape[:2]
    k = t // length
    return frames[:, : k * length].reshape(n * k, length, *frames.shape[2:])
