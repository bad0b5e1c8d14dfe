"""`playworld bench`: generation speed figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from playworld.cli.common import use_threads


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="2. Models")
    def bench(
        threads: int = typer.Option(2, "--threads", help="CPU threads torch may use (the targets are set for 2)."),
        repeats: int = typer.Option(5, "--repeats", help="Timed repeats; medians are reported."),
        frames: int = typer.Option(20, "--frames", help="Consecutive frames generated per repeat."),
        preset: str = typer.Option("small", "--preset", help="Preset whose diffusion and clip models are measured against the reference."),
        sets: Optional[List[str]] = typer.Option(None, "--set", metavar="model.KEY=VALUE", help="Build the preset's diffusion model with this option changed, to time a configuration before training it, e.g. --set model.transport=4 (repeatable)."),
        out: Path = typer.Option(None, "--out", help="Also write the JSON to this file."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    ) -> None:
        """Generation frames/s at 64x64 (batch 1, fp32 and bf16) of the diffusion model vs a DIAMOND-size reference and the clip model (and its cost per frame by chunk length), as JSON."""
        from rich.console import Console
        from rich.progress import Progress

        from playworld.benchmarks import generation_benchmark
        from playworld.errors import PlayworldError
        from playworld.options import parse_sets

        parsed = parse_sets(sets)
        if parsed["train"]:
            raise PlayworldError("playworld bench times a model: --set takes model options only", "e.g. --set model.transport=4")

        if threads < 1 or repeats < 1 or frames < 1:
            raise PlayworldError("--threads, --repeats and --frames must be at least 1", "e.g. playworld bench --threads 2")
        use_threads(threads)  # warns when the machine is too busy for the figures to mean much
        with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
            result = generation_benchmark(threads=threads, repeats=repeats, frames=frames, preset=preset, progress=bar,
                                          sets=parsed["model"])
        text = json.dumps(result, indent=2)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        typer.echo(text)
