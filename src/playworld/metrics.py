"""Pure metric functions on arrays: no models, no datasets.

Frames are uint8 arrays (..., H, W, 3) or (..., 3, H, W) torch/numpy; say which with `channels_first`.
Every function returns plain Python floats (or lists of them) that are finite and JSON-able.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity

PSNR_CAP = 100.0
"""dB reported for identical frames (MSE 0). PSNR is infinite there; 100 dB is far above any real
reconstruction of 8-bit frames (one wrong grey level in a 64x64x3 frame is already ~89 dB), so the cap
marks "exact" without an inf that JSON cannot hold and a mean cannot average."""


def _hwc(frames, channels_first: bool) -> np.ndarray:
    """(..., 3, H, W) or (..., H, W, 3) torch/numpy -> numpy (N, H, W, 3)."""
    a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if channels_first:
        a = np.moveaxis(a, -3, -1)
    return a.reshape(-1, *a.shape[-3:])


def mse(pred, target, channels_first: bool = True) -> np.ndarray:
    """Per-frame mean squared error in (0..255)^2 units. pred/target (..., frame) -> array of shape (...)."""
    lead = tuple(pred.shape[:-3])
    p = _hwc(pred, channels_first).astype(np.float64)
    t = _hwc(target, channels_first).astype(np.float64)
    if p.shape != t.shape:
        raise ValueError(f"frames shaped {p.shape} and {t.shape} do not match")
    return ((p - t) ** 2).mean(axis=(1, 2, 3)).reshape(lead)


def psnr_from_mse(mse_value, data_range: float = 255.0):
    """10 log10(range^2 / MSE) in dB, capped at `PSNR_CAP` (MSE 0 -> the cap). Scalar or array."""
    m = np.asarray(mse_value, np.float64)
    with np.errstate(divide="ignore"):
        db = np.minimum(10.0 * np.log10(data_range**2 / m), PSNR_CAP)
    return float(db) if db.ndim == 0 else db


def psnr(pred, target, channels_first: bool = True, data_range: float = 255.0) -> np.ndarray:
    """Per-frame PSNR in dB, capped at `PSNR_CAP`. pred/target (..., frame) -> array of shape (...)."""
    return np.asarray(psnr_from_mse(mse(pred, target, channels_first), data_range)).reshape(tuple(pred.shape[:-3]))


def unit_psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean per-image PSNR (dB) of [-1, 1] image tensors (B, C, H, W), as the 8-bit frames they stand for
    (capped at `PSNR_CAP`); a cheap training log that stays on the tensors' device."""
    err = (x.detach().float().clamp(-1, 1) - y.detach().float().clamp(-1, 1)).pow(2).flatten(1).mean(1) / 4  # range 2 -> 1
    return float((10 * torch.log10(1.0 / err.clamp_min(1e-10))).clamp_max(PSNR_CAP).mean())


def pooled_psnr(pred, target, axis=None, channels_first: bool = True) -> np.ndarray | float:
    """PSNR of the MSE averaged over frames (along `axis` of the leading dims; all when None).

    The set-level PSNR used by the eval groups: averaging per-frame dB instead would let frames that
    happen to be copied exactly (static scenes: infinite, here capped dB) dominate the mean.
    """
    return psnr_from_mse(mse(pred, target, channels_first).mean(axis=axis))


def detail_energy(frames, channels_first: bool = True) -> np.ndarray:
    """Per-frame energy of the finest detail: the mean square of the three detail coefficients of a 2x2 Haar
    transform (horizontal, vertical, diagonal differences within each 2x2 block, in grey levels^2).

    Pixel-level texture lives there, and so does the high-frequency error an autoregressive model adds each
    step and never removes (a frame-to-frame change predicted on a 2x2 grid of patches leaves it on that
    grid); over a long rollout it grows into a checkered texture while the real world's stays flat, so
    generated over real is a texture-dissolution measure that needs no pixel alignment. frames (..., frame)
    -> array of shape (...)."""
    a = _hwc(frames, channels_first).astype(np.float64)
    a = a[:, : a.shape[1] // 2 * 2, : a.shape[2] // 2 * 2]
    p, q, r, s = a[:, ::2, ::2], a[:, ::2, 1::2], a[:, 1::2, ::2], a[:, 1::2, 1::2]
    e = sum(((w + x - y - z) / 4) ** 2 for w, x, y, z in ((p, q, r, s), (p, r, q, s), (p, s, q, r)))  # v, h, diagonal
    return e.mean(axis=(1, 2, 3)).reshape(tuple(frames.shape[:-3]))


def region_contrast(frames, channels_first: bool = True, block: int = 8) -> np.ndarray:
    """Per-frame contrast between regions: the variance over a frame's `block` x `block` regions of their mean
    colour (grey levels^2, averaged over the channels).

    A model that predicts the average of what it cannot know draws new ground as its mean colour, and over a
    long rollout its frames fade towards flat ground; generated over real falls below 1 then, while texture on
    the pixel grid (`detail_energy`), which averages out within a region, leaves it alone. frames (..., frame)
    -> array of shape (...)."""
    a = _hwc(frames, channels_first).astype(np.float64)
    n, h, w, c = a.shape
    h, w = h // block * block, w // block * block
    means = a[:, :h, :w].reshape(n, h // block, block, w // block, block, c).mean(axis=(2, 4))  # (N, h', w', C)
    return means.var(axis=(1, 2)).mean(axis=-1).reshape(tuple(frames.shape[:-3]))


def ssim(pred, target, channels_first: bool = True, data_range: float = 255.0) -> np.ndarray:
    """Per-frame SSIM (scikit-image structural_similarity: 7x7 uniform window, channels averaged)."""
    lead = tuple(pred.shape[:-3])
    p, t = _hwc(pred, channels_first), _hwc(target, channels_first)
    if p.shape != t.shape:
        raise ValueError(f"ssim of frames shaped {p.shape} and {t.shape}")
    out = np.array([
        structural_similarity(a, b, channel_axis=-1, data_range=data_range) for a, b in zip(p, t)
    ], dtype=np.float64)
    return out.reshape(lead)


# -- distributions of features -------------------------------------------------------------------
def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(m)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def fd(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to features x (N, D) and y (M, D) (as in FID/FVD).

    ||mu_x - mu_y||^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)); the trace of the matrix root is taken as
    sum sqrt(eig(S_x^(1/2) S_y S_x^(1/2))), a symmetric PSD form that needs no complex sqrtm.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"fd needs two (N>=2, D) feature sets, got {x.shape} and {y.shape}")
    mx, my = x.mean(0), y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    rx = _sqrt_psd(sx)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(rx @ sy @ rx), 0, None)).sum()
    val = float(((mx - my) ** 2).sum() + np.trace(sx) + np.trace(sy) - 2.0 * cross)
    return max(val, 0.0)


