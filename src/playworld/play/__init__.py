"""Play a world model in the browser: FastAPI server, websocket sessions, the static page.

    from playworld.play import play
    play("runs/explorer")                  # serves http://127.0.0.1:8765 until Ctrl-C
    play("oracle:explorer")                # the real world behind the same interface

    server.py    PlayServer (FastAPI app, websocket per player, tick task), serve, ServerThread
    session.py   PlaySession: one player's model state, real world, keys, agent, recording
    protocol.py  the websocket messages and the binary frame format
    controls.py  KeyMap (keys from the action space) and agents (random; register_agent for more)
    contexts.py  starting contexts from the real world or a dataset
    loading.py   RUN / oracle:<world> / copy-last:<world> -> model and contexts
    record.py    a recording -> mp4 + actions JSON
"""

from __future__ import annotations

import torch

from playworld.play.loading import load_target
from playworld.play.server import PlayServer, configure_torch_threads, serve


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def make_server(run: str, context_from: str | None = None, fps: float = 15.0, max_sessions: int = 4,
                resolution: int = 64, device: str = "cpu", seed: int = 0):
    """RUN -> a ready `PlayServer` (its FastAPI app is `.app`). PlayworldError when RUN cannot be played."""
    target = load_target(run, context_from=context_from, resolution=resolution, device=resolve_device(device))
    return PlayServer(target.model, target.contexts, fps=fps, max_sessions=max_sessions, seed=seed, title=target.title)


def play(run: str, port: int = 8765, host: str = "127.0.0.1", context_from: str | None = None, fps: float = 15.0,
         max_sessions: int = 4, resolution: int = 64, device: str = "auto", seed: int = 0) -> None:
    """Serve RUN in the browser until interrupted (the `playworld play` command)."""
    configure_torch_threads()
    server = make_server(run, context_from, fps, max_sessions, resolution, device, seed)
    serve(server, host=host, port=port)


__all__ = ["play", "make_server"]
