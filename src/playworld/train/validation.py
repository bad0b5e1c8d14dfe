"""Validation during training, through the `WorldModel` interface (the EMA weights' sampler).

Teacher-forced next-frame PSNR: the model gets K real context frames and actions plus the real next
action, generates one frame, and we compare it with the real next frame. The windows are fixed
(evenly spaced over every window of the val split), so numbers are comparable across steps and runs.
"""

from __future__ import annotations

import numpy as np
import torch

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel


def validation_windows(dataset, context: int, count: int, split: str = "val") -> Batch | None:
    """`count` evenly spaced one-step windows of `split` (None when the split has no window)."""
    from playworld.data.windows import WindowSampler

    try:
        sampler = WindowSampler(dataset, context, 1, split)
    except PlayworldError:
        return None
    indices = np.unique(np.linspace(0, len(sampler) - 1, count).round().astype(np.int64))
    return sampler.collate(indices)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example PSNR in dB of uint8 images (B, 3, H, W); identical images give 100 dB (capped)."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).clamp_max(100.0)


@torch.no_grad()
def teacher_forced_psnr(model: WorldModel, windows: Batch, batch_size: int, seed: int = 0) -> float:
    """Mean teacher-forced next-frame PSNR (dB) of `model` over `windows`, in chunks of `batch_size`."""
    scores = []
    for start in range(0, windows.size, batch_size):
        b = windows[start : start + batch_size]
        state = model.reset(b.context_frames, b.context_actions, seed=seed + start)
        _, frame = model.step(state, b.future_actions[:, 0])  # (B, 3, H, W) uint8
        scores.append(psnr(frame.cpu(), b.future_frames[:, 0]))
    return float(torch.cat(scores).mean())
