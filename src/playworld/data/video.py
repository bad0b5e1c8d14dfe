"""Video in and out of the episode store.

import: each video file becomes one action-free episode (action space `none`, every action the
no-op 0), centre-cropped to a square and resized to the dataset resolution, its fps kept. Every file
is decoded before anything is written, so an undecodable file stops the import with nothing stored.
export: one H.264 mp4 per episode, at the dataset's fps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, create_or_append
from playworld.errors import PlayworldError
from playworld.media import read_video, write_video
from playworld.spaces import ActionSpace
from playworld.worlds.base import check_resolution

IMPORT_SUFFIXES = (".mp4", ".gif", ".webm")


def square_resize(frames: np.ndarray, resolution: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, R, R, 3): centre crop to a square, then area-resample (Lanczos)."""
    _, h, w, _ = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    frames = frames[:, top : top + s, left : left + s]
    if s == resolution:
        return np.ascontiguousarray(frames)
    return np.stack([np.asarray(Image.fromarray(f).resize((resolution, resolution), Image.LANCZOS)) for f in frames])


def import_videos(src_dir: str | Path, out: str | Path, resolution: int = 64, progress: bool = True) -> Dataset:
    """Import every mp4/gif/webm in `src_dir` (sorted by name) into the dataset `out`."""
    src_dir = Path(src_dir)
    check_resolution(resolution)
    if not src_dir.is_dir():
        raise PlayworldError(f"video folder {src_dir} does not exist", "pass a directory holding .mp4, .gif or .webm files")
    files = sorted(p for p in src_dir.iterdir() if p.is_file() and p.suffix.lower() in IMPORT_SUFFIXES)
    if not files:
        raise PlayworldError(f"no videos in {src_dir}", f"put {', '.join(IMPORT_SUFFIXES)} files there")
    clips = []  # decoded and resized first: a bad file must stop the import before any write
    for path in progress_iter(files, "decoding videos", enabled=progress):
        frames, fps = read_video(path)
        clips.append((path, square_resize(frames, resolution), fps))
    fps = clips[0][2]
    world = f"video:{src_dir.resolve().name}"
    source = {"kind": "import-video", "src": str(src_dir.resolve())}
    with create_or_append(out, world, resolution, ActionSpace.none(), fps, source=source) as writer:
        for path, frames, clip_fps in progress_iter(clips, "storing episodes", enabled=progress):
            t = len(frames)
            truncated = np.zeros(t, bool)
            truncated[-1] = True  # the clip ends; the scene does not
            writer.add_episode(frames, np.zeros(t, np.int64), truncated=truncated,
                               info={"source": path.name, "fps": clip_fps})
        return writer.dataset()


def export_videos(dataset_path: str | Path | Dataset, out_dir: str | Path, progress: bool = True) -> list[Path]:
    """Write episode_<id>.mp4 per episode into `out_dir`; returns the paths."""
    ds = dataset_path if isinstance(dataset_path, Dataset) else Dataset(dataset_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ep in progress_iter(ds.episode_ids(), "exporting", enabled=progress):
        paths.append(write_video(out_dir / f"episode_{ep:06d}.mp4", np.asarray(ds.load_episode(ep).frames), ds.fps))
    return paths
