"""Turn a session's recording into the files the page downloads: an mp4 and the actions as JSON.

The mp4 follows the media convention (playworld.media): the real world LEFT when it was shown,
the model RIGHT, each labelled with a frame counter, scaled up with nearest neighbour to about
256 pixels so the pixels stay crisp in a player. The JSON holds every action with who chose it,
enough to replay the session through `playworld rollout` or a script.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from playworld.media import labelled_panels, write_video
from playworld.models.interface import WorldSpec
from playworld.play.session import Recording


def encode_recording(rec: Recording, spec: WorldSpec, fps: float) -> tuple[bytes, dict]:
    """-> (mp4 bytes, actions JSON). Runs in a worker thread: H.264 encoding takes a moment."""
    with_real = bool(rec.real) and len(rec.real) == len(rec.frames)
    panels = {"real": np.stack(rec.real)} if with_real else {}
    frames = labelled_panels({**panels, "model": np.stack(rec.frames)})  # (T, H', W', 3)
    with tempfile.TemporaryDirectory(prefix="playworld-rec-") as tmp:
        path = write_video(Path(tmp) / "session.mp4", frames, fps=fps)
        mp4 = path.read_bytes()
    meta = {
        "format": "playworld-play-session", "spec": spec.to_dict(), "fps": fps, "source": rec.source,
        "layout": "real | model" if with_real else "model",
        "frames": len(rec.frames),
        "actions": rec.actions,  # actions[i] led into video frame i + 1; null marks a reset (a new context)
        "by_agent": rec.by_agent,
    }
    return mp4, meta
