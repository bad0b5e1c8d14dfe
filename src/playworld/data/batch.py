"""The training/evaluation batch: K context frames and actions, then F future actions and frames.

Time convention (used everywhere in playworld, like Dreamer's replay):
    actions[t] is the action that led INTO frames[t] (actions[0] of an episode is the no-op);
    rewards[t] is the reward received on arriving at frames[t]; terminated[t] marks frames[t] terminal.
So a model predicts future_frames[:, 0] from context_frames and context_actions plus future_actions[:, 0].
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from playworld.errors import PlayworldError


def check_context(k: Any) -> None:
    """The one validation of a context length K (an int >= 1), wherever one is given."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise PlayworldError(f"context length K must be an integer of at least 1, got {k!r}", "set model.context to e.g. 4")


@dataclass
class Batch:
    context_frames: Tensor  # (B, K, 3, H, W) uint8
    context_actions: Tensor  # (B, K) int64, or (B, K, dim) float32; [:, i] led into context frame i
    future_actions: Tensor  # (B, F) int64, or (B, F, dim) float32; [:, j] leads into future frame j
    future_frames: Tensor  # (B, F, 3, H, W) uint8
    future_rewards: Tensor  # (B, F) float32
    future_terminated: Tensor  # (B, F) bool
    memory_frames: Tensor | None = None
    """(B, F, 3, H, W) uint8, only from a loader asked for memory (`playworld.data.memory`): for each future
    frame, the frame of its episode from before its context that looks most like it"""
    memory_valid: Tensor | None = None
    """(B, F) bool: whether that future frame had an earlier frame to retrieve (False: memory_frames is zeros)"""

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(**{f.name: _apply(getattr(self, f.name), lambda t: t.to(device, non_blocking=non_blocking)) for f in fields(self)})

    @property
    def size(self) -> int:
        return self.context_frames.shape[0]

    def __getitem__(self, idx) -> "Batch":
        """Select examples along the batch dimension."""
        return Batch(**{f.name: _apply(getattr(self, f.name), lambda t: t[idx]) for f in fields(self)})


def _apply(value: Tensor | None, fn) -> Tensor | None:
    """fn(value), keeping the optional fields' None."""
    return None if value is None else fn(value)
