"""`playworld quickstart`: the main job on the built-in default world, in about ten minutes on a laptop.

1. collect the default explorer dataset (if absent) and verify it;
2. train the `small` diffusion world model within what is left of the time budget;
3. write rollout videos (the real world left, the model right, labelled) into the run;
4. print the next commands (eval, play) with the run's path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from playworld.cli.common import threads_option, use_threads
from playworld.errors import PlayworldError

DEFAULT_WORLD = "explorer"
DEFAULT_EPISODES = 100
DEFAULT_STEPS = 200
DEFAULT_MINUTES = 10.0
RESERVE_MINUTES = 0.75
"""time kept back from training for the final validation, checkpoint and rollout videos"""


def ensure_dataset(data: Path, episodes: int, steps: int, seed: int):
    """The default explorer dataset at `data`, collected if absent, verified either way."""
    from playworld.data.collect import collect
    from playworld.data.store import Dataset

    if (data / "manifest.json").exists():
        ds = Dataset(data)
        if ds.world != DEFAULT_WORLD:
            raise PlayworldError(f"{data} holds {ds.world}, not the {DEFAULT_WORLD} dataset", "pass another --data directory")
        typer.echo(f"dataset {data} is already there ({len(ds)} episodes); verifying it")
    else:
        typer.echo(f"collecting {episodes} {DEFAULT_WORLD} episodes x {steps} steps into {data}")
        ds = collect(DEFAULT_WORLD, data, episodes, policy="explore", seed=seed, steps=steps)
    problems = ds.verify(progress=True)
    if problems:
        raise PlayworldError(f"{data}: {problems[0]}", f"delete {data} and run `playworld quickstart` again")
    typer.echo(f"ok: {data} verifies: {len(ds)} episodes, {ds.num_frames} frames at {ds.resolution}x{ds.resolution}")
    return ds


def quickstart_cmd(
    data: Path = typer.Option(Path("data/explorer"), "--data", help="Where the default dataset lives (collected if absent)."),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run directory for the trained model (reused if already trained)."),
    minutes: float = typer.Option(DEFAULT_MINUTES, "--minutes", help="Total time budget in minutes: collection + training + videos."),
    preset: str = typer.Option("small", "--preset", help="Training preset: small (CPU minutes), debug (seconds), base (GPU)."),
    episodes: int = typer.Option(DEFAULT_EPISODES, "--episodes", help="Episodes to collect when the dataset is absent."),
    steps: int = typer.Option(DEFAULT_STEPS, "--steps", help="Steps per collected episode."),
    seed: int = typer.Option(0, "--seed", help="Collection seed."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    play: bool = typer.Option(False, "--play", help="At the end, serve the trained model in the browser "
                              "(`playworld play` on http://127.0.0.1:8765; Ctrl-C stops)."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Collect the explorer dataset, train the small diffusion world model, write rollout videos, show what is next."""
    from playworld.runs.checkpoints import list_checkpoints
    from playworld.train.loop import train

    started = time.monotonic()
    use_threads(threads)
    if minutes <= 0:
        raise PlayworldError(f"--minutes must be positive, got {minutes}", "pass e.g. --minutes 10")
    ds = ensure_dataset(data, episodes, steps, seed)

    # -- train within what is left of the budget ----------------------------------------------------
    if list_checkpoints(out):
        typer.echo(f"{out} is already trained; using it (delete it, or pass another --out, to train again)")
    else:
        left = minutes - (time.monotonic() - started) / 60 - RESERVE_MINUTES
        if left < 0.1:
            raise PlayworldError(
                f"no time left to train within --minutes {minutes} after collecting the dataset",
                "pass a larger --minutes (the dataset is kept, so the next run skips collection)",
            )
        typer.echo(f"training the {preset} diffusion model for up to {left:.1f} minutes into {out} (Ctrl-C stops and saves)")
        result = train(out, data=data, model="diffusion", preset=preset, minutes=left, device=device, progress=True)
        psnr = f", teacher-forced val PSNR {result.val_psnr:.2f} dB" if result.val_psnr is not None else ""
        typer.echo(f"trained {result.step} steps{psnr}")
        if result.reason == "interrupted":
            typer.echo(f"interrupted; continue with: playworld train --out {out} --resume")
            raise typer.Exit(130)

    # -- rollout videos: the real world beside the model ------------------------------------------
    videos = rollout_videos(out, ds, seed, device or "cpu")
    typer.echo(f"rollouts (left: real, right: model): {videos[0]}  {videos[1]}")
    typer.echo(f"done in {(time.monotonic() - started) / 60:.1f} minutes")
    typer.echo("")
    typer.echo("next:")
    typer.echo(f"  playworld eval {out} --data {data}        # measure it: fidelity, consistency, agency")
    typer.echo(f"  playworld play {out}                       # play the learned world in the browser")
    typer.echo(f"  playworld rollout {out} --data {data} --horizon 64 --out {out}/rollout64.mp4")
    typer.echo(f"  playworld train --out {out} --resume --minutes 30   # train it longer")
    if play:
        from playworld.play import play as play_run

        typer.echo("")
        play_run(str(out), device=device or "auto")


def rollout_videos(run: Path, ds, seed: int, device: str) -> list[Path]:
    """RUN/rollouts/rollout.{mp4,gif}: 32-frame rollouts of 4 val episodes. Training already wrote this
    video for its last checkpoint (media/<step>/rollout.mp4, same windows and seed), so reuse it."""
    import shutil

    from playworld.data.windows import dataset_windows
    from playworld.media import read_video, split_comparison, write_comparison
    from playworld.models.rollout import rollout
    from playworld.runs.checkpoints import resolve_checkpoint
    from playworld.runs.load import load_world_model

    folder = run / "rollouts"
    folder.mkdir(parents=True, exist_ok=True)
    made = run / "media" / resolve_checkpoint(run).name / "rollout.mp4"
    if made.is_file():
        shutil.copyfile(made, folder / "rollout.mp4")
        # the GIF re-drawn from the mp4's frames at GIF scale (a GIF of the mp4's 256 px rows weighed megabytes)
        write_comparison(*split_comparison(read_video(made)[0], ds.resolution), folder / "rollout.gif", fps=ds.fps)
        return [folder / "rollout.mp4", folder / "rollout.gif"]
    model = load_world_model(run, device=device)
    windows = dataset_windows(ds, model.spec.context, horizon=32, episodes=4, split="val", seed=seed)
    generated = rollout(model, windows, horizon=32, seed=seed)
    return [write_comparison(generated, windows.future_frames, folder / f"rollout{s}", fps=ds.fps) for s in (".mp4", ".gif")]


def register(app: typer.Typer) -> None:
    app.command("quickstart", rich_help_panel="0. Start here")(quickstart_cmd)
