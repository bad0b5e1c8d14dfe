"""`playworld experiment regimes`: the same model trained under each training regime, compared on drift."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    experiment = typer.Typer(help="Controlled experiments that train several runs and compare them.", no_args_is_help=True)
    app.add_typer(experiment, name="experiment", rich_help_panel="2. Models")

    @experiment.command("regimes")
    def regimes(
        out: Path = typer.Option(Path("runs/regimes"), "--out", help="Folder for the datasets, the runs and the report (regimes.json/.md/.png)."),
        minutes: float = typer.Option(10.0, "--minutes", help="Training budget of every run in CPU minutes of its process (equal compute per regime, even on a busy machine)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Also stop every run after this many optimiser steps."),
        preset: str = typer.Option("small", "--preset", help="Preset of the diffusion model: debug, small or a .yaml file."),
        worlds: List[str] = typer.Option(["explorer", "physics/parabola"], "--world", help="Worlds to compare on (repeatable)."),
        variants: Optional[List[str]] = typer.Option(None, "--variant", help="Regime variants (repeatable; default all): teacher_forcing, context_noise, self_forcing, diffusion_forcing, teacher_then_self."),
        episodes: int = typer.Option(200, "--episodes", help="Episodes collected per world."),
        episode_steps: int = typer.Option(200, "--episode-steps", help="Steps per explorer episode (physics clips have their own length)."),
        resolution: int = typer.Option(64, "--resolution", help="Frame size of the collected datasets."),
        horizon: int = typer.Option(64, "--horizon", help="Autoregressive steps measured (shortened to the episodes' length)."),
        eval_episodes: int = typer.Option(16, "--eval-episodes", help="Test rollouts per run."),
        rollout: int = typer.Option(4, "--rollout", help="Self forcing: frames rolled out per training window (train.rollout)."),
        threshold: float = typer.Option(20.0, "--threshold", help="dB; steps-to-threshold counts steps before PSNR drops below it."),
        seed: int = typer.Option(0, "--seed", help="Seed of the data, the weights and the evaluation windows."),
        sets: Optional[List[str]] = typer.Option(None, "--set", metavar="KEY=VALUE", help="Extra overrides for every run, e.g. --set train.batch_size=8."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    ) -> None:
        """Train one diffusion model per regime for the same budget on each world; compare autoregressive PSNR
        against horizon, its AUC, steps to threshold and (physics) velocity error."""
        from playworld.experiments import VARIANTS, markdown_table, regimes_experiment

        result = regimes_experiment(
            out, minutes=minutes, steps=steps, preset=preset, worlds=tuple(worlds), variants=tuple(variants or VARIANTS),
            episodes=episodes, episode_steps=episode_steps, resolution=resolution, horizon=horizon,
            eval_episodes=eval_episodes, rollout=rollout, threshold=threshold, seed=seed, sets=sets, progress=progress,
        )
        typer.echo(markdown_table(result))
        typer.echo(f"wrote {out}/regimes.json, {out}/regimes.md, {out}/regimes.png")
