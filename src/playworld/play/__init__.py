"""Play a world model in the browser: FastAPI server, websocket sessions, the static page.

    from playworld.play import play
    play("runs/explorer")                  # serves http://127.0.0.1:8765 until Ctrl-C
    play("oracle:explorer")                # the real world behind the same interface

    server.py    PlayServer (FastAPI app, websocket per player, tick task), serve, ServerThread
    fair.py      fair model time between sessions, each session's message budget
    guard.py     Host / Origin checks and the optional token
    session.py   PlaySession: one player's model state, real world, keys, agent, recording
    protocol.py  the websocket messages and the binary frame format
    controls.py  KeyMap (keys from the action space) and agents (random; register_agent for more)
    contexts.py  starting contexts from the real world or a dataset
    loading.py   RUN / oracle:<world> / copy-last:<world> -> model and contexts
    record.py    a recording -> mp4 + actions JSON
"""

from __future__ import annotations

import time

import torch

from playworld.play.loading import load_target
from playworld.play.session import PlaySession
from playworld.play.server import PlayServer, configure_torch_threads, new_token, serve

MAX_FPS = 30.0
"""the tick rate `playworld play` never exceeds on its own (a browser draws 60; a world's clock is 10-30)"""


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def make_server(run: str, context_from: str | None = None, fps: float | None = None, max_sessions: int = 4,
                resolution: int = 64, device: str = "cpu", seed: int = 0, allowed_origins: tuple[str, ...] = (),
                token: str | None = None, max_sampling_steps: int | None = None):
    """RUN -> a ready `PlayServer` (its ASGI app is `.app`). PlayworldError when RUN cannot be played.
    `fps` None: what the model sustains (`sustained_fps`); `token` "auto": a new random one."""
    target = load_target(run, context_from=context_from, resolution=resolution, device=resolve_device(device))
    if fps is None:
        fps = sustained_fps(target.model, target.contexts, seed=seed)
    return PlayServer(target.model, target.contexts, fps=fps, max_sessions=max_sessions, seed=seed, title=target.title,
                      allowed_origins=allowed_origins, token=new_token() if token == "auto" else token,
                      max_sampling_steps=max_sampling_steps)


def sustained_fps(model, contexts, seed: int = 0, steps: int = 6, top: float = MAX_FPS) -> float:
    """Steps per second the model keeps up for one player (90% of its measured median rate, 2 to `top`):
    the tick rate `playworld play` uses when --fps is not given, so the page is not capped below it."""
    session = PlaySession(model, contexts, seed=seed)
    session.reset()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        session.step()
        times.append(time.perf_counter() - start)
    median = sorted(times[1:])[len(times[1:]) // 2]  # the first step warms up
    return float(max(2.0, min(top, round(0.9 / max(median, 1e-6)))))


def play(run: str, port: int = 8765, host: str = "127.0.0.1", context_from: str | None = None, fps: float | None = None,
         max_sessions: int = 4, resolution: int = 64, device: str = "auto", seed: int = 0,
         allowed_origins: tuple[str, ...] = (), token: str | None = None, max_sampling_steps: int | None = None) -> None:
    """Serve RUN in the browser until interrupted (the `playworld play` command)."""
    configure_torch_threads()
    server = make_server(run, context_from, fps, max_sessions, resolution, device, seed, allowed_origins, token,
                         max_sampling_steps)
    serve(server, host=host, port=port)


__all__ = ["play", "make_server", "sustained_fps"]
