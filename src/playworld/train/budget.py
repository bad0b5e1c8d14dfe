"""The time budget of a training invocation (`--minutes`), with room kept for how it ends.

Training always ends with a validation, a media rollout and a checkpoint. `TimeBudget.over()` stops
the loop when the next step plus that ending would pass the budget, so `--minutes 3` ends within a
few seconds of 3 minutes, the ending included. The ending's cost is measured when training validates,
writes media or saves along the way, and estimated from the step time until then.
"""

from __future__ import annotations

from typing import Callable

VAL_PER_BATCH = 0.5
"""estimated cost of one validation batch, in training steps (a forward pass of the sampler, no backward)"""
MEDIA_PER_FRAME = 0.5
"""estimated cost of one media frame per `batch_size` windows, in training steps"""
SAVE_SECONDS = 1.0
"""estimated cost of a checkpoint before one was timed"""


class TimeBudget:
    def __init__(self, minutes: float, clock: Callable[[], float], started: float, val_batches: int,
                 media_frames: int, batch_size: int):
        self.seconds = float(minutes) * 60.0
        self.clock, self.started = clock, started
        self.step_time: float | None = None
        self.costs: dict[str, float] = {}  # the last measured cost of 'val', 'media' and 'save'
        self.val_batches, self.media_frames, self.batch_size = val_batches, media_frames, batch_size

    @property
    def limited(self) -> bool:
        return self.seconds > 0

    def spent(self) -> float:
        return self.clock() - self.started

    def left(self) -> float:
        return max(0.0, self.seconds - self.spent())

    def step_took(self, seconds: float) -> None:
        self.step_time = seconds if self.step_time is None else 0.9 * self.step_time + 0.1 * seconds

    def measured(self, what: str, seconds: float) -> None:
        self.costs[what] = seconds

    def reserve(self) -> float:
        """Seconds the ending (validation, media, checkpoint) is expected to take."""
        step = self.step_time or 0.0
        val = self.costs.get("val", VAL_PER_BATCH * self.val_batches * step)
        media = self.costs.get("media", MEDIA_PER_FRAME * self.media_frames * 4 / max(1, self.batch_size) * step)
        return val + media + self.costs.get("save", SAVE_SECONDS)

    def progress(self) -> float:
        """Share of the budget's training time spent (0 to 1): the ending's expected cost is not training time."""
        if not self.limited:
            return 0.0
        return min(1.0, self.spent() / max(1e-9, self.seconds - self.reserve()))

    def over(self) -> bool:
        """Whether one more step and the ending would pass the budget."""
        return self.limited and self.spent() + (self.step_time or 0.0) + self.reserve() >= self.seconds


def cooldown_factor(progress: float, share: float) -> float:
    """The learning-rate factor of a linear cool-down over the last `share` of a run at `progress` (0 to 1):
    1 until 1 - share, then falling linearly to 0 at the end; 1 throughout for share 0."""
    if share <= 0:
        return 1.0
    return max(0.0, min(1.0, (1.0 - progress) / share))
