"""How to store frames: zstd chunks (the store's choice) against video codecs, on real worlds' frames; prints JSON.

    python bench/speed/frame_codecs.py [--data DATA ...] [--out DIR]

Without --data it collects explorer (10 episodes x 200 steps), physics/collision (20 clips) and
gym:ALE/Pong-v5 (3 episodes x 300 steps) at 64x64 into OUT. Every codec stores the frames the way a
random-access store must: in chunks of `playworld.data.chunks.chunk_frames` frames (32 at 64x64),
each decodable alone. Per codec: size against raw uint8 (`ratio`), encode MB/s of raw frames, the
time to decode one chunk picked at random (what reading one training window costs, file open
included for video), and the error: `max_abs_error` (grey levels) and PSNR of the decoded frames.
zstd: levels 3, 9 (the store's default) and 19, and level 9 after a frame-to-frame delta. Video
(PyAV, one container per chunk): lossless libx264rgb (crf 0) and FFV1, libx264 yuv444p at crf 0,
libx264 yuv420p at crf 10 (near-lossless by the usual measure), libsvtav1 yuv420p at crf 20 (LeRobot's codec).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import av
import numpy as np
import zstandard

from playworld.data.chunks import chunk_frames, encode
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.metrics import pooled_psnr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

WORLDS = (("explorer", 10, 200), ("physics/collision", 20, None), ("gym:ALE/Pong-v5", 3, 300))
VIDEO = {  # name: (encoder, pixel format, options, container)
    "libx264rgb crf0 (lossless)": ("libx264rgb", "rgb24", {"crf": "0", "preset": "veryfast"}, "mp4"),
    "ffv1 (lossless)": ("ffv1", "bgr0", {}, "matroska"),
    "libx264 yuv444p crf0": ("libx264", "yuv444p", {"crf": "0", "preset": "veryfast"}, "mp4"),
    "libx264 yuv420p crf10": ("libx264", "yuv420p", {"crf": "10", "preset": "veryfast"}, "mp4"),
    "libsvtav1 yuv420p crf20": ("libsvtav1", "yuv420p", {"crf": "20", "preset": "8"}, "mp4"),
}


def chunks_of(episodes: list[np.ndarray]) -> list[np.ndarray]:
    size = chunk_frames(episodes[0][0].nbytes)
    return [e[s : s + size] for e in episodes for s in range(0, len(e), size)]


def measure(blobs: list, decode, chunks: list[np.ndarray], seconds: float, rng: np.random.Generator) -> dict:
    """Ratio, the decode time of a random chunk, and the error of every chunk decoded."""
    raw = sum(c.nbytes for c in chunks)
    decoded = [decode(b) for b in blobs]
    err = max(int(np.abs(d.astype(np.int16) - c).max()) for d, c in zip(decoded, chunks))
    psnr = pooled_psnr(np.concatenate(decoded), np.concatenate(chunks))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        decode(blobs[int(rng.integers(len(blobs)))])
        n += 1
    return {"ratio": round(raw / sum(len(b) for b in blobs), 1), "bytes": sum(len(b) for b in blobs),
            "decode_chunk_ms": round((time.perf_counter() - t0) / n * 1000, 3), "max_abs_error": err,
            "psnr_db": round(min(float(psnr), 100.0), 2)}


def zstd_codec(chunks: list[np.ndarray], level: int, delta: bool, seconds: float, rng) -> dict:
    shape = chunks[0].shape[1:]
    t0 = time.perf_counter()
    if delta:
        cz = zstandard.ZstdCompressor(level=level)
        blobs = [cz.compress(np.diff(c, axis=0, prepend=np.zeros((1, *shape), np.uint8)).tobytes()) for c in chunks]
    else:
        blobs = [encode(c, level)[0] for c in chunks]  # the store's own file format, one file per chunk here
    enc = time.perf_counter() - t0
    dz = zstandard.ZstdDecompressor()

    def decode(b):
        if delta:
            return np.cumsum(np.frombuffer(dz.decompress(b), np.uint8).reshape(-1, *shape), axis=0, dtype=np.uint8)
        head = int.from_bytes(b[8:12], "little")
        return np.frombuffer(dz.decompress(b[12 + head :]), np.uint8).reshape(-1, *shape)  # one chunk per blob

    out = measure(blobs, decode, chunks, seconds, rng)
    return {**out, "encode_mb_s": round(sum(c.nbytes for c in chunks) / enc / 1e6, 1)}


def video_codec(chunks: list[np.ndarray], name: str, seconds: float, rng) -> dict:
    encoder, pix, options, fmt = VIDEO[name]
    if encoder not in av.codecs_available:
        return {"skipped": f"PyAV here has no {encoder}"}
    t0, blobs = time.perf_counter(), []
    for c in chunks:
        buf = io.BytesIO()
        with av.open(buf, "w", format=fmt) as container:
            stream = container.add_stream(encoder, rate=10, options=options)
            stream.width, stream.height, stream.pix_fmt = c.shape[2], c.shape[1], pix
            for f in c:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
            container.mux(stream.encode(None))
        blobs.append(buf.getvalue())
    enc = time.perf_counter() - t0

    def decode(b):
        with av.open(io.BytesIO(b)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])

    out = measure(blobs, decode, chunks, seconds, rng)
    return {**out, "encode_mb_s": round(sum(c.nbytes for c in chunks) / enc / 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=1, seed=0, out="/tmp/frame_codecs")])
    ap.add_argument("--data", type=Path, action="append", default=[], help="dataset(s) to measure (repeatable)")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds to time random chunk decodes per codec")
    ap.add_argument("--codecs", default="all", help="comma-separated codec names to run (default: all)")
    args = ap.parse_args()
    common.start(args)
    paths = args.data
    if not paths:
        for world, episodes, steps in WORLDS:
            path = args.out / world.replace("/", "_").replace(":", "_")
            if not (path / "manifest.json").exists():
                collect(world, path, episodes, seed=args.seed, resolution=64, steps=steps, progress=False)
            paths.append(path)
    rng = np.random.default_rng(args.seed)
    zstd = {f"zstd-{lv}" + (" + frame delta" if d else ""): (lv, d) for lv, d in ((3, False), (9, False), (19, False), (9, True))}
    wanted = set(zstd) | set(VIDEO) if args.codecs == "all" else set(args.codecs.split(","))
    results = {}
    for path in paths:
        ds = Dataset(path)
        chunks = chunks_of([np.asarray(ds.load_episode(e).frames) for e in ds.episode_ids()])
        row = {"frames": ds.num_frames, "resolution": ds.resolution, "chunk_frames": chunk_frames(chunks[0][0].nbytes),
               "raw_bytes": sum(c.nbytes for c in chunks), "codecs": {}}
        for name, (level, delta) in zstd.items():
            if name in wanted:
                row["codecs"][name] = zstd_codec(chunks, level, delta, args.seconds, rng)
        for name in VIDEO:
            if name in wanted:
                row["codecs"][name] = video_codec(chunks, name, args.seconds, rng)
        results[ds.world] = row
        print(f"[frame_codecs] {ds.world}: done", file=sys.stderr, flush=True)
    common.report("frame_codecs", {"datasets": results}, args)


if __name__ == "__main__":
    main()
