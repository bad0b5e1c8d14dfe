"""Training configuration: the `TrainConfig` dataclass and the resolved run configuration.

A run's configuration has four parts, written to `runs/<name>/config.yaml` before step 0:

    data: data/explorer            # the dataset it was trained on
    context: 4                     # K, the context length (the WorldSpec's)
    model: {diffusion: {...}}      # the family's Config, every field resolved
    train: {...}                   # TrainConfig, every field resolved

Presets (runs/presets.py) hold the same sections with only the fields they change (and, under `train:`,
a mapping per family for what only that family trains with). Command-line
overrides (`--set train.lr=3e-4`, `--set model.channels=32`, `--set model.context=8`) are parsed
by the type of the dataclass field they name (playworld.options), never by eval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

from playworld.errors import PlayworldError
from playworld.models.registry import get_family
from playworld.options import coerce_fields, config_to_dict


@dataclass
class TrainConfig:
    batch_size: int = 32
    """examples per optimiser step on each process (the global batch is this times the world size)"""
    lr: float = 3e-4
    """peak AdamW learning rate, reached at the end of warm-up and then held"""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay"""
    warmup_steps: int = 100
    """steps of linear learning-rate warm-up from 0 to `lr`"""
    lr_cooldown: float = 0.0
    """the last share of the run (0 to 1) over which the learning rate falls linearly from `lr` to 0
    (warmup-stable-decay, as in Hägele et al. 2024: a short cool-down at the end of a budget reaches the loss of
    a schedule planned for it); the run's end is the nearer of `steps` and the `minutes` budget, counted in
    this invocation's clock (a resumed run cools down again at its own end); 0: the rate is held to the end"""
    steps: int = 10_000
    """stop after this many optimiser steps in total (counting steps done before a resume)"""
    minutes: float = 0.0
    """also stop after this many minutes of this invocation (0 = no time budget), on `budget_clock`"""
    budget_clock: Literal["wall", "cpu"] = "wall"
    """what `minutes` counts: 'wall' (elapsed time) or 'cpu' (this process's CPU time, so runs sharing a
    busy machine still get equal compute; the regimes experiment uses it)"""
    ema_decay: float = 0.999
    """decay of the exponential moving average of the weights; the EMA weights are what `load` returns"""
    ema_warmup: bool = True
    """use the decay min(ema_decay, (1 + n) / (10 + n)) at the n-th update, so short runs' EMA is not held back by
    the initial weights (train/loop.py ema_decay_at); false: ema_decay from the first update"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value (0 = no clipping)"""
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """'bf16' runs forward and loss under bfloat16 autocast (weights and optimiser stay fp32); 'auto': bf16 where
    the device computes it natively (AVX-512 BF16 / AMX CPUs, bf16 GPUs), fp32 elsewhere (compute.resolve_precision)"""
    compile: bool = False
    """wrap the network in torch.compile for training"""
    seed: int = 0
    """seeds the weights, the batch order and the loss's noise; a run is reproducible from it"""
    log_every: int = 10
    """write a line to metrics.jsonl every this many steps"""
    val_every: int = 500
    """compute validation PSNR every this many steps (0 = only at the end)"""
    val_batches: int = 4
    """number of validation batches (of `batch_size` windows from the val split) per validation"""
    media_every: int = 1000
    """write a rollout video under media/<step>/ every this many steps (0 = only at the end)"""
    media_horizon: int = 32
    """number of generated frames in each media rollout"""
    ckpt_every: int = 1000
    """save a checkpoint every this many steps (a final one is always saved)"""
    keep_checkpoints: int = 3
    """keep only this many newest periodic checkpoints (0 = keep all)"""
    num_workers: int = 0
    """background worker processes loading training batches (0 = load in the training process)"""
    init: Optional[str] = None
    """a local folder of pretrained weights (diffusers' save_pretrained) a new run's network starts from, with the
    inputs the pretrained model lacks zeroed (`playworld train --init PATH`; families that can: clip); unused on resume"""

    # -- training regime against exposure bias (train/regimes.py) ------------------------------
    regime: Literal["teacher_forcing", "self_forcing", "diffusion_forcing"] = "teacher_forcing"
    """'teacher_forcing': predict each frame from real context (the baseline); 'self_forcing': roll the
    model out on its own few-step samples for `rollout` frames and put the loss on every rolled-out
    frame (Huang et al. 2025); 'diffusion_forcing': an independent noise level per context frame,
    given to the network (Chen et al. 2024; diffusion needs model.frame_noise_levels=true)"""
    context_noise: bool = True
    """GameNGen context noise augmentation where the family has it (diffusion: context noised at a level
    drawn from U[0, model.context_noise_max], and first blurred by up to model.context_blur_max pixels); false
    trains on clean context"""
    rollout: int = 4
    """self forcing: R, the frames the model generates per training window (windows hold R future frames)"""
    rollout_grad_steps: int = 0
    """self forcing: keep the gradient through the last this many generated frames (truncated backprop
    through time); 0 = through each loss step's own network call only"""
    regime_from: Optional[Literal["teacher_forcing", "self_forcing", "diffusion_forcing"]] = None
    """schedule: the regime trained before `regime_switch_step` (none = `regime` throughout)"""
    regime_switch_step: int = 0
    """schedule: the step at which training starts to move from `regime_from` to `regime`"""
    regime_ramp_steps: int = 0
    """schedule: the chance that a step uses `regime` rises linearly from 0 to 1 over this many steps after
    the switch step (0 = switch at once)"""


