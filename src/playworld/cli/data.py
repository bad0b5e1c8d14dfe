"""`playworld collect` and `playworld data ...`: datasets from worlds and videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from playworld.errors import PlayworldError

_DATA_HELP = """Inspect, verify, import and export datasets.

A dataset is a directory of episodes (uint8 frames, actions, rewards, ground-truth state) with a
manifest.json. Make one with `playworld collect` or `playworld data import-video`, check it with
`playworld data verify`, then train on it with `playworld train --data DIR`."""


def collect_cmd(
    env: str = typer.Option(..., "--env", help="World to collect from: explorer, physics/uniform, physics/collision, physics/parabola, or gym:<Gymnasium id> (e.g. gym:CartPole-v1; gym:pkg:Env-v0 imports your module pkg first, which registers Env-v0)."),
    episodes: int = typer.Option(..., "--episodes", help="Number of episodes to collect (appended if --out already holds a dataset)."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to create or append to, e.g. data/explorer."),
    policy: str = typer.Option("random", "--policy", help="Who acts: random, sticky (repeats its last action), explore (explorer: A->B->A walks), or module:function for your own obs -> action callable."),
    seed: int = typer.Option(0, "--seed", help="Seeds the world (once per collection) and the policy; the same seed gives the same data."),
    resolution: int = typer.Option(64, "--resolution", help="Square frame size in pixels, 32 to 256."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Maximum steps per episode (default: the world's natural length, else 500)."),
    ood: bool = typer.Option(False, "--ood", help="Physics worlds: draw radius and speed from the out-of-distribution ranges."),
    world_option: list[str] = typer.Option([], "--world-option", metavar="KEY=VALUE", help="KEY=VALUE option of the world (repeatable; the value is read as JSON where it parses, else as text), e.g. --world-option map_size=64 --world-option n_coins=64 for explorer."),
) -> None:
    """Collect episodes from a world into a dataset (appends if the dataset exists).

    Example: playworld collect --env explorer --episodes 200 --out data/explorer
    """
    from playworld.data.collect import collect
    from playworld.worlds.base import parse_world_options

    if ood and not env.startswith("physics/"):
        raise PlayworldError(f"--ood applies to the physics worlds only, not {env}", "drop --ood, or use --env physics/...")
    options = parse_world_options(world_option)
    if ood:
        options["ood"] = True
    if env.startswith("gym:") and env.count(":") > 1:  # gym:pkg:Env-v0, typed here: the user's own module registers it
        from playworld.worlds.gym import import_registering_module

        env = import_registering_module(env)
    ds = collect(env, out, episodes, policy=policy, seed=seed, resolution=resolution, steps=steps,
                 world_options=options or None, progress=True, warn=lambda m: typer.echo(f"warning: {m}", err=True))
    typer.echo(f"{ds.path}: {len(ds)} episodes, {ds.num_frames} frames of {ds.world} at {ds.resolution}x{ds.resolution}")
    typer.echo(f"next: playworld data verify {ds.path}   then   playworld train --data {ds.path} --model diffusion")


def info_cmd(
    data: Path = typer.Argument(..., help="Dataset directory."),
    sheet: Optional[Path] = typer.Option(None, "--sheet", help="Also save a contact sheet of frames to this PNG."),
    frames: int = typer.Option(16, "--frames", help="Number of frames on the contact sheet."),
) -> None:
    """Print a dataset's summary as JSON: counts, sizes, splits, action histogram, rewards."""
    from playworld.data.info import contact_sheet, dataset_info

    typer.echo(json.dumps(dataset_info(data), indent=2))
    if sheet is not None:
        typer.echo(f"contact sheet: {contact_sheet(data, sheet, n=frames)}", err=True)


def verify_cmd(data: Path = typer.Argument(..., help="Dataset directory.")) -> None:
    """Check every episode file's checksum, size and shape; exit 1 naming the first bad file."""
    from playworld.data.store import Dataset

    ds = Dataset(data)
    problems = ds.verify(progress=True)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise PlayworldError(
            f"{ds.path}: {problems[0]}{more}",
            "restore the file from a backup, or delete that episode's directory and its manifest entry and re-collect",
        )
    typer.echo(f"ok: {ds.path} verifies ({len(ds)} episodes, {ds.num_frames} frames, every checksum and shape)")


def import_video_cmd(
    src: Path = typer.Argument(..., help="Folder of .mp4, .gif or .webm files; each becomes one episode."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to create or append to."),
    resolution: int = typer.Option(64, "--resolution", help="Square frame size in pixels, 32 to 256 (videos are centre-cropped)."),
) -> None:
    """Turn a folder of videos into an action-free dataset (resized, fps kept)."""
    from playworld.data.video import import_videos

    ds = import_videos(src, out, resolution=resolution)
    typer.echo(f"{ds.path}: {len(ds)} episodes, {ds.num_frames} frames at {ds.fps:g} fps")


def export_cmd(
    data: Path = typer.Argument(..., help="Dataset directory."),
    out: Path = typer.Option(..., "--out", help="Folder to write episode_<id>.mp4 files into."),
) -> None:
    """Write one browser-playable mp4 per episode."""
    from playworld.data.video import export_videos

    paths = export_videos(data, out)
    typer.echo(f"wrote {len(paths)} videos to {out}")


def register(app: typer.Typer) -> None:
    app.command("collect", rich_help_panel="1. Data")(collect_cmd)
    data = typer.Typer(help=_DATA_HELP, no_args_is_help=True)
    data.command("info")(info_cmd)
    data.command("verify")(verify_cmd)
    data.command("import-video")(import_video_cmd)
    data.command("export")(export_cmd)
    app.add_typer(data, name="data", rich_help_panel="1. Data")
