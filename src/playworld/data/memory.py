"""Retrieval of a frame from before the context: the memory a model can re-anchor on.

A frame-autoregressive model sees only its K newest frames, so ground it saw earlier and comes back
to must be invented again, and each invention drifts. A memory model is also given, for the frame it
predicts, one frame from further back: the one that looks most like the frame to predict. Where the
world shows a place seen before (explorer's agent walks back; half of its training frames stand
where the agent stood more than 8 steps earlier), that frame holds the ground the context cannot.

The key is what the frames look like, not where they were taken, so it needs no pose and works on
any world or video: each frame's mean colour over an 8x8 grid (`thumbnails`), compared by squared
distance (`nearest`). Training retrieves with the true next frame as the key (`retrieve`, from the
loader); playing retrieves with a draft of the next frame the model makes without memory first (see
`DiffusionWorldModel.step`). The coarse key is what lets the draft, blurrier than the truth, find the
same frame the truth would.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

GRID = 8
"""the key is each frame's mean colour over a GRID x GRID grid of blocks"""


def thumbnails(frames: Tensor) -> Tensor:
    """frames (..., C, H, W), uint8 or float in [-1, 1] -> keys (..., C * GRID * GRID) float32 in [-1, 1]."""
    lead, chw = frames.shape[:-3], frames.shape[-3:]
    x = frames.reshape(-1, *chw)
    x = x.float().div(127.5).sub(1.0) if frames.dtype == torch.uint8 else x.float()
    return F.adaptive_avg_pool2d(x, GRID).reshape(*lead, chw[0] * GRID * GRID)


def nearest(keys: Tensor, query: Tensor, count: Tensor | None = None) -> Tensor:
    """keys (B, N, D), query (B, D) -> (B,) index of each row's nearest key (squared distance).

    count (B,) int: only the first count[b] keys of row b are candidates (rows padded to N); a row
    with none gets index 0, which callers mark as not retrieved."""
    d = (keys - query[:, None]).pow(2).sum(-1)  # (B, N)
    if count is not None:
        d = d.masked_fill(torch.arange(keys.shape[1], device=keys.device)[None] >= count[:, None], float("inf"))
    return d.argmin(1)


def retrieve(keys: Tensor, t: int, context: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For the window whose first future frame is t: the index of the memory frame of each of its
    `horizon` future frames, and whether it has one. keys (T, D): the episode's `thumbnails`.

    Future frame t + j is predicted from the context frames t + j - K .. t + j - 1, so its candidates
    are the frames 0 .. t + j - K - 1, and the key is the frame t + j itself (training's key; play uses
    a draft of it)."""
    index, valid = np.zeros(horizon, np.int64), np.zeros(horizon, bool)
    for j in range(horizon):
        end = t + j - context  # candidates [0, end)
        if end <= 0:
            continue
        d = (keys[:end] - keys[t + j]).pow(2).sum(-1)
        index[j], valid[j] = int(d.argmin()), True
    return index, valid
