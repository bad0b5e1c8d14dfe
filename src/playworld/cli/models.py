"""`playworld train` and `playworld rollout`: fit a model family to a dataset, then watch it dream."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from playworld.cli.common import family_names, threads_option, use_threads
from playworld.errors import PlayworldError


def train_cmd(
    out: Path = typer.Option(..., "--out", help="Run directory to write (config, checkpoints, metrics, media), e.g. runs/explorer."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset to train on (a `playworld collect` folder). On --resume, defaults to the run's."),
    model: Optional[str] = typer.Option(None, "--model", help=f"Model family to train: {', '.join(family_names())} (default: diffusion)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Preset: debug (seconds), small (CPU minutes; the default), base (GPU), or a .yaml file."),
    minutes: Optional[float] = typer.Option(None, "--minutes", help="Stop after this many minutes, above 0 (whichever of --minutes/--steps comes first); wall-clock, or CPU time of this process with --set train.budget_clock=cpu. Leave it out for no time limit."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Stop after this many optimiser steps in total (alone, without --minutes, it replaces the preset's time budget)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint, exactly where it stopped."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", metavar="STEP", help="With --resume: continue from this saved step instead of the last (the checkpoints after it are deleted)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override one option, e.g. --set train.lr=3e-4 --set model.steps=2 --set model.context=8 (repeatable; every option: docs/configuration.md)."),
    init: Optional[Path] = typer.Option(
        None, "--init", metavar="PATH",
        help="Start from pretrained weights in this local folder, written by diffusers' save_pretrained (clip: a "
             "LatteTransformer3DModel, or a pipeline folder with transformer/; diffusion: a UNet2DModel, or a pipeline "
             "folder with unet/); the new action and context inputs start at zero, so step 0 is the pretrained model. "
             "Nothing is downloaded. Same as --set train.init=PATH."),
    regime: Optional[str] = typer.Option(
        None, "--regime",
        help="Training regime against drift: teacher_forcing (default), self_forcing or diffusion_forcing "
             "(same as --set train.regime=...; their settings and schedules: docs/configuration.md)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available). Under torchrun each rank takes its own GPU."),
    threads: Optional[int] = threads_option(),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train a world model on a dataset; Ctrl-C saves a checkpoint, --resume continues it.

    Multi-process (DDP): torchrun --nproc_per_node=N $(which playworld) train ...
    """
    import os

    from playworld.train.loop import train

    if minutes is not None and not 0 < minutes < float("inf"):  # (0 would silently mean "no limit")
        raise PlayworldError(f"--minutes {minutes:g} is not a time budget",
                             "pass a number of minutes above 0, or leave --minutes out for no time limit")
    use_threads(threads)
    if regime is not None:
        sets = [*(sets or []), f"train.regime={regime}"]
    if init is not None:
        if resume:
            raise PlayworldError("--init starts a new run from pretrained weights; --resume continues a run from its checkpoint",
                                 "drop --init to resume, or drop --resume and pass a new --out")
        sets = [*(sets or []), f"train.init={init.resolve()}"]
    result = train(out, data=data, model=model, preset=preset, sets=sets, steps=steps, minutes=minutes,
                   resume=resume, device=device, progress=progress, checkpoint=checkpoint)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    why = {"steps": "step budget reached", "time": "time budget reached", "interrupted": "interrupted"}[result.reason]
    psnr = f"; val PSNR {result.val_psnr:.2f} dB (teacher-forced, EMA)" if result.val_psnr is not None else ""
    typer.echo(f"{why} at step {result.step}{psnr}")
    typer.echo(f"checkpoint: {result.checkpoint}")
    if result.reason == "interrupted":
        typer.echo(f"continue with: playworld train --out {out} --resume")
        raise typer.Exit(130)
    data_arg = f" --data {data}" if data else ""
    typer.echo(f"next: playworld rollout {out}{data_arg} --out {out}/rollout.mp4")


def rollout_cmd(
    run: Path = typer.Argument(..., help="Run directory written by `playworld train`."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset to take real contexts and actions from (default: the run's)."),
    horizon: int = typer.Option(64, "--horizon", help="Frames to generate after the context."),
    out: Optional[Path] = typer.Option(None, "--out", help="Video to write: .mp4, .webm or .gif (default: RUN/rollout.mp4)."),
    episodes: int = typer.Option(4, "--episodes", help="Rollouts to show, one row each."),
    seed: int = typer.Option(0, "--seed", help="Seed for the choice of windows and the sampler."),
    split: str = typer.Option("val", "--split", help="Dataset split to take contexts from: train, val or test."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Checkpoint step to load (default: the last)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Generate frames autoregressively from real contexts with the real actions; the real world (left) beside the model (right)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from playworld.data.windows import dataset_windows
    from playworld.media import write_comparison
    from playworld.models.rollout import rollout
    from playworld.runs.checkpoints import check_run_dir
    from playworld.runs.files import read_run_config
    from playworld.runs.load import check_dataset_matches, load_world_model, open_dataset
    from playworld.train.distributed import pick_device

    check_run_dir(run)
    use_threads(threads)
    out = out or run / "rollout.mp4"
    if out.suffix.lower() not in (".mp4", ".webm", ".gif"):
        raise PlayworldError(f"cannot write {out}: unknown video suffix {out.suffix!r}", "use .mp4, .webm or .gif")
    if horizon < 1 or episodes < 1:
        raise PlayworldError("--horizon and --episodes must be at least 1", "pass e.g. --horizon 64 --episodes 4")
    if data is None:
        config = read_run_config(run)
        if config is None:
            raise PlayworldError(f"{run} has no config.yaml naming its dataset", "pass --data DATA")
        data = Path(config["data"])
    model = load_world_model(run, device=pick_device(device), checkpoint=checkpoint)
    dataset = open_dataset(data)
    check_dataset_matches(model.spec, dataset, f"run {run}")
    windows = dataset_windows(dataset, model.spec.context, horizon, episodes, split, seed)
    if windows.future_frames.shape[1] < horizon:
        typer.echo(f"note: horizon shortened to {windows.future_frames.shape[1]} frames (the episodes are not longer)")
    with Progress(TextColumn("rollout"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("rollout", total=min(horizon, windows.future_frames.shape[1]))
        generated = rollout(model, windows, horizon, seed=seed, on_step=lambda done, total: bar.update(task, completed=done))
    write_comparison(generated, windows.future_frames, out, fps=dataset.fps)
    typer.echo(f"wrote {out}: {generated.shape[0]} rollouts x {generated.shape[1]} frames (left: real, right: model)")


def register(app: typer.Typer) -> None:
    app.command("train", rich_help_panel="2. Models")(train_cmd)
    app.command("rollout", rich_help_panel="2. Models")(rollout_cmd)
