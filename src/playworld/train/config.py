"""Training configuration: the `TrainConfig` dataclass, presets, and `--set key=value` overrides.

A run's configuration has three parts, written to `runs/<name>/config.yaml` before step 0:

    data: data/explorer            # the dataset it was trained on
    model: {diffusion: {...}}      # the family's Config, every field resolved
    train: {...}                   # TrainConfig, every field resolved

Presets (`configs/{debug,small,base}.yaml` in the package) hold the same `model:` and `train:`
sections with only the fields they change. Command-line overrides (`--set train.lr=3e-4`,
`--set model.channels=32`) are parsed by the type of the dataclass field they name, never by eval.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import yaml

from playworld.errors import PlayworldError

PRESETS = ("debug", "small", "base")


def budget_clock(name: str) -> Callable[[], float]:
    """The clock a time budget counts on: 'wall' (elapsed seconds) or 'cpu' (this process's CPU seconds)."""
    if name not in ("wall", "cpu"):
        raise PlayworldError(f"unknown budget clock {name!r}", "use 'wall' or 'cpu'")
    return time.process_time if name == "cpu" else time.monotonic


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
    steps: int = 10_000
    """stop after this many optimiser steps in total (counting steps done before a resume)"""
    minutes: float = 0.0
    """also stop after this many minutes of this invocation (0 = no time budget), on `budget_clock`"""
    budget_clock: Literal["wall", "cpu"] = "wall"
    """what `minutes` counts: 'wall' (elapsed time) or 'cpu' (this process's CPU time, so runs sharing a
    busy machine still get equal compute; the regimes experiment uses it)"""
    ema_decay: float = 0.999
    """decay of the exponential moving average of the weights; the EMA weights are what `load` returns"""
    grad_clip: float = 1.0
    """clip the global gradient norm to this value (0 = no clipping)"""
    precision: Literal["fp32", "bf16"] = "fp32"
    """'bf16' runs forward and loss under bfloat16 autocast (weights and optimiser stay fp32)"""
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

    # -- training regime against exposure bias (train/regimes.py) ------------------------------
    regime: Literal["teacher_forcing", "self_forcing", "diffusion_forcing"] = "teacher_forcing"
    """'teacher_forcing': predict each frame from real context (the baseline); 'self_forcing': roll the
    model out on its own few-step samples for `rollout` frames and put the loss on every rolled-out
    frame (Huang et al. 2025); 'diffusion_forcing': an independent noise level per context frame,
    given to the network (Chen et al. 2024; diffusion needs model.frame_noise_levels=true)"""
    context_noise: bool = True
    """GameNGen context noise augmentation where the family has it (diffusion: context noised at a level
    drawn from U[0, model.context_noise_max]); false trains on clean context"""
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


# -- typed parsing ----------------------------------------------------------------------------------


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Optional[X] / X | None -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, name: str) -> Any:
    """Turn `value` (a command-line string or a YAML scalar/list) into the field type `tp`.

    Handles int, float, bool, str, Literal[...], Optional[...], tuple[X, ...] and list[X].
    Raises PlayworldError naming the field when the value does not fit.
    """
    tp, optional = _strip_optional(tp)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
        return None
    bad = PlayworldError(f"bad value {value!r} for {name}", f"{name} takes a {_type_name(tp)}")
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            if str(value) == str(choice):
                return choice
        raise PlayworldError(f"bad value {value!r} for {name}", f"choose one of {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("[]()")
            items = [s.strip() for s in text.split(",") if s.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise bad
        args = typing.get_args(tp)
        item_tp = args[0] if args else str
        out = [coerce(v, item_tp, name) for v in items]
        return tuple(out) if origin is tuple else out
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise bad
    if tp in (int, float, str):
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise bad
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise bad from None
    return value  # a type we do not know how to parse: pass YAML values through unchanged


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce_fields(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """Coerce every entry of `values` to the type of the same-named field of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PlayworldError(
            f"unknown {section} option(s): {', '.join(unknown)}", f"known options are {', '.join(sorted(known))}"
        )
    return {k: coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}


def parse_sets(sets: list[str] | None) -> dict[str, dict[str, str]]:
    """['train.lr=3e-4', 'model.channels=32'] -> {'train': {'lr': '3e-4'}, 'model': {'channels': '32'}}.

    `model.<family>.<field>=v` is accepted too and means the same as `model.<field>=v`.
    """
    out: dict[str, dict[str, str]] = {"train": {}, "model": {}}
    for item in sets or []:
        key, sep, value = item.partition("=")
        section, _, field = key.strip().partition(".")
        if not sep or section not in out or not field:
            raise PlayworldError(
                f"cannot parse --set {item!r}", "write --set train.<field>=<value> or --set model.<field>=<value>"
            )
        out[section][field.rsplit(".", 1)[-1]] = value.strip()
    return out


# -- presets ----------------------------------------------------------------------------------------


def load_preset(name: str) -> dict[str, Any]:
    """The preset `name` (debug, small, base) or a YAML file path -> {'model': {...}, 'train': {...}}."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise PlayworldError(f"preset file {path} does not exist", "check the path")
        text = path.read_text()
    elif name in PRESETS:
        text = (Path(__file__).resolve().parent.parent / "configs" / f"{name}.yaml").read_text()
    else:
        raise PlayworldError(f"unknown preset {name!r}", f"choose one of {', '.join(PRESETS)} or pass a .yaml file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise PlayworldError(f"preset {name} is not valid YAML: {e}", "fix the file") from None
    if not isinstance(data, dict):
        raise PlayworldError(f"preset {name} must be a mapping with model: and train: keys", "fix the file")
    return {"model": dict(data.get("model") or {}), "train": dict(data.get("train") or {})}


def make_train_config(preset: dict[str, Any] | None = None, sets: dict[str, str] | None = None) -> TrainConfig:
    """TrainConfig defaults <- the preset's `train:` section <- command-line overrides."""
    values = coerce_fields(TrainConfig, dict((preset or {}).get("train") or {}), "train")
    values.update(coerce_fields(TrainConfig, dict(sets or {}), "train"))
    cfg = TrainConfig(**values)
    validate(cfg)
    return cfg


def make_model_config(family, preset: dict[str, Any] | None = None, sets: dict[str, str] | None = None) -> Any:
    """The family's Config <- the preset's `model.<family>:` section <- command-line overrides."""
    section = f"model.{family.name}"
    from_preset = dict(((preset or {}).get("model") or {}).get(family.name) or {})
    values = coerce_fields(family.Config, from_preset, section)
    values.update(coerce_fields(family.Config, dict(sets or {}), section))
    return family.make_config(values)


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
    if cfg.rollout < 1:
        raise PlayworldError(f"train.rollout must be >= 1, got {cfg.rollout}", "set train.rollout to e.g. 4")
    if cfg.rollout_grad_steps >= cfg.rollout:
        raise PlayworldError(
            f"train.rollout_grad_steps ({cfg.rollout_grad_steps}) must be below train.rollout ({cfg.rollout})",
            f"set train.rollout_grad_steps to at most {cfg.rollout - 1}",
        )
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise PlayworldError(f"train.ema_decay must be in [0, 1), got {cfg.ema_decay}", "use e.g. 0.999")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass -> plain YAML-friendly dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def run_config_dict(data: str, family_name: str, model_cfg: Any, train_cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config written to runs/<name>/config.yaml."""
    return {"data": str(data), "model": {family_name: config_to_dict(model_cfg)}, "train": config_to_dict(train_cfg)}
