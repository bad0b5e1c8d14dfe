"""`playworld quickstart`: the main job on the built-in default world.

For now it collects the default explorer dataset (if absent), verifies it and says what comes next.
"""

from __future__ import annotations

from pathlib import Path

import typer

from playworld.errors import PlayworldError

DEFAULT_WORLD = "explorer"
DEFAULT_EPISODES = 100
DEFAULT_STEPS = 200


def quickstart_cmd(
    data: Path = typer.Option(Path("data/explorer"), "--data", help="Where the default dataset lives (collected if absent)."),
    episodes: int = typer.Option(DEFAULT_EPISODES, "--episodes", help="Episodes to collect when the dataset is absent."),
    steps: int = typer.Option(DEFAULT_STEPS, "--steps", help="Steps per collected episode."),
    seed: int = typer.Option(0, "--seed", help="Collection seed."),
) -> None:
    """Collect and verify the default explorer dataset, then show the next commands."""
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
    typer.echo("")
    typer.echo("next:")
    typer.echo(f"  playworld data info {data} --sheet {data}-sheet.png   # look at it")
    typer.echo(f"  playworld train --data {data} --model diffusion --preset small --minutes 30 --out runs/explorer")
    typer.echo(f"  playworld play runs/explorer                            # play the learned world in the browser")


def register(app: typer.Typer) -> None:
    app.command("quickstart", rich_help_panel="0. Start here")(quickstart_cmd)
