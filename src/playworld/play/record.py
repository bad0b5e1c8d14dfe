"""Turn a session's recording into the files the page downloads: an mp4 and the actions as JSON.

The mp4 shows the model (and the real world beside it, when shown) scaled up with nearest
neighbour to about 256 pixels, so the pixels stay crisp in a player. The JSON holds every action
with who chose it, enough to replay the session through `playworld rollout` or a script.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from playworld.media import side_by_side, upscale_nearest, write_video
from playworld.models.interface import WorldSpec
from playworld.play.session import Recording


def encode_recording(rec: Recording, spec: WorldSpec, fps: float) -> tuple[bytes, dict]:
    """-> (mp4 bytes, actions JSON). Runs in a worker thread: H.264 encoding takes a moment."""
    frames = np.stack(rec.frames)  # (T, H, W, 3)
    if rec.real and len(rec.real) == len(rec.frames):
        frames = side_by_side(frames, np.stack(rec.real), gap=max(1, spec.resolution // 32))
    frames = upscale_nearest(frames, max(1, 256 // spec.resolution))
    with tempfile.TemporaryDirectory(prefix="playworld-rec-") as tmp:
        path = write_video(Path(tmp) / "session.mp4", frames, fps=fps)
        mp4 = path.read_bytes()
    meta = {
        "format": "playworld-play-session", "spec": spec.to_dict(), "fps": fps, "source": rec.source,
        "layout": "model | real world" if rec.real else "model",
        "frames": len(rec.frames),
        "actions": rec.actions,  # actions[i] led into video frame i + 1; null marks a reset (a new context)
        "by_agent": rec.by_agent,
    }
    return mp4, meta
