"""The video tokenizer: a conv encoder/decoder around an FSQ bottleneck (Mentzer et al. 2023).

Finite scalar quantization bounds each of d latent channels to L_i levels and rounds it, with a
straight-through gradient; the product of the levels is an implicit codebook (no codebook loss, no
collapse). Frames are tokenized one by one (Genie's tokenizer is spatio-temporal; at CPU scale a
per-frame tokenizer keeps the dynamics' job, temporal prediction, in the dynamics).

Shapes: frames (B, 3, H, W) in [-1, 1]; latents (B, d, h, w); token indices (B, h * w) int64.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FSQ(nn.Module):
    """Finite scalar quantization: (B, d, ...) real -> codes on a grid in [-1, 1] and their indices."""

    def __init__(self, levels: tuple[int, ...], eps: float = 1e-3):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        levels_t = torch.tensor(self.levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1, *self.levels[:-1]], dtype=torch.int64), 0)  # mixed-radix digits
        self.register_buffer("_levels", levels_t, persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_half_width", (levels_t // 2), persistent=False)
        self.eps = eps

    @property
    def dim(self) -> int:
        return len(self.levels)

    @property
    def vocab(self) -> int:
        return int(torch.prod(self._levels).item())

    def _view(self, t: Tensor, ndim: int) -> Tensor:
        return t.view(1, -1, *([1] * (ndim - 2)))  # broadcast over (B, d, ...)

    def bound(self, z: Tensor) -> Tensor:
        """Squash z so that rounding gives exactly L_i values per channel (even L: offset by a half)."""
        levels = self._view(self._levels, z.ndim)
        half_l = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: Tensor) -> Tensor:
        """z (B, d, ...) -> quantized codes in [-1, 1] (B, d, ...), straight-through gradient."""
        bounded = self.bound(z)
        rounded = bounded + (bounded.round() - bounded).detach()
        return rounded / self._view(self._half_width, z.ndim)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """codes (B, d, ...) on the grid -> indices (B, ...) int64 in [0, vocab)."""
        hw = self._view(self._half_width, codes.ndim)
        digits = (codes * hw + hw).round().long()  # (B, d, ...) in [0, L_i)
        return (digits * self._view(self._basis, codes.ndim)).sum(1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """indices (B, ...) -> codes (B, d, ...) on the grid in [-1, 1]."""
        ndim = indices.ndim + 1
        digits = (indices.unsqueeze(1) // self._view(self._basis, ndim)) % self._view(self._levels.long(), ndim)
        hw = self._view(self._half_width, ndim)
        return (digits.float() - hw) / hw


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.GroupNorm(_groups(cin), cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))


def _groups(c: int) -> int:
    for g in (8, 4, 2):
        if c % g == 0:
            return g
    return 1


class PlainResBlock(nn.Module):
    """x + two unconditioned conv blocks at width c (the tokenizer's and the LAM's; models/nn.py's ResBlock
    is the condition-modulated one of the U-Net)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_block(c, c), _block(c, c))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ConvEncoder(nn.Module):
    """(B, cin, H, W) -> (B, cout, H / 2^(S-1), W / 2^(S-1)); S = len(channels), one PlainResBlock per stage."""

    def __init__(self, cin: int, channels: tuple[int, ...], cout: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, channels[0], 3, padding=1), PlainResBlock(channels[0])]
        for prev, c in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(prev, c, 4, stride=2, padding=1), PlainResBlock(c)]
        layers += [nn.GroupNorm(_groups(channels[-1]), channels[-1]), nn.SiLU(), nn.Conv2d(channels[-1], cout, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(B, cin, h, w) -> (B, cout, h * 2^(S-1), w * 2^(S-1)): the mirror of ConvEncoder (nearest upsampling + conv)."""

    def __init__(self, cin: int, channels: tuple[int, ...], cout: int):
        super().__init__()
        rev = tuple(reversed(channels))
        layers: list[nn.Module] = [nn.Conv2d(cin, rev[0], 3, padding=1), PlainResBlock(rev[0])]
        for prev, c in zip(rev[:-1], rev[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, c, 3, padding=1), PlainResBlock(c)]
        layers += [nn.GroupNorm(_groups(rev[-1]), rev[-1]), nn.SiLU(), nn.Conv2d(rev[-1], cout, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Tokenizer(nn.Module):
    """Frames <-> grids of FSQ tokens."""

    def __init__(self, levels: tuple[int, ...], channels: tuple[int, ...], image_channels: int = 3):
        super().__init__()
        self.fsq = FSQ(levels)
        self.encoder = ConvEncoder(image_channels, channels, self.fsq.dim)
        self.decoder = ConvDecoder(self.fsq.dim, channels, image_channels)
        self.downsample = 2 ** (len(channels) - 1)

    def quantize(self, x: Tensor) -> Tensor:
        """frames (B, 3, H, W) in [-1, 1] -> quantized codes (B, d, h, w), straight-through."""
        return self.fsq(self.encoder(x))

    def encode(self, x: Tensor) -> Tensor:
        """frames (B, 3, H, W) in [-1, 1] -> token indices (B, h * w)."""
        return self.fsq.codes_to_indices(self.quantize(x)).flatten(1)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """codes (B, d, h, w) -> frames (B, 3, H, W), unclamped (about [-1, 1])."""
        return self.decoder(codes)

    def decode(self, indices: Tensor, side: int) -> Tensor:
        """indices (B, side * side) -> frames (B, 3, H, W)."""
        codes = self.fsq.indices_to_codes(indices.view(indices.shape[0], side, side))
        return self.decode_codes(codes)

