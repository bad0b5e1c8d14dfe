"""Autoregressive rollouts: start a model from real context frames and drive it with the real actions.

    batch = dataset_windows(dataset, context=model.spec.context, horizon=64, episodes=4, split="val")
    generated = rollout(model, batch, horizon=64, seed=0)        # (B, 64, 3, H, W) uint8
    write_comparison(generated, batch.future_frames, "rollout.mp4", fps=dataset.fps)

The model only ever sees its own previous outputs after the context (no teacher forcing), so errors
compound the way they do when a person plays it. Used by `playworld rollout`, training media and eval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel


def dataset_windows(dataset, context: int, horizon: int, episodes: int = 4, split: str = "val", seed: int = 0) -> Batch:
    """One window per episode: `context` real frames and actions, then `horizon` real actions and frames.

    Episodes of `split` are drawn with a seeded generator (without replacement while there are
    enough); each window starts at a random step. The horizon is shortened to the longest that fits
    every chosen episode (check `batch.future_frames.shape[1]`).
    """
    ids = [e for e in dataset.episode_ids(split) if dataset.episode_length(e) > context]
    if not ids:
        raise PlayworldError(
            f"split {split!r} of dataset {dataset.path} has no episode longer than the context ({context} frames)",
            "pick another --split or collect more/longer episodes",
        )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=episodes, replace=episodes > len(ids))
    horizon = min(horizon, min(dataset.episode_length(e) - context for e in chosen))
    frames, actions, rewards, terminated = [], [], [], []
    for ep in chosen:
        e = dataset.load_episode(int(ep))
        t = int(rng.integers(context, len(e) - horizon + 1))  # first future frame
        frames.append(np.asarray(e.frames[t - context : t + horizon]).transpose(0, 3, 1, 2))  # (K+F, 3, H, W)
        actions.append(np.asarray(e.actions[t - context : t + horizon]))
        rewards.append(np.asarray(e.rewards[t : t + horizon], np.float32))
        terminated.append(np.asarray(e.terminated[t : t + horizon], bool))
    frames_t, actions_t = torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(actions))
    return Batch(
        context_frames=frames_t[:, :context], context_actions=actions_t[:, :context],
        future_actions=actions_t[:, context:], future_frames=frames_t[:, context:],
        future_rewards=torch.from_numpy(np.stack(rewards)), future_terminated=torch.from_numpy(np.stack(terminated)),
    )


@torch.no_grad()
def rollout(
    model: WorldModel, batch_or_dataset, horizon: int, episodes: int = 4, seed: int = 0, split: str = "val",
) -> Tensor:
    """Generate `horizon` frames per window, feeding back the model's own frames -> (B, T, 3, H, W) uint8.

    `batch_or_dataset` is a Batch (its context and its future actions are used; T = min(horizon,
    F)) or a Dataset (windows from `dataset_windows(..., episodes, split, seed)`).
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
    return torch.stack(generated, dim=1)


def comparison_frames(generated: Tensor, truth: Tensor, scale: int | None = None) -> np.ndarray:
    """(B, T, 3, H, W) generated and ground truth -> one video (T, rows*H', 2*W'+gap, 3) uint8.

    One row per window: generated on the left, ground truth on the right, upscaled by nearest
    neighbour (`scale`, by default to about 256 pixels high per row) so small frames stay crisp.
    """
    from playworld.media import side_by_side, upscale_nearest

    t = min(generated.shape[1], truth.shape[1])
    gen = generated[:, :t].permute(0, 1, 3, 4, 2).cpu().numpy()  # (B, T, H, W, 3)
    real = truth[:, :t].permute(0, 1, 3, 4, 2).cpu().numpy()
    scale = scale or max(1, 256 // gen.shape[2])
    rows = [side_by_side(upscale_nearest(g, scale), upscale_nearest(r, scale)) for g, r in zip(gen, real)]
    gap = np.full((t, 2, rows[0].shape[2], 3), 255, np.uint8)
    stacked = [rows[0]]
    for row in rows[1:]:
        stacked += [gap, row]
    return np.concatenate(stacked, axis=1)


def write_comparison(generated: Tensor, truth: Tensor, path: str | Path, fps: float, scale: int | None = None) -> Path:
    """Write the generated-beside-ground-truth video; .mp4, .webm or .gif by the suffix of `path`."""
    from playworld.media import write_video

    return write_video(path, comparison_frames(generated, truth, scale), fps=fps)
