"""Video in and out: uint8 frame arrays (T, H, W, 3) <-> .mp4 / .gif / .webm files.

mp4 is written with PyAV as H.264 in yuv420p with even dimensions, the combination every browser
plays; gif goes through Pillow with one palette for the whole clip (whole-centisecond delays;
repeated frames merge into one longer delay, which reading expands again). Reading uses PyAV for
every container (it decodes gif too).

Side-by-side media follow one convention everywhere (rollout files, training media, the eval
report, play recordings): the real world LEFT, the model RIGHT, each panel labelled ("real",
"model") on a strip above the frames, with a frame counter ("3/32") at the strip's right end.
`labelled_panels` draws it; `comparison_frames` is its form for rollout batches.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

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
        _write_gif(path, frames, fps)
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


def _write_gif(path: Path, frames: np.ndarray, fps: float, colors: int = 256) -> None:
    """One palette for the whole clip (median cut over up to 8 frames spread through it), no
    dithering: flat colours stay flat, so frames compress and unchanged regions cost little
    (Pillow stores each frame as the box that changed). imageio's palette per frame gave every
    frame slightly different colours."""
    pick = np.linspace(0, len(frames) - 1, min(len(frames), 8)).round().astype(int)
    palette = Image.fromarray(np.concatenate(frames[pick], axis=0)).quantize(
        colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    # GIF delays are whole centiseconds (Pillow takes milliseconds); loop=0 repeats forever.
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0, optimize=False)


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


GIF_MAX_SCALE = 2
"""GIFs are upscaled at most this much (a 64 px rollout upscaled 4x made a GIF of 5.8 MB for 32 frames)"""
GAP = 2
"""white pixels between panels and between rows"""


def comparison_frames(generated, truth, scale: int | None = None) -> np.ndarray:
    """(B, T, 3, H, W) generated and ground truth (uint8 arrays or tensors) -> one video (T, H', W', 3).

    One row per window: the real frames LEFT, the generated ones RIGHT, under a strip labelled
    "real" / "model" with a frame counter; upscaled by nearest neighbour (`scale`, by default to
    about 256 pixels high per row) so small frames stay crisp.
    """
    t = min(generated.shape[1], truth.shape[1])
    gen = np.moveaxis(_to_numpy(generated)[:, :t], 2, -1)  # (B, T, H, W, 3)
    real = np.moveaxis(_to_numpy(truth)[:, :t], 2, -1)
    return labelled_panels({"real": real, "model": gen}, scale)


def write_comparison(generated, truth, path: str | Path, fps: float, scale: int | None = None) -> Path:
    """Write real (left) beside generated (right), labelled; .mp4, .webm or .gif by the suffix of `path`.

    By default an mp4 is upscaled to about 256 px per row, a GIF at most GIF_MAX_SCALE times."""
    if scale is None and Path(path).suffix.lower() == ".gif":
        scale = min(GIF_MAX_SCALE, max(1, 256 // generated.shape[-2]))
    return write_video(path, comparison_frames(generated, truth, scale), fps=fps)


def split_comparison(video: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of `comparison_frames` for frames of `resolution` px: -> (generated, truth), each
    (B, T, 3, H, W) u8, read at the centre of each upscaled pixel (so a decoded mp4 gives them back
    closely). Lets a GIF be made small from an existing mp4 (quickstart reuses training's video)."""
    video = _check_frames(video)
    t, total_h, total_w, _ = video.shape
    scale = (total_w - GAP) // (2 * resolution)
    _, size = _layout(resolution, t, "model", scale)
    top, row_h = _strip_height(size), resolution * scale + GAP
    rows = (total_h - top + GAP) // row_h
    c = scale // 2
    ys = top + np.arange(rows)[:, None] * row_h + c + scale * np.arange(resolution)  # (B, H)
    xs = c + scale * np.arange(resolution)
    real = video[:, ys][:, :, :, xs]  # (T, B, H, W, 3)
    gen = video[:, ys][:, :, :, xs + resolution * scale + GAP]
    return tuple(np.ascontiguousarray(v.transpose(1, 0, 4, 2, 3)) for v in (gen, real))