def make_train_config(
    preset: dict[str, Any] | None = None, sets: dict[str, str] | None = None, family: str | None = None
) -> TrainConfig:
    """TrainConfig defaults <- the preset's `train:` section <- its `train.<family>:` section for `family` (what
    only that family trains with, e.g. a regime the others cannot train) <- command-line overrides."""
    section = dict((preset or {}).get("train") or {})
    by_family = {name: section.pop(name) for name in list(section) if isinstance(section[name], dict)}
    for name in by_family:
        get_family(name)  # a section for a family that does not exist is an error naming it, never ignored
    values = coerce_fields(TrainConfig, section, "train")
    if family in by_family:
        values.update(coerce_fields(TrainConfig, dict(by_family[family]), f"train.{family}"))
    values.update(coerce_fields(TrainConfig, dict(sets or {}), "train"))
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    positive = ("batch_size", "log_every", "val_batches", "ckpt_every", "media_horizon")
    for name in positive:
        if getattr(cfg, name) < 1:
            raise PlayworldError(f"train.{name} must be >= 1, got {getattr(cfg, name)}", f"set train.{name} to 1 or more")
    nonneg = ("lr", "weight_decay", "warmup_steps", "steps", "minutes", "grad_clip", "val_every",
              "media_every", "keep_checkpoints", "num_workers", "rollout_grad_steps", "regime_switch_step",
              "regime_ramp_steps")
    for name in nonneg:
        if getattr(cfg, name) < 0:
            raise PlayworldError(f"train.{name} must be >= 0, got {getattr(cfg, name)}", f"set train.{name} to 0 or more")
    if not 0.0 <= cfg.lr_cooldown <= 1.0:
        raise PlayworldError(f"train.lr_cooldown must be within [0, 1], got {cfg.lr_cooldown}",
                             "set train.lr_cooldown to the share of the run to cool down over, e.g. 0.2 (0: off)")
    if cfg.rollout < 1:
        raise PlayworldError(f"train.rollout must be >= 1, got {cfg.rollout}", "set train.rollout to e.g. 4")
    if cfg.rollout_grad_steps >= cfg.rollout:
        raise PlayworldError(
            f"train.rollout_grad_steps ({cfg.rollout_grad_steps}) must be below train.rollout ({cfg.rollout})",
            f"set train.rollout_grad_steps to at most {cfg.rollout - 1}",
        )
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise PlayworldError(f"train.ema_decay must be in [0, 1), got {cfg.ema_decay}", "use e.g. 0.999")


def run_config_dict(data: str, context: int, family_name: str, model_cfg: Any, train_cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config written to runs/<name>/config.yaml."""
    return {"data": str(data), "context": int(context), "model": {family_name: config_to_dict(model_cfg)},
            "train": config_to_dict(train_cfg)}
