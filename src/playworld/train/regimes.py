"""Training regimes against exposure bias, as options of the shared training loop.

A model trained only on real context (teacher forcing) meets its own imperfect outputs at run
time and drifts. The regimes (`train.regime`, see `TrainConfig`) change what the context is made of:

    teacher_forcing    real context frames: the baseline (plus GameNGen context noise where the
                       family has it, `train.context_noise`)
    self_forcing       Huang et al. 2025: the model rolls out on its own few-step samples for
                       R = `train.rollout` frames and the loss is put on every rolled-out frame;
                       gradient through each loss step only, or truncated backprop through the last
                       `train.rollout_grad_steps` generated frames
    diffusion_forcing  Chen et al. 2024: an independent noise level per frame, context included,
                       and the network is told each frame's level

A schedule moves from `train.regime_from` to `train.regime`: at `regime_switch_step` at once, or
with the chance of `regime` rising linearly over `regime_ramp_steps`. Which regime a step uses is
a pure function of (seed, step), so `--resume` trains exactly as the straight run.

A family says what it supports (`Family.supports_regimes`) and implements it in
`Family.regime_loss`; the loop reaches it through `RegimeSchedule.loss`. Families today:
- diffusion: all three, and context noise;
- rssm: teacher forcing only. Its objective already filters real frames with the posterior and
  trains the prior, which imagination uses, by KL; self forcing would mean decoding imagined
  latents (latent overshooting), not implemented;
- genie: teacher forcing only. Its rollouts are discrete MaskGIT token samples that carry no
  gradient, and its per-frame masking already plays diffusion forcing's part for the target frame.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.train.config import TrainConfig

REGIMES = ("teacher_forcing", "self_forcing", "diffusion_forcing")


@dataclass(frozen=True)
class RegimeStep:
    """What one optimiser step trains with, as the family's `regime_loss` receives it."""

    name: str
    """teacher_forcing, self_forcing or diffusion_forcing"""
    context_noise: bool
    """GameNGen context noise augmentation on (where the family has it)"""
    rollout: int
    """self forcing: R, frames generated per window"""
    grad_steps: int
    """self forcing: generated frames whose graph is kept (truncated BPTT); 0 = none"""


class RegimeSchedule:
    """`train.regime*` of a TrainConfig: the regime of each step, the windows it needs, its loss."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.target = cfg.regime
        self.start = cfg.regime_from if cfg.regime_from is not None else cfg.regime

    @property
    def names(self) -> tuple[str, ...]:
        """The regimes this schedule can use, in order of first use."""
        return tuple(dict.fromkeys((self.start, self.target)))

    def probability(self, step: int) -> float:
        """The chance that step `step` (0-based) trains with `regime` rather than `regime_from`."""
        if self.start == self.target:
            return 1.0
        since = step - self.cfg.regime_switch_step
        if since < 0:
            return 0.0
        ramp = self.cfg.regime_ramp_steps
        return 1.0 if ramp <= 0 else min(1.0, (since + 1) / ramp)

    def at(self, step: int) -> RegimeStep:
        """The regime of step `step`: drawn from (seed, step) alone, so a resumed run draws the same."""
        p = self.probability(step)
        if p >= 1.0:
            name = self.target
        elif p <= 0.0:
            name = self.start
        else:
            u = np.random.default_rng([self.cfg.seed, step, 0x5E1F]).random()
            name = self.target if u < p else self.start
        return RegimeStep(name, bool(self.cfg.context_noise), int(self.cfg.rollout), int(self.cfg.rollout_grad_steps))

    def check(self, family, model_config) -> None:
        """PlayworldError before step 0 when the family cannot train some regime of the schedule."""
        for name in self.names:
            if name not in REGIMES:
                raise PlayworldError(f"unknown training regime {name!r}", f"choose one of {', '.join(REGIMES)}")
            family.check_regime(model_config, name)

    def future_length(self, family, model_config) -> int:
        """F of the training windows: the family's own, or R when the schedule self-forces."""
        f = family.future_length(model_config)
        return max(f, self.cfg.rollout) if "self_forcing" in self.names else f

    def loss(self, family, net, batch: Batch, model_config, step: int, generator):
        """The family's objective under this step's regime; logs say which regime it was."""
        regime = self.at(step)
        if regime.name != "self_forcing":  # other regimes train on the family's own window length
            batch = first_futures(batch, family.future_length(model_config))
        loss, logs = family.regime_loss(net, batch, model_config, step, generator, regime)
        if self.names != ("teacher_forcing",):
            logs = {**logs, **{f"regime_{name}": float(name == regime.name) for name in self.names}}
        return loss, logs


def first_futures(batch: Batch, f: int) -> Batch:
    """The batch with only its first `f` future frames (and their actions, rewards, terminations)."""
    if batch.future_frames.shape[1] <= f:
        return batch
    return Batch(**{
        fd.name: getattr(batch, fd.name)[:, :f] if fd.name.startswith(("future_", "memory_")) and getattr(batch, fd.name) is not None
        else getattr(batch, fd.name) for fd in fields(batch)
    })
