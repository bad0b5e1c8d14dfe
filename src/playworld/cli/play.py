"""`playworld play RUN`: play a world model in the browser."""

from __future__ import annotations

from typing import List, Optional

import typer

from playworld.cli.common import threads_option, use_threads


def play_cmd(
    run: str = typer.Argument(..., help="A run folder of `playworld train`, or oracle:<world> / copy-last:<world> "
                              "(the real world / a frozen frame, for comparison)."),
    port: int = typer.Option(8765, "--port", help="TCP port to serve the page on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Anything but loopback exposes the "
                             "server to your network (a warning is printed)."),
    context_from: Optional[str] = typer.Option(None, "--context-from", help="Where starting contexts come from: "
                                               "`env` (the real world, fresh seeds) or a dataset folder (its val "
                                               "split). Default: env when the run's world can be built, else the "
                                               "run's dataset."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Model steps per second (default: what the model sustains, "
                                        "measured at start, at most 30; a slower model runs as fast as it can)."),
    max_sessions: int = typer.Option(4, "--max-sessions", help="Players at once; the next one is told the server is busy."),
    resolution: int = typer.Option(64, "--resolution", help="Frame size for oracle:/copy-last: pseudo-runs "
                                   "(a trained run uses its own)."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, or auto (cuda when available)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the contexts and the model's sampling of each session."),
    allow_origin: Optional[List[str]] = typer.Option(None, "--allow-origin", metavar="ORIGIN", help="Also accept "
                                                     "sessions from web pages of this origin, e.g. https://lab.example:8443 "
                                                     "(repeatable; * for any). By default only pages on loopback may."),
    token: Optional[str] = typer.Option(None, "--token", help="Require this token of every request (auto: a random one); "
                                        "the URL printed at start carries it. Use it when binding beyond loopback."),
    max_sampling_steps: Optional[int] = typer.Option(None, "--max-sampling-steps", help="The most sampling steps a "
                                                     "player may set (default: 4 times the model's own, within its maximum).",
                                                     min=1),
    agent: Optional[List[str]] = typer.Option(None, "--agent", help="An agent folder written by `playworld dream` "
                                              "to offer in agent mode, under its folder name (repeatable)."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Play a world model in the browser at http://127.0.0.1:8765 (arrows/WASD, reset, record, agent mode)."""
    from playworld.play import play

    use_threads(threads)
    if agent:
        from playworld.play.controls import register_play_agent

        for path in agent:
            register_play_agent(path)
    play(run, port=port, host=host, context_from=context_from, fps=fps, max_sessions=max_sessions,
         resolution=resolution, device=device, seed=seed, allowed_origins=tuple(allow_origin or ()), token=token,
         max_sampling_steps=max_sampling_steps)


def register(app: typer.Typer) -> None:
    app.command("play", rich_help_panel="3. Play and evaluate")(play_cmd)
