"""Video in and out: uint8 frame arrays (T, H, W, 3) <-> .mp4 / .gif / .webm files.

mp4 is written with PyAV as H.264 in yuv420p with even dimensions, the combination every browser
plays; gif goes through imageio (whole-centisecond delays; repeated frames merge into one longer
delay, which reading expands again). Reading uses PyAV for every container (it decodes gif too).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import imageio.v3 as iio
import numpy as np

from playworld.errors import PlayworldError

VIDEO_SUFFIXES = (".mp4", ".gif", ".webm", ".mov", ".mkv", ".avi")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be (T, H, W, 3) with T >= 1, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    return frames


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even width and height: replicate the last row/column when odd."""
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write frames (T, H, W, 3) uint8 to `path`; the suffix (.mp4, .webm or .gif) picks the format."""
    path = Path(path)
    frames = _check_frames(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        # GIF delays are in whole milliseconds; loop=0 repeats forever.
        iio.imwrite(path, frames, extension=".gif", duration=int(round(1000 / fps)), loop=0)
        return path
    if suffix not in (".mp4", ".webm"):
        raise PlayworldError(f"cannot write video {path}: unknown suffix {suffix!r}", "use .mp4, .webm or .gif")

    frames = _pad_even(frames)
    _, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        if suffix == ".mp4":
            stream = container.add_stream("libx264", rate=rate)
            # faststart moves the index to the front so browsers can start playing before the end.
            stream.options = {"crf": str(crf), "preset": "medium", "movflags": "+faststart"}
        else:
            stream = container.add_stream("libvpx-vp9", rate=rate)
            stream.options = {"crf": str(crf + 6), "b": "0"}
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))  # flush the encoder
    return path


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """Decode a video file -> (frames (T, H, W, 3) uint8, fps). PlayworldError if it cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise PlayworldError(f"video {path} does not exist", "check the path")

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise PlayworldError(f"{path} has no video stream", "pass a video file (mp4, gif, webm)")
            stream = container.streams.video[0]
            decoded = [(f.to_ndarray(format="rgb24"), f.duration) for f in container.decode(stream)]
            frames = [f for f, _ in decoded]
            if stream.codec_context.name == "gif" and decoded:
                frames, fps = _gif_constant_rate(decoded, stream.time_base)
            else:
                fps = _stream_fps(stream, frames, container)
    except PlayworldError:
        raise
    except Exception as e:  # PyAV raises many error types (InvalidDataError, EOFError, ...)
        raise PlayworldError(
            f"cannot decode video {path}: {e}", "the file is corrupt or not a video; re-encode or remove it"
        ) from None
    if not frames:
        raise PlayworldError(f"cannot decode video {path}: it has no frames", "re-encode or remove it")
    return np.stack(frames), fps


def _stream_fps(stream, frames: list, container) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate and float(rate) > 0:
        return float(rate)
    duration = container.duration / 1e6 if container.duration else 0.0
    return round(len(frames) / duration, 3) if duration > 0 else 10.0


def _gif_constant_rate(decoded: list, time_base) -> tuple[list, float]:
    """GIF frames carry their own delays, and writers merge repeated frames into one longer
    delay. Resample to a constant rate: the tick is the gcd of the delays, each frame repeated
    delay / tick times."""
    delays = [int(d) if d else 0 for _, d in decoded]
    positive = [d for d in delays if d > 0]
    if not positive:
        return [f for f, _ in decoded], 10.0
    tick = int(np.gcd.reduce(positive))
    frames = [f for (f, _), d in zip(decoded, delays) for _ in range(max(1, d // tick))]
    return frames, round(1.0 / float(tick * time_base), 3)


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Place equal-length videos (T, H_i, W_i, 3) left to right with a white `gap`-pixel separator."""
    if not videos:
        raise ValueError("side_by_side needs at least one video")
    videos = [_check_frames(v) for v in videos]
    t = len(videos[0])
    if any(len(v) != t for v in videos):
        raise ValueError(f"videos must have equal lengths, got {[len(v) for v in videos]}")
    h = max(v.shape[1] for v in videos)
    parts = []
    for i, v in enumerate(videos):
        if v.shape[1] < h:  # centre shorter videos vertically on white
            top = (h - v.shape[1]) // 2
            v = np.pad(v, ((0, 0), (top, h - v.shape[1] - top), (0, 0), (0, 0)), constant_values=255)
        if i:
            parts.append(np.full((t, h, gap, 3), 255, np.uint8))
        parts.append(v)
    return np.concatenate(parts, axis=2)


def upscale_nearest(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of (..., H, W, C) by an integer factor (crisp pixels for viewing)."""
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return np.asarray(frames)
    return np.repeat(np.repeat(frames, factor, axis=-3), factor, axis=-2)


def comparison_frames(generated, truth, scale: int | None = None) -> np.ndarray:
    """(B, T, 3, H, W) generated and ground truth (uint8 arrays or tensors) -> one video (T, rows*H', 2*W'+gap, 3).

    One row per window: generated on the left, ground truth on the right, upscaled by nearest
    neighbour (`scale`, by default to about 256 pixels high per row) so small frames stay crisp.
    """
    t = min(generated.shape[1], truth.shape[1])
    gen = np.moveaxis(_to_numpy(generated)[:, :t], 2, -1)  # (B, T, H, W, 3)
    real = np.moveaxis(_to_numpy(truth)[:, :t], 2, -1)
    scale = scale or max(1, 256 // gen.shape[2])
    rows = [side_by_side(upscale_nearest(g, scale), upscale_nearest(r, scale)) for g, r in zip(gen, real)]
    gap = np.full((t, 2, rows[0].shape[2], 3), 255, np.uint8)
    stacked = [rows[0]]
    for row in rows[1:]:
        stacked += [gap, row]
    return np.concatenate(stacked, axis=1)


def write_comparison(generated, truth, path: str | Path, fps: float, scale: int | None = None) -> Path:
    """Write the generated-beside-ground-truth video; .mp4, .webm or .gif by the suffix of `path`."""
    return write_video(path, comparison_frames(generated, truth, scale), fps=fps)


def _to_numpy(frames) -> np.ndarray:
    """A uint8 tensor (any device) or array -> a numpy array."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    return np.asarray(frames)