def labelled_panels(panels: dict[str, np.ndarray], scale: int | None = None) -> np.ndarray:
    """Videos side by side under a label strip: {"real": (B, T, H, W, 3), "model": ...} -> (T, H', W', 3) u8.

    Panels go left to right in the dict's order (by convention real, then model); each clip of the
    batch is a row (a single clip may be given as (T, H, W, 3)). The strip above names each panel
    at its left edge and counts frames ("t/T") at its right end. `scale` upscales by nearest
    neighbour (default: to about 256 px per row) and grows where the labels would not fit.
    """
    if not panels:
        raise ValueError("labelled_panels needs at least one panel")
    clips = [np.asarray(v) for v in panels.values()]
    clips = [c[None] if c.ndim == 4 else c for c in clips]  # (B, T, H, W, 3) each
    b, t, h, w = clips[0].shape[:4]
    if any(c.ndim != 5 or c.shape[:4] != (b, t, h, w) or c.shape[-1] != 3 or c.dtype != np.uint8 for c in clips):
        raise ValueError(f"panels must be uint8 (B, T, H, W, 3) of one shape, got {[(c.shape, c.dtype.name) for c in clips]}")
    names = list(panels)
    scale, size = _layout(w, t, names[-1], scale)
    rows = [side_by_side(*(upscale_nearest(c[i], scale) for c in clips), gap=GAP) for i in range(b)]
    sep = np.full((t, GAP, rows[0].shape[2], 3), 255, np.uint8)
    body = np.concatenate([part for row in rows for part in (sep, row)][1:], axis=1)  # white lines between rows
    pad = size + 1
    strip = np.empty((t, _strip_height(size), body.shape[2], 3), np.uint8)
    strip[:] = STRIP_COLOR
    for i, name in enumerate(names):
        _draw(strip, name, i * (w * scale + GAP) + pad, pad, size)
    for j in range(t):
        text = f"{j + 1}/{t}"
        _draw(strip[j:j + 1], text, body.shape[2] - pad - _text_width(text, size), pad, size)
    return np.concatenate([strip, body], axis=1)


def _layout(width: int, frames: int, last_label: str, scale: int | None) -> tuple[int, int]:
    """-> (upscale factor, glyph size) for panels `width` px wide: the default scale brings a panel to
    about 256 px; it grows until the last panel holds its label and the counter; glyphs grow with
    the panel (1 per 100 px) while they fit."""
    counter = f"{frames}/{frames}"
    scale = scale or max(1, 256 // width)
    while width * scale < _panel_text_width(last_label, counter, 1):
        scale += 1
    size = max(1, width * scale // 100)
    while size > 1 and width * scale < _panel_text_width(last_label, counter, size):
        size -= 1
    return scale, size


def _strip_height(size: int) -> int:
    return GLYPH_H * size + 2 * (size + 1)



# -- a tiny built-in 5x7 bitmap font for the labels: crisp at any integer size, no font file -------
GLYPH_W, GLYPH_H = 5, 7
STRIP_COLOR, TEXT_COLOR = (32, 32, 32), (255, 255, 255)
_GLYPHS = {
    "a": ".....|.....|.###.|....#|.####|#...#|.####", "d": "....#|....#|.##.#|#..##|#...#|#...#|.####",
    "e": ".....|.....|.###.|#...#|#####|#....|.###.", "l": ".##..|..#..|..#..|..#..|..#..|..#..|.###.",
    "m": ".....|.....|##.#.|#.#.#|#.#.#|#...#|#...#", "o": ".....|.....|.###.|#...#|#...#|#...#|.###.",
    "r": ".....|.....|#.##.|##..#|#....|#....|#....", " ": ".....|.....|.....|.....|.....|.....|.....",
    "/": "....#|....#|...#.|..#..|.#...|#....|#....", "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.", "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "#####|...#.|..#..|...#.|....#|#...#|.###.", "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.", "6": "..##.|.#...|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...", "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
}
_MASKS = {c: np.array([[p == "#" for p in row] for row in g.split("|")]) for c, g in _GLYPHS.items()}


def text_mask(text: str, size: int = 1) -> np.ndarray:
    """The pixels of `text` in the built-in font: (7*size, width) bool, one blank column between glyphs.

    The font holds what the labels need: the letters of "real" and "model", digits, '/' and space."""
    missing = sorted(set(text) - set(_MASKS))
    if missing:
        raise ValueError(f"the label font has no glyph for {missing}; it draws {''.join(sorted(_MASKS))!r}")
    cols = []
    for i, c in enumerate(text):
        if i:
            cols.append(np.zeros((GLYPH_H, 1), bool))
        cols.append(_MASKS[c])
    return upscale_nearest(np.concatenate(cols, axis=1)[..., None], size)[..., 0]


def _text_width(text: str, size: int) -> int:
    return (len(text) * (GLYPH_W + 1) - 1) * size


def _panel_text_width(label: str, counter: str, size: int) -> int:
    """The width the last panel needs: its label, the counter, and a margin around and between them."""
    return _text_width(label, size) + _text_width(counter, size) + 4 * (size + 1)


def _draw(strip: np.ndarray, text: str, x: int, y: int, size: int) -> None:
    """Draw `text` in TEXT_COLOR into strip (T, h, W, 3) with its top-left corner at (x, y), clipped."""
    mask = text_mask(text, size)[:, : max(0, strip.shape[2] - x)]
    region = strip[:, y:y + mask.shape[0], x:x + mask.shape[1]]
    region[:, mask] = TEXT_COLOR


def _to_numpy(frames) -> np.ndarray:
    """A uint8 tensor (any device) or array -> a numpy array."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().numpy()
    return np.asarray(frames)
