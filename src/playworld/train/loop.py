"""The training loop shared by every model family.

    result = train("runs/explorer", data="data/explorer", model="diffusion", preset="small", minutes=10)

It reaches a family only through the `Family` API (build, loss, world_model) and reads top to
bottom like the algorithm: set up the run, then repeat {batch -> loss -> backward -> clip -> AdamW
-> EMA}, logging, validating, writing media and checkpoints on schedule, until the step or time
budget runs out, Ctrl-C is pressed, or the loss stops being finite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from playworld.compute import budget_clock, precision_warning, resolve_precision
from playworld.data.windows import dataset_windows, make_loader
from playworld.errors import PlayworldError
from playworld.media import write_comparison
from playworld.models.rollout import rollout
from playworld.runs.checkpoints import build_from_checkpoint, load_training_state, weights_metadata
from playworld.train import distributed
from playworld.train.budget import TimeBudget, cooldown_factor
from playworld.train.checkpoint import drop_checkpoints_after, save_checkpoint
from playworld.train.logging import MetricsLog, progress_bar
from playworld.train.regimes import RegimeSchedule
from playworld.train.run import capture_rng, prepare_run, restore_rng, write_run_files
from playworld.train.validation import teacher_forced_psnr, validation_windows

# a step budget this large means "until the time budget ends": the bar counts steps open-ended
OPEN_ENDED_STEPS = 10**9


class TrainingDiverged(PlayworldError):
    """The loss or the gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    """optimiser steps done in total"""
    checkpoint: Path | None
    """the checkpoint saved last (None on ranks other than 0)"""
    reason: str
    """why training stopped: 'steps', 'time' or 'interrupted'"""
    val_psnr: float | None
    """the last teacher-forced validation PSNR (dB), None without a val split"""


def ema_decay_at(decay: float, warmup: bool, averaged: int) -> float:
    """The EMA decay of the update after `averaged` earlier ones: `decay`, or with `warmup` the smaller
    (1 + n) / (10 + n) while that is below it (diffusers' EMAModel warm-up), so the average forgets the
    random initial weights as fast as it gathers new ones. Without it a short run's EMA is mostly the
    start: at decay 0.995 the weights of step 0 still hold 0.995**340 = 18% of the EMA after 340 steps
    (what `small` trains in 10 CPU-minutes on 2 cores); with it 0.01%."""
    return min(decay, (1.0 + averaged) / (10.0 + averaged)) if warmup else decay


def ema_update(decay: float, warmup: bool):
    """AveragedModel's multi_avg_fn for `ema_decay_at` (torch's get_ema_multi_avg_fn has a fixed decay)."""

    @torch.no_grad()
    def update(ema_params, params, num_averaged) -> None:
        d = ema_decay_at(decay, warmup, int(num_averaged))
        if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, 1 - d)
        else:
            for p_ema, p in zip(ema_params, params, strict=True):
                p_ema.copy_(p_ema * d + p * (1 - d))

    return update


def train(
    out: str | Path, data: str | Path | None = None, model: str | None = None, preset: str | None = None,
    sets: list[str] | None = None, steps: int | None = None, minutes: float | None = None, resume: bool = False,
    device: str | None = None, progress: bool = True, checkpoint: str | int | None = None,
) -> TrainResult:
    """Train (or, with `resume`, continue) the run in `out`; `checkpoint` (a step) resumes from that checkpoint
    instead of the last and drops the ones after it. See `playworld train --help`."""
    started = {"wall": time.monotonic(), "cpu": time.process_time()}  # set-up counts against --minutes too
    d = distributed.setup(device)
    try:
        return _train(d, Path(out), data, model, preset, sets, steps, minutes, resume, progress, started, checkpoint)
    finally:
        distributed.cleanup(d)