def kid(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel distance (Binkowski et al. 2018): unbiased MMD^2 with k(a, b) = (a.b / D + 1)^3.

    Averaged over `subsets` random subsets of min(subset_size, N, M) rows from each set.
    Returns (mean, std over subsets). Unbiased, so it can dip slightly below 0 for equal distributions.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"kid needs at least 2 rows in each set, got {len(x)} and {len(y)}")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        kaa = (a @ a.T / d + 1) ** 3
        kbb = (b @ b.T / d + 1) ** 3
        kab = (a @ b.T / d + 1) ** 3
        mmd = ((kaa.sum() - np.trace(kaa)) + (kbb.sum() - np.trace(kbb))) / (m * (m - 1)) - 2 * kab.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


# -- time ----------------------------------------------------------------------------------------
def static_mask(frames, tol: float = 0.0) -> np.ndarray:
    """frames (N, T, frame) -> bool (N, T-1): transition t -> t+1 is static (mean |diff| <= tol, 0..255)."""
    a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    diff = np.abs(np.diff(a.astype(np.int16), axis=1)).mean(axis=(-3, -2, -1))
    return diff <= tol


def flicker(frames, mask: np.ndarray) -> float:
    """VBench temporal flickering: (255 - mean |frame_t+1 - frame_t|) / 255 over the masked transitions.

    frames (N, T, frame) uint8; mask (N, T-1) bool selects the transitions inside static segments of
    the *real* video. 1.0 = no flicker. Raises ValueError when the mask selects nothing.
    """
    a = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    mask = np.asarray(mask, bool)
    if mask.shape != (a.shape[0], a.shape[1] - 1):
        raise ValueError(f"mask {mask.shape} does not match frames {a.shape[:2]} (needs (N, T-1))")
    if not mask.any():
        raise ValueError("flicker needs at least one static transition")
    diff = np.abs(np.diff(a.astype(np.int16), axis=1)).mean(axis=(-3, -2, -1))  # (N, T-1)
    return float((255.0 - diff[mask].mean()) / 255.0)


def static_segments(mask: np.ndarray, min_transitions: int = 2) -> np.ndarray:
    """Keep only runs of at least `min_transitions` consecutive static transitions. mask (N, T-1) bool."""
    mask = np.asarray(mask, bool)
    out = np.zeros_like(mask)
    for i, row in enumerate(mask):
        t = 0
        while t < len(row):
            if row[t]:
                end = t
                while end < len(row) and row[end]:
                    end += 1
                if end - t >= min_transitions:
                    out[i, t:end] = True
                t = end
            else:
                t += 1
    return out


# -- curves --------------------------------------------------------------------------------------
def auc(curve) -> float:
    """Area under a per-step curve normalised by its length (= the mean over steps 1..H)."""
    c = np.asarray(curve, np.float64)
    if c.size == 0:
        raise ValueError("auc of an empty curve")
    return float(c.mean())


def steps_to_threshold(curve, threshold: float) -> int:
    """Steps the curve stays at or above `threshold` before first dropping below (len(curve) if never).

    curve[i] is the value at step i+1, so the result is the last good step: 0 when step 1 is already below.
    """
    c = np.asarray(curve, np.float64)
    below = np.flatnonzero(c < threshold)
    return int(below[0]) if below.size else int(c.size)


def finite_or_none(x: float) -> float | None:
    """A JSON-safe float: NaN/inf become None."""
    x = float(x)
    return x if math.isfinite(x) else None
