"""Neural-network blocks shared by model families: conditioning embeddings and a conditional U-Net.

The U-Net is the one DIAMOND and GameNGen use for frame denoising, with one CPU-minded addition:
an optional `patch` (pixel-unshuffle) stem, so a 64x64 frame is processed as a 32x32 grid of 2x2
patches. That cuts the compute of the full-resolution level by 4x at almost no loss for frames
whose detail is coarser than a pixel, and is what lets the `small` preset run at 30+ frames/s.

Shapes: images (B, C, H, W); the condition vector (B, D).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _shrink(layer: nn.Module, factor: float = 0.1) -> None:
    """Scale a layer's initial weights down (not to zero, so every parameter gets a gradient at step 0)."""
    with torch.no_grad():
        layer.weight.mul_(factor)
        if layer.bias is not None:
            layer.bias.zero_()


def symlog(x: Tensor) -> Tensor:
    """sign(x) log(1 + |x|): DreamerV3's squashing of targets of unknown scale (rewards, returns)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: Tensor) -> Tensor:
    """The inverse of `symlog`."""
    return torch.sign(x) * torch.expm1(x.abs())


class FourierFeatures(nn.Module):
    """Scalar (B,) -> (B, dim) random Fourier features (fixed, as in EDM / DIAMOND)."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        assert dim % 2 == 0
        self.register_buffer("weight", torch.randn(1, dim // 2) * scale)

    def forward(self, x: Tensor) -> Tensor:
        f = 2 * math.pi * x.float()[:, None] @ self.weight  # (B, dim/2)
        return torch.cat([f.cos(), f.sin()], dim=-1)


class ActionScale(nn.Module):
    """A continuous action (..., dim) scaled to [-1, 1] by its bounds (a bound pair of equal values maps to 0). The
    bounds are buffers that are not saved: they come from the world's action space, so a checkpoint is unchanged."""

    def __init__(self, low, high):
        super().__init__()
        low_t, high_t = torch.tensor(low, dtype=torch.float32), torch.tensor(high, dtype=torch.float32)
        self.register_buffer("center", (high_t + low_t) / 2, persistent=False)
        self.register_buffer("half_range", ((high_t - low_t) / 2).clamp_min(1e-6), persistent=False)

    def forward(self, actions: Tensor) -> Tensor:
        return (actions.float() - self.center) / self.half_range


class ActionEmbedding(nn.Module):
    """Actions (B, T) int64 or (B, T, dim) float -> (B, out_dim).

    Discrete (and 'none') actions share one embedding table, continuous ones one linear map of the
    action scaled to [-1, 1] by its bounds; each of the T positions is embedded, then flattened
    and projected, so the model knows which action came when.
    """

    def __init__(self, kind: str, n: int, dim: int, low, high, steps: int, emb: int, out_dim: int):
        super().__init__()
        self.continuous = kind == "continuous"
        if self.continuous:
            self.scale = ActionScale(low, high)
            self.embed = nn.Linear(dim, emb)
        else:
            self.embed = nn.Embedding(max(n, 1), emb)
        self.proj = nn.Linear(steps * emb, out_dim)

    def forward(self, actions: Tensor) -> Tensor:
        if self.continuous:
            e = self.embed(self.scale(actions))  # (B, T, emb)
        else:
            e = self.embed(actions.long())  # (B, T, emb)
        return self.proj(e.flatten(1))


class AdaGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from the condition vector (adaptive group norm)."""

    def __init__(self, channels: int, cond_dim: int, groups: int):
        super().__init__()
        self.groups = math.gcd(groups, channels)
        self.linear = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        x = F.group_norm(x, self.groups)
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return x * (1 + scale) + shift


class ResBlock(nn.Module):
    """AdaGN -> SiLU -> conv3x3, twice, plus a (1x1 when widths differ) skip; optional self-attention."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, groups: int, attention: bool, head_dim: int = 32):
        super().__init__()
        self.norm1 = AdaGroupNorm(c_in, cond_dim, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2 = AdaGroupNorm(c_out, cond_dim, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        _shrink(self.conv2)  # each block starts close to the identity (stable early training)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attn = SelfAttention(c_out, cond_dim, groups, head_dim) if attention else None

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(F.silu(self.norm2(h, cond)))
        x = self.skip(x) + h
        return x if self.attn is None else self.attn(x, cond)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions (used only at the coarsest level)."""

    def __init__(self, channels: int, cond_dim: int, groups: int, head_dim: int):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = AdaGroupNorm(channels, cond_dim, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        _shrink(self.out)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x, cond)).reshape(b, 3, self.heads, c // self.heads, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, heads, HW, head_dim) each
        y = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """Conditional U-Net: x (B, c_x, H, W) + precomputed side input + cond (B, D) -> (B, c_out, H, W).

    The input is split in two (`x`, the image being denoised, and `side`, e.g. the context frames)
    so that a sampler can embed `side` once per frame and reuse it over its denoising steps:
    stem(cat(x, side)) == stem_x(x) + stem_side(side) for a convolution.
    """

    def __init__(
        self, c_x: int, c_side: int, c_out: int, cond_dim: int, channels: tuple[int, ...],
        depths: tuple[int, ...], attention: tuple[bool, ...], patch: int = 1, groups: int = 8,
        mid_attention: bool | None = None,
    ):
        super().__init__()
        assert len(channels) == len(depths) == len(attention)
        self.patch = patch
        c0 = channels[0]
        self.stem_x = nn.Conv2d(c_x * patch * patch, c0, 3, padding=1)
        self.stem_side = nn.Conv2d(c_side * patch * patch, c0, 3, padding=1, bias=False) if c_side else None

        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [c0], c0
        for level, (ch, depth, attn) in enumerate(zip(channels, depths, attention)):
            blocks = nn.ModuleList()
            for _ in range(depth):
                blocks.append(ResBlock(c, ch, cond_dim, groups, attn))
                c = ch
                skips.append(c)
            self.down.append(blocks)
            last = level == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            if not last:
                skips.append(c)

        # the bottleneck: two blocks at the coarsest level, the first attending (by default if that level does)
        mid_attn = attention[-1] if mid_attention is None else bool(mid_attention)
        self.mid = nn.ModuleList([ResBlock(c, c, cond_dim, groups, mid_attn), ResBlock(c, c, cond_dim, groups, False)])

        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(channels))):
            ch, depth, attn = channels[level], depths[level], attention[level]
            blocks = nn.ModuleList()
            for _ in range(depth + 1):
                blocks.append(ResBlock(c + skips.pop(), ch, cond_dim, groups, attn))
                c = ch
            self.up.append(blocks)
            self.upsample.append(nn.Conv2d(c, c, 3, padding=1) if level > 0 else nn.Identity())

        self.out_norm = nn.GroupNorm(math.gcd(groups, c), c)
        self.out_conv = nn.Conv2d(c, c_out * patch * patch, 3, padding=1)
        _shrink(self.out_conv)  # the output starts near 0, the EDM target's mean

    def embed_side(self, side: Tensor) -> Tensor | None:
        """The side input's share of the stem, (B, c0, H/patch, W/patch); compute once, reuse per step."""
        if self.stem_side is None:
            return None
        return self.stem_side(F.pixel_unshuffle(side, self.patch) if self.patch > 1 else side)

    def forward(self, x: Tensor, side_embedding: Tensor | None, cond: Tensor) -> Tensor:
        h = self.stem_x(F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x)
        if side_embedding is not None:
            h = h + side_embedding
        hs = [h]
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, cond)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        for block in self.mid:
            h = block(h, cond)
        for blocks, up in zip(self.up, self.upsample):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), cond)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.out_conv(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(h, self.patch) if self.patch > 1 else h
