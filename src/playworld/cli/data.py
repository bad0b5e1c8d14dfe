"""`playworld collect` and `playworld data ...`: datasets from worlds and videos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from playworld.errors import PlayworldError

_DATA_HELP = """Inspect, verify, convert, import and export datasets.

A dataset is a directory of episodes (uint8 frames, actions, rewards, ground-truth state) with a
manifest.json and an episodes table; frames are stored losslessly compressed by default. Make one
with `playworld collect`, `playworld data import-video` or `playworld data import-lerobot`, check it
with `playworld data verify`, then train on it with `playworld train --data DIR`."""


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
    layout: Optional[str] = typer.Option(None, "--layout", help="How a new dataset stores frames: compressed (zstd chunks, lossless, the default) or raw (.npy, memory-mapped). An existing dataset keeps its own."),
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
                 world_options=options or None, progress=True, warn=lambda m: typer.echo(f"warning: {m}", err=True),
                 layout=layout)
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
    """Check every episode file's checksum, size and shape, and decode compressed frames; exit 2 naming the first bad file."""
    from playworld.data.store import Dataset

    ds = Dataset(data)
    problems = ds.verify(progress=True)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise PlayworldError(
            f"{ds.path}: {problems[0]}{more}",
            "restore the file from a backup, or write the good episodes to a new dataset and re-collect the rest",
        )
    exact = "; frames decoded, bit-exact (lossless)" if ds.layout == "compressed" else ""
    typer.echo(f"ok: {ds.path} verifies ({len(ds)} episodes, {ds.num_frames} frames, every checksum and shape{exact})")


def import_video_cmd(
    src: Path = typer.Argument(..., help="Folder of .mp4, .gif or .webm files; each becomes one episode."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to create or append to."),
    resolution: int = typer.Option(64, "--resolution", help="Square frame size in pixels, 32 to 256 (videos are centre-cropped)."),
) -> None:
    """Turn a folder of videos into an action-free dataset (resized, fps kept)."""
    from playworld.data.video import import_videos

    ds = import_videos(src, out, resolution=resolution)
    typer.echo(f"{ds.path}: {len(ds)} episodes, {ds.num_frames} frames at {ds.fps:g} fps")


def import_lerobot_cmd(
    src: Path = typer.Argument(..., help="Root folder of a LeRobotDataset v3.0 (holding meta/, data/, videos/); a local path, nothing downloads."),
    out: Path = typer.Option(..., "--out", help="New dataset directory."),
    camera: Optional[str] = typer.Option(None, "--camera", help="Video feature to import, e.g. observation.images.top (or just top); default: the first."),
    resolution: int = typer.Option(64, "--resolution", help="Square frame size in pixels, 32 to 256 (frames are centre-cropped)."),
) -> None:
    """Import a LeRobotDataset v3.0: one camera, action, next.reward/next.done, fps and episodes kept.

    Example: playworld data import-lerobot ~/datasets/pusht --out data/pusht --camera observation.image
    """
    from playworld.data.lerobot import import_lerobot

    ds = import_lerobot(src, out, camera=camera, resolution=resolution)
    camera = ds.manifest["history"][-1]["camera"]
    typer.echo(f"{ds.path}: {len(ds)} episodes, {ds.num_frames} frames of {camera} at {ds.fps:g} fps, "
               f"actions {ds.action_space.describe()}, state {', '.join(ds.state_keys) or 'none'}")
    typer.echo(f"next: playworld train --data {ds.path} --model diffusion")


def convert_cmd(
    data: Path = typer.Argument(..., help="Dataset directory (any schema or layout)."),
    out: Path = typer.Option(..., "--out", help="New dataset directory to write."),
    layout: str = typer.Option("compressed", "--layout", help="compressed (zstd chunks, lossless) or raw (.npy, memory-mapped)."),
    level: Optional[int] = typer.Option(None, "--level", help="zstd level of compressed frames (1-22; default 9)."),
) -> None:
    """Copy a dataset into a new one with another layout (ids, splits and arrays kept exactly)."""
    from playworld.data.convert import convert
    from playworld.data.info import storage
    from playworld.data.store import Dataset

    before = storage(Dataset(data))
    ds = convert(data, out, layout=layout, level=level)
    after = storage(ds)
    ratio = f", {after['frames_smaller_than_raw']}x smaller than raw" if after["layout"] == "compressed" else ""
    typer.echo(f"{data} (schema {before['schema_version']}, {before['layout']}, frames {before['frame_bytes'] / 1e6:.2f} MB) -> "
               f"{ds.path} ({after['layout']}, {after['frames_codec']}, frames {after['frame_bytes'] / 1e6:.2f} MB{ratio})")
    typer.echo(f"next: playworld data verify {ds.path}")


def export_cmd(
    data: Path = typer.Argument(..., help="Dataset directory."),
    out: Path = typer.Option(..., "--out", help="Folder to write: episode_<id>.mp4 files (mp4), or a new LeRobot dataset (lerobot)."),
    fmt: str = typer.Option("mp4", "--format", help="mp4 (one browser-playable video per episode) or lerobot (a LeRobotDataset v3.0 folder)."),
    camera: Optional[str] = typer.Option(None, "--camera", help="lerobot: the camera's feature name (default: the imported one, else observation.image)."),
    codec: str = typer.Option("h264-444", "--codec", help="lerobot: h264-444 (lossless H.264 in yuv444p: at most ~2 grey levels off; not for browsers) or av1 (LeRobot's default, yuv420p: plays in browsers, lossy on pixel art)."),
) -> None:
    """Write one browser-playable mp4 per episode, or the whole dataset as a LeRobotDataset v3.0."""
    if fmt == "lerobot":
        from playworld.data.lerobot_export import export_lerobot

        report = export_lerobot(data, out, camera=camera, codec=codec)
        video = report["video"]
        typer.echo(f"wrote {report['episodes']} episodes, {report['frames']} frames to {out} (LeRobotDataset v3.0, camera "
                   f"{report['camera']}); video {video['codec']} {video['pix_fmt']}, measured against the stored frames: "
                   f"PSNR {video['psnr_db']} dB, max error {video['max_abs_error']} grey levels")
        if report["state_not_exported"]:
            typer.echo(f"not exported (state that is not a vector per frame): {', '.join(report['state_not_exported'])}", err=True)
        return
    if fmt != "mp4":
        raise PlayworldError(f"unknown export format {fmt!r}", "use --format mp4 or --format lerobot")
    from playworld.data.video import export_videos

    paths = export_videos(data, out)
    typer.echo(f"wrote {len(paths)} videos to {out}")


def register(app: typer.Typer) -> None:
    app.command("collect", rich_help_panel="1. Data")(collect_cmd)
    data = typer.Typer(help=_DATA_HELP, no_args_is_help=True)
    data.command("info")(info_cmd)
    data.command("verify")(verify_cmd)
    data.command("import-video")(import_video_cmd)
    data.command("import-lerobot")(import_lerobot_cmd)
    data.command("convert")(convert_cmd)
    data.command("export")(export_cmd)
    app.add_typer(data, name="data", rich_help_panel="1. Data")
