"""The dynamics model: a spatio-temporal (ST) transformer over token grids (Genie / ST-ViViT blocks).

Each block attends within a frame (spatial: every token of a frame sees every other), then across
time at each token position (temporal: causal, over a band of the last `band` frames, itself
included), then applies an MLP. Time positions enter only the temporal attention, as a rotary code,
so attention depends on how far apart two frames are, never on where a window starts. That is what
makes the KV cache exact: a frame's temporal keys and values, once computed, never change, and the
cache keeps the last `band - 1` frames of them per layer (see `KVCache`, and sampler.py).

Spatial attention adds a 2D rotary code (`spatial_rope`): half of each head's channels turn with the
token's row, the other half with its column, so an attention score depends on the offset between two
tokens. A camera move shifts every token of the next frame by the same offset; with the rotary code
"read the token one cell to the left" is one query direction the action selects, where learned
absolute positions alone must relate every pair of N positions (at N = 256 the dynamics trained
for hundreds of steps without learning the shift: next-frame token accuracy barely above copying).

Shapes: tokens (B, T, N) int64 with N tokens per frame (`vocab` is the mask token); condition
(B, T, D) added to every token of its frame (the action that led into it); hidden (B, T, N, D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def rotary_2d(x: Tensor, grid: Tensor) -> Tensor:
    """Rotate the first half of x's channels (..., N, dh) by the tokens' rows, the second by their columns; grid (N, 2)."""
    half = x.shape[-1] // 2
    return torch.cat([rotary(x[..., :half], grid[:, 0]), rotary(x[..., half:], grid[:, 1])], dim=-1)


def rotary(x: Tensor, pos: Tensor) -> Tensor:
    """Rotate pairs of channels of x (..., T, dh) by angles pos (T,) * frequencies (RoFormer)."""
    dh = x.shape[-1]
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dh, 2, device=x.device, dtype=torch.float64) / dh))
    angles = pos.to(torch.float64)[:, None] * inv_freq[None]  # (T, dh/2); float64 keeps large positions exact
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


@dataclass
class KVCache:
    """Temporal keys/values of past frames, per layer: k[l], v[l] (B * N, heads, Tc, dh), at time positions pos (Tc,)."""

    k: list[Tensor]
    v: list[Tensor]
    pos: Tensor

    def append(self, new: list[tuple[Tensor, Tensor]], pos: Tensor, keep: int) -> "KVCache":
        """A new cache holding the last `keep` frames of this one plus `new` (a fresh object: states stay immutable)."""
        k = [torch.cat([old, kn], dim=2)[:, :, -keep:] for old, (kn, _) in zip(self.k, new)]
        v = [torch.cat([old, vn], dim=2)[:, :, -keep:] for old, (_, vn) in zip(self.v, new)]
        return KVCache(k, v, torch.cat([self.pos, pos])[-keep:])

    @staticmethod
    def start(new: list[tuple[Tensor, Tensor]], pos: Tensor, keep: int) -> "KVCache":
        return KVCache([k[:, :, -keep:] for k, _ in new], [v[:, :, -keep:] for _, v in new], pos[-keep:])


class STBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.norm_s, self.qkv_s, self.out_s = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm_t, self.qkv_t, self.out_t = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def _split(self, qkv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        s, l, _ = qkv.shape  # (S, L, 3D) -> 3 x (S, heads, L, dh)
        q, k, v = qkv.view(s, l, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(
        self, x: Tensor, pos: Tensor, band: int, past: tuple[Tensor, Tensor, Tensor] | None = None,
        grid: Tensor | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, T, N, D) at time positions pos (T,); past = cached (k, v, pos_k) of earlier frames;
        grid (N, 2) the tokens' (row, column) for the spatial rotary code, or None for none.

        Returns the new x and this call's temporal (k, v) (B * N, heads, T, dh), rotary already applied.
        """
        b, t, n, d = x.shape
        # spatial attention: the N tokens of each frame attend to each other
        q, k, v = self._split(self.qkv_s(self.norm_s(x).reshape(b * t, n, d)))
        if grid is not None:
            q, k = rotary_2d(q, grid), rotary_2d(k, grid)
        h = F.scaled_dot_product_attention(q, k, v)  # (B*T, heads, N, dh)
        x = x + self.out_s(h.transpose(1, 2).reshape(b, t, n, d))
        # temporal attention: each token position attends to itself in the last `band` frames
        q, k, v = self._split(self.qkv_t(self.norm_t(x).transpose(1, 2).reshape(b * n, t, d)))
        q, k = rotary(q, pos), rotary(k, pos)
        new_kv = (k, v)
        pos_k = pos
        if past is not None:
            k, v, pos_k = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2), torch.cat([past[2], pos])
        allowed = (pos_k[None, :] <= pos[:, None]) & (pos_k[None, :] > pos[:, None] - band)  # (T, Tk) causal band
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)  # (B*N, heads, T, dh)
        x = x + self.out_t(h.transpose(1, 2).reshape(b, n, t, d).transpose(1, 2))
        return x + self.mlp(self.norm_m(x)), new_kv


class Dynamics(nn.Module):
    """Token grids of T frames + per-frame conditions -> hidden states; `logits` maps them to the vocabulary."""

    def __init__(self, vocab: int, tokens: int, dim: int, layers: int, heads: int, band: int, spatial_rope: bool = False):
        super().__init__()
        self.vocab, self.tokens, self.band = vocab, tokens, band
        grid = None
        if spatial_rope:  # tokens are a square grid in row-major order
            side, index = math.isqrt(tokens), torch.arange(tokens)
            grid = torch.stack([index // side, index % side], dim=1)  # (N, 2) row, column
        self.register_buffer("grid", grid, persistent=False)
        self.embed = nn.Embedding(vocab + 1, dim)  # index `vocab` is the MaskGIT mask token
        self.spatial_pos = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(STBlock(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        # MaskGIT's output layer: a small MLP, then logits against the (tied) token embeddings plus a
        # bias. Tying makes "predict the token this position held a frame ago" (most of a frame, in a
        # game) an alignment of two vectors that share parameters, where an untied head must learn a
        # separate output row for each of the vocabulary's tokens before it can copy any of them.
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.head_bias = nn.Parameter(torch.zeros(vocab))

    @property
    def mask_token(self) -> int:
        return self.vocab

    @property
    def receptive_field(self) -> int:
        """How many earlier frames can influence a frame: `band - 1` per layer."""
        return len(self.blocks) * (self.band - 1)

    def forward(
        self, tokens: Tensor, cond: Tensor, pos: Tensor, cache: KVCache | None = None
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """tokens (B, T, N), cond (B, T, D), pos (T,) -> (hidden (B, T, N, D), per-layer temporal (k, v) of these T frames)."""
        x = self.embed(tokens) + self.spatial_pos + cond[:, :, None, :]
        kvs = []
        for i, block in enumerate(self.blocks):
            past = None if cache is None else (cache.k[i], cache.v[i], cache.pos)
            x, kv = block(x, pos, self.band, past, self.grid)
            kvs.append(kv)
        return self.norm(x), kvs

    def logits(self, hidden: Tensor) -> Tensor:
        """hidden (..., D) -> logits over the vocabulary (..., vocab)."""
        # / sqrt(dim): unit-variance embeddings against a layer-normed vector give logits of std ~1 at init
        return F.linear(self.head(hidden), self.embed.weight[: self.vocab]) * self.embed.embedding_dim**-0.5 + self.head_bias