def _train(d, run_dir, data, model, preset, sets, steps, minutes, resume, progress, started, checkpoint) -> TrainResult:
    plan = prepare_run(run_dir, data, model, preset, sets, steps, minutes, resume, checkpoint)
    family, mcfg, cfg, dataset, spec = plan.family, plan.model_config, plan.train_config, plan.dataset, plan.spec
    dev = d.device
    precision = resolve_precision(cfg.precision, dev)  # 'auto' decided here, on the device that trains
    warning = precision_warning(precision, dev)
    if warning and d.is_main:
        warnings.warn(warning, stacklevel=3)
    clock = budget_clock(cfg.budget_clock)
    budget = TimeBudget(cfg.minutes, clock, started[cfg.budget_clock], cfg.val_batches, cfg.media_horizon, cfg.batch_size)

    # -- the network, its EMA copy, the optimiser with linear warm-up ------------------------------
    torch.manual_seed(cfg.seed)
    net = family.build(mcfg, spec).to(dev)
    if cfg.init and plan.resume_from is None:  # --init: a new run starts from pretrained weights (a resume from its checkpoint)
        family.init_from(net, mcfg, spec, Path(cfg.init))
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise PlayworldError(f"model family {family.name} has no trainable parameters", "pick a trainable --model")
    ema = AveragedModel(net, multi_avg_fn=ema_update(cfg.ema_decay, cfg.ema_warmup), use_buffers=True)
    optimizer = AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.warmup_steps)
    scheduler = LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))

    step = 0
    if plan.resume_from is not None:  # weights, optimiser, scheduler, EMA, RNG: exactly as saved
        step = _restore(plan.resume_from, net, ema, optimizer, scheduler, cfg, dev)

    # the family's loss as one module, so DDP wraps the whole objective: however the loss uses the
    # network (forward or its parts), every parameter's gradient is all-reduced across ranks
    staged = family.skips_parameters(mcfg)
    regimes = RegimeSchedule(cfg)  # teacher / self / diffusion forcing and schedules (train/regimes.py)
    regimes.check(family, mcfg)
    objective = _Objective(family, torch.compile(net) if cfg.compile else net, mcfg, regimes)
    if d.enabled:
        objective = DistributedDataParallel(objective, device_ids=[dev.index] if dev.type == "cuda" else None,
                                            find_unused_parameters=staged)

    # -- the run directory explains itself before step 0 -------------------------------------------
    if d.is_main:
        if plan.resume_from is not None:  # resuming from an earlier checkpoint (--checkpoint): later ones go
            drop_checkpoints_after(run_dir, step)
        write_run_files(plan, d, step)
    k, f = spec.context, regimes.future_length(family, mcfg)
    batches = make_loader(dataset, k, f, cfg.batch_size, "train", cfg.seed, d.rank, d.world_size, cfg.num_workers, start=step,
                          memory=family.uses_memory(mcfg))
    log = MetricsLog(run_dir, resume_step=step) if d.is_main else None
    val_windows = validation_windows(dataset, k, cfg.val_batches * cfg.batch_size) if d.is_main else None
    meta = weights_metadata(family, mcfg, spec, step)
    saved_step, checkpoint, val_psnr = (step if plan.resume_from is not None else -1), plan.resume_from, None

    def save() -> None:
        nonlocal saved_step, checkpoint
        if d.is_main and saved_step != step:
            t0 = clock()
            state = _training_state(step, optimizer, scheduler, ema, cfg, d)
            checkpoint = save_checkpoint(run_dir, step, {**meta, "step": str(step)}, ema.module, net, state, cfg.keep_checkpoints)
            budget.measured("save", clock() - t0)
        saved_step = step

    done = {"val": -1, "media": -1}  # the step each was last done at, so the final pass does not repeat it

    def validate_and_media(final: bool) -> None:
        nonlocal val_psnr
        want_val = val_windows is not None and (final or (cfg.val_every and step % cfg.val_every == 0))
        want_media = final or (cfg.media_every and step % cfg.media_every == 0)
        want_val, want_media = want_val and done["val"] != step, want_media and done["media"] != step
        if not d.is_main or not (want_val or want_media):
            return
        # the EMA weights through the WorldModel interface; their own RNG, so training's is untouched
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            wm = family.world_model(ema.module, mcfg, spec)
            if want_val:
                t0 = clock()
                val_psnr, done["val"] = teacher_forced_psnr(wm, val_windows, cfg.batch_size, seed=cfg.seed), step
                log.write(step, "val", {"psnr": val_psnr})
                budget.measured("val", clock() - t0)
            if want_media:
                t0 = clock()
                _write_media(wm, dataset, k, cfg.media_horizon, run_dir / "media" / f"{step:08d}", seed=cfg.seed)
                done["media"] = step
                budget.measured("media", clock() - t0)

    # -- the loop ----------------------------------------------------------------------------------
    reason, first_step = "steps", step
    window = _Window()
    with progress_bar(progress and d.is_main) as bar, _StopOnSignal() as stop:
        # under a time budget the bar counts time (the step total then means little); else steps
        total = budget.seconds if budget.limited else (cfg.steps if cfg.steps < OPEN_ENDED_STEPS else None)
        task = bar.add_task("train", total=total, completed=budget.spent() if budget.limited else step, info="", where="")
        while step < cfg.steps:
            step_started = clock()
            try:
                batch = next(batches).to(dev, non_blocking=True)
            except RuntimeError:  # a loader worker killed by the same Ctrl-C
                if not stop.requested:
                    raise
                batch = None
            generator = torch.Generator(dev).manual_seed(_step_seed(cfg.seed, d.rank, step))
            loss = torch.tensor(float("nan"), device=dev)
            if batch is not None:
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss, logs = objective(batch, step, generator)
            out_of_time = budget.over()
            diverged, interrupted, out_of_time = distributed.any_rank(
                [not bool(torch.isfinite(loss.detach())), stop.requested, out_of_time], d
            )
            if interrupted or out_of_time:
                reason = "interrupted" if interrupted else "time"
                break
            if diverged:
                raise _diverged(run_dir, step, "loss", checkpoint)

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            if not bool(torch.isfinite(grad_norm)):
                raise _diverged(run_dir, step, "gradient norm", checkpoint)
            if cfg.lr_cooldown > 0:  # the warm-up's rate (the scheduler's) times the cool-down's factor
                by_steps = step / cfg.steps if cfg.steps < OPEN_ENDED_STEPS else 0.0
                factor = cooldown_factor(max(by_steps, budget.progress()), cfg.lr_cooldown)
                for group, rate in zip(optimizer.param_groups, scheduler.get_last_lr()):
                    group["lr"] = rate * factor
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            optimizer.step()
            scheduler.step()
            ema.update_parameters(net)
            if staged:  # parts a staged family froze are copied, not averaged: the EMA model's frozen
                for p_ema, p in zip(ema.module.parameters(), net.parameters()):  # part is the one the rest trained on
                    if not p.requires_grad:
                        p_ema.detach().copy_(p.detach())
            step += 1

            budget.step_took(clock() - step_started)
            window.add(float(loss.detach()), float(grad_norm), logs, cfg.batch_size * d.world_size)
            if budget.limited:
                where = f"step {step}  {budget.spent() / 60:.1f} of {cfg.minutes:g} min ({cfg.budget_clock})"
                bar.update(task, completed=min(budget.spent(), budget.seconds), info=window.describe(), where=where)
            else:
                bar.update(task, completed=step, info=window.describe(), where=f"step {step}")
            if d.is_main and step % cfg.log_every == 0:
                log.write(step, "train", {**window.means(), "lr": lr})
                window = _Window()
            validate_and_media(final=False)
            if step % cfg.ckpt_every == 0:
                save()

    # -- always end with validation, media and a checkpoint of where we stopped ---------------------
    if step > first_step or plan.resume_from is None:  # (a resume with nothing left to do repeats nothing)
        validate_and_media(final=True)
    save()
    if log is not None:
        log.write(step, "end", {"reason": reason, "minutes": budget.spent() / 60, "clock": cfg.budget_clock})
        log.close()
    return TrainResult(run_dir, step, checkpoint if d.is_main else None, reason, val_psnr)


