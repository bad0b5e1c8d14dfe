"""Autoregressive rollouts: start a model from real context frames and drive it with the real actions.

    batch = dataset_windows(dataset, context=model.spec.context, horizon=64, episodes=4, split="val")
    generated = rollout(model, batch, horizon=64, seed=0)        # (B, 64, 3, H, W) uint8
    write_comparison(generated, batch.future_frames, "rollout.mp4", fps=dataset.fps)   # playworld.media

The model only ever sees its own previous outputs after the context (no teacher forcing), so errors
compound the way they do when a person plays it. Used by `playworld rollout`, training media and eval.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from playworld.data.batch import Batch
from playworld.data.windows import dataset_windows
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel


@torch.no_grad()
def rollout(
    model: WorldModel, batch_or_dataset, horizon: int, episodes: int = 4, seed: int = 0, split: str = "val",
    on_step: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Generate `horizon` frames per window, feeding back the model's own frames -> (B, T, 3, H, W) uint8.

    `batch_or_dataset` is a Batch (its context and its future actions are used; T = min(horizon,
    F)) or a Dataset (windows from `dataset_windows(..., episodes, split, seed)`). `on_step(done, total)`
    hears each generated step (a progress bar).
    """
    if isinstance(batch_or_dataset, Batch):
        batch = batch_or_dataset
    else:
        batch = dataset_windows(batch_or_dataset, model.spec.context, horizon, episodes, split, seed)
    k = model.spec.context
    if batch.context_frames.shape[1] < k:
        raise PlayworldError(
            f"rollout needs {k} context frames, the batch has {batch.context_frames.shape[1]}", "use windows with a longer context"
        )
    horizon = min(horizon, batch.future_actions.shape[1])
    state = model.reset(batch.context_frames[:, -k:], batch.context_actions[:, -k:], seed=seed)
    generated = []
    for t in range(horizon):
        state, frame = model.step(state, batch.future_actions[:, t])  # frame (B, 3, H, W) uint8
        generated.append(frame.cpu())
        if on_step is not None:
            on_step(t + 1, horizon)
    return torch.stack(generated, dim=1)
