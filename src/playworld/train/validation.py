"""Validation during training, through the `WorldModel` interface (the EMA weights' sampler).

Teacher-forced next-frame PSNR: the model gets K real context frames and actions plus the real next
action, generates one frame, and we compare it with the real next frame. The windows are fixed
(evenly spaced over every window of the val split), so numbers are comparable across steps and runs.
"""

from __future__ import annotations

import numpy as np
import torch

from playworld.data.batch import Batch
from playworld.data.windows import WindowSampler
from playworld.errors import PlayworldError
from playworld.metrics import pooled_psnr
from playworld.models.interface import WorldModel


def validation_windows(dataset, context: int, count: int, split: str = "val") -> Batch | None:
    """`count` evenly spaced one-step windows of `split` (None when the split has no window)."""
    try:
        sampler = WindowSampler(dataset, context, 1, split)
    except PlayworldError:
        return None
    indices = np.unique(np.linspace(0, len(sampler) - 1, count).round().astype(np.int64))
    return sampler.collate(indices)


@torch.no_grad()
def teacher_forced_psnr(model: WorldModel, windows: Batch, batch_size: int, seed: int = 0) -> float:
    """Teacher-forced next-frame PSNR (dB) of `model` over `windows`, in chunks of `batch_size`.

    The PSNR of the MSE pooled over all windows, as in the eval suite (`playworld.metrics.pooled_psnr`):
    a mean of per-frame dB would let frames that happen to be copied exactly dominate it.
    """
    preds, targets = [], []
    for start in range(0, windows.size, batch_size):
        b = windows[start : start + batch_size]
        state = model.reset(b.context_frames, b.context_actions, seed=seed + start)
        _, frame = model.step(state, b.future_actions[:, 0])  # (B, 3, H, W) uint8
        preds.append(frame.cpu())
        targets.append(b.future_frames[:, 0])
    return float(pooled_psnr(torch.cat(preds).numpy(), torch.cat(targets).numpy()))