# -- pieces of the loop --------------------------------------------------------------------------


class _Objective(torch.nn.Module):
    """The family's loss under the step's regime, as a module whose parameters are the net's."""

    def __init__(self, family, net: torch.nn.Module, config, regimes: RegimeSchedule):
        super().__init__()
        self.net, self.family, self.config, self.regimes = net, family, config, regimes

    def forward(self, batch, step: int, generator: torch.Generator):
        return self.regimes.loss(self.family, self.net, batch, self.config, step, generator)


def _step_seed(seed: int, rank: int, step: int) -> int:
    """The loss's noise seed for one step of one rank: resuming at `step` redraws the same noise."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)


def _training_state(step, optimizer, scheduler, ema, cfg, d) -> dict:
    """Everything beside the weights that `--resume` needs, as tensors and plain Python values."""
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "ema_n_averaged": ema.n_averaged.detach().cpu(),
        "rng": capture_rng(d.device),
        # batch i of a rank is a function of (seed, rank, world_size, batch_size, i): see train/batches.py
        "loader": {"next_batch": step, "seed": cfg.seed, "world_size": d.world_size, "batch_size": cfg.batch_size},
    }


def _restore(ckpt: Path, net, ema, optimizer, scheduler, cfg, dev) -> int:
    _, _, _, raw, _ = build_from_checkpoint(ckpt, "raw")
    net.load_state_dict(raw.state_dict())
    _, _, _, averaged, _ = build_from_checkpoint(ckpt, "model")
    ema.module.load_state_dict(averaged.state_dict())
    state = load_training_state(ckpt)
    loader = state["loader"]
    if (loader["world_size"], loader["batch_size"]) != (int(os.environ.get("WORLD_SIZE", "1")), cfg.batch_size):
        warnings.warn(
            f"resuming with world size/batch size {os.environ.get('WORLD_SIZE', '1')}/{cfg.batch_size}, the checkpoint "
            f"was written with {loader['world_size']}/{loader['batch_size']}: training goes on, but not with the "
            "batches the straight run would have seen", stacklevel=2,
        )
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scheduler.base_lrs = [cfg.lr] * len(scheduler.base_lrs)  # `--set train.lr=...` may change it on resume
    for group, schedule in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["lr"] = cfg.lr * schedule(scheduler.last_epoch)
        group["initial_lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
    ema.n_averaged.copy_(state["ema_n_averaged"].to(dev))
    restore_rng(state["rng"], dev)
    return int(state["step"])


def _write_media(wm, dataset, context: int, horizon: int, folder: Path, seed: int) -> None:
    """media/<step>/rollout.mp4: the real world (left) beside the model (right), a few val episodes."""
    split = "val" if dataset.episode_ids("val") else "train"
    try:
        windows = dataset_windows(dataset, context, horizon, episodes=4, split=split, seed=seed)
    except PlayworldError:
        return  # no episode long enough for a rollout: nothing to show
    generated = rollout(wm, windows, horizon, seed=seed)
    write_comparison(generated, windows.future_frames, folder / "rollout.mp4", fps=dataset.fps)


def _diverged(run_dir: Path, step: int, what: str, checkpoint: Path | None) -> TrainingDiverged:
    remedy = "lower train.lr (--set train.lr=...), keep train.grad_clip > 0 or use precision fp32"
    if checkpoint is None:  # nothing to resume: the same command again, with the remedy
        return TrainingDiverged(
            f"training stopped at step {step}: the {what} is NaN or infinite; no checkpoint had been saved yet",
            f"{remedy}, and run the same `playworld train ... --out {run_dir}` command again (without --resume)",
        )
    return TrainingDiverged(
        f"training stopped at step {step}: the {what} is NaN or infinite; the last good checkpoint is {checkpoint}",
        f"{remedy}, then `playworld train --out {run_dir} --resume`",
    )


class _Window:
    """Running means of the logged values since the last log line, and samples/s."""

    def __init__(self):
        self.start, self.n, self.samples, self.sums = time.monotonic(), 0, 0, {}

    def add(self, loss: float, grad_norm: float, logs: dict, samples: int) -> None:
        self.n += 1
        self.samples += samples
        for key, v in {**logs, "loss": loss, "grad_norm": grad_norm}.items():
            if isinstance(v, (int, float)):
                self.sums[key] = self.sums.get(key, 0.0) + float(v)

    def means(self) -> dict[str, float]:
        out = {k: v / max(1, self.n) for k, v in self.sums.items()}
        out["samples_per_s"] = self.samples / max(1e-9, time.monotonic() - self.start)
        return out

    def describe(self) -> str:
        m = self.means()
        return f"loss {m.get('loss', float('nan')):.4f}  {m['samples_per_s']:.0f} samples/s"


class _StopOnSignal(contextlib.AbstractContextManager):
    """The first Ctrl-C (or SIGTERM) asks the loop to stop after the current step and save; a second
    Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested, self._old = False, {}

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: no signal handling
            pass
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
