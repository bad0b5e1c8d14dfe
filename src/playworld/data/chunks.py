"""Frames stored as zstd-compressed chunks: one file per episode, any frame read by decoding one chunk.

    frames.chunks = MAGIC (8 bytes) | header length (uint32, little-endian) | header (JSON) | chunk 0 | chunk 1 | ...

The header is {"shape": [T, H, W, 3], "dtype": "uint8", "chunk": frames per chunk, "codec": "zstd",
"level": L, "sizes": [bytes of each compressed chunk]}. Chunk i holds frames[i*chunk : (i+1)*chunk],
the raw bytes as one zstd frame that carries its content size and checksum (xxhash64): a flipped
bit is caught when that chunk is read, not only by `playworld data verify` (which hashes whole files).

Why chunks of zstd and not video (`bench/speed/frame_codecs.py`, docs/results.md "Dataset store"):
at 64x64, zstd-9 chunks are lossless and 230x (explorer), 48x (physics), 129x (Pong) smaller than
raw, and decode in 0.1-0.4 ms a chunk. Lossless video in the same chunks (libx264rgb, FFV1) is
2.5-13x larger and 25-100x slower to decode (9-33 ms: the container costs more than the pixels);
yuv444p H.264 is as large and still off by 2 grey levels; 4:2:0 H.264/AV1 is smaller only on
physics and Pong, and moves flat-colour pixels by 73-236 grey levels (chroma subsampling).

Reading: `ChunkedFrames(path)` reads the header only; indexing (`frames[t]`, `frames[a:b]`) decodes
the chunks it touches. Decoded chunks live in one process-wide LRU of `CACHE_BYTES`, so sequential
readers decode each chunk once and memory stays bounded however many episodes are open. Arrays
handed out are read-only, as a read-only memory map's are.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import zstandard

from playworld.errors import PlayworldError

MAGIC = b"PWCHUNK\x01"
CODEC = "zstd"
DEFAULT_LEVEL = 9
"""zstd level: 1.5x smaller than level 3 on explorer, still encodes > 300 MB/s, decodes as fast"""
TARGET_CHUNK_BYTES = 1 << 19
"""a chunk decodes to at most ~512 KB: 32 frames at 64x64, 8 at 128x128, 2 at 256x256"""
MAX_CHUNK_FRAMES = 64
CACHE_BYTES = 64 << 20
"""decoded chunks kept per process (all episodes together)"""
_PREFIX = struct.Struct("<8sI")


def chunk_frames(frame_bytes: int) -> int:
    """Frames per chunk for frames of `frame_bytes` bytes: the largest power of two that fits the target."""
    n = max(1, min(MAX_CHUNK_FRAMES, TARGET_CHUNK_BYTES // max(1, frame_bytes)))
    return 1 << (n.bit_length() - 1)


def encode(frames: np.ndarray, level: int = DEFAULT_LEVEL) -> tuple[bytes, dict]:
    """frames (T, ...) -> (the file's bytes, its header)."""
    frames = np.ascontiguousarray(frames)
    chunk = chunk_frames(frames[0].nbytes if len(frames) else 1)
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
    blobs = [compressor.compress(frames[s : s + chunk].tobytes()) for s in range(0, len(frames), chunk)]
    header = {"shape": list(frames.shape), "dtype": str(frames.dtype), "chunk": chunk, "codec": CODEC,
              "level": int(level), "sizes": [len(b) for b in blobs]}
    head = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([_PREFIX.pack(MAGIC, len(head)), head, *blobs]), header


class _ChunkCache:
    """Decoded chunks, least recently used dropped first, at most `limit` bytes in all."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        with self._lock:
            if key in self._items or value.nbytes > self.limit:
                return
            self._items[key] = value
            self.used += value.nbytes
            while self.used > self.limit:
                self.used -= self._items.popitem(last=False)[1].nbytes


_CACHE = _ChunkCache(CACHE_BYTES)


class ChunkedFrames:
    """The frames of one `frames.chunks` file, read lazily; indexes like a read-only (T, H, W, C) array."""

    def __init__(self, path: str | Path, fix: str = "run `playworld data verify` on the dataset"):
        self.path, self.fix = Path(path), fix
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                magic, n = _PREFIX.unpack(f.read(_PREFIX.size))
                header = json.loads(f.read(n)) if magic == MAGIC and n < 1 << 24 else None
        except FileNotFoundError:
            raise PlayworldError(f"frames file {self.path} is missing", fix) from None
        except (struct.error, ValueError, UnicodeDecodeError, OSError):
            header = None
        if not _valid_header(header):
            raise PlayworldError(f"frames file {self.path} is not a playworld chunk file or its header is damaged", fix)
        self.header = header
        self.shape = tuple(header["shape"])
        self.dtype = np.dtype(header["dtype"])
        self.chunk = int(header["chunk"])
        sizes = np.array(header["sizes"], np.int64)
        self._offsets = _PREFIX.size + n + np.concatenate([[0], np.cumsum(sizes)])
        if st.st_size != self._offsets[-1]:
            raise PlayworldError(
                f"frames file {self.path} is truncated or overwritten: {st.st_size} bytes, its header promises "
                f"{int(self._offsets[-1])}", fix)
        self._identity = (str(self.path), st.st_ino, st.st_mtime_ns, st.st_size)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    nbytes = property(lambda self: self.size * self.dtype.itemsize)
    num_chunks = property(lambda self: len(self._offsets) - 1)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ChunkedFrames({str(self.path)!r}, shape={self.shape}, chunk={self.chunk})"

    def read_chunk(self, i: int) -> np.ndarray:
        """Chunk `i` decoded: frames[i*chunk : (i+1)*chunk], read-only."""
        key = (*self._identity, i)
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        start, end = int(self._offsets[i]), int(self._offsets[i + 1])
        with open(self.path, "rb") as f:
            f.seek(start)
            blob = f.read(end - start)
        rows = min(self.chunk, self.shape[0] - i * self.chunk)
        want = rows * int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        try:
            raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=want)
        except zstandard.ZstdError as e:
            raise PlayworldError(f"frames file {self.path}: chunk {i} fails its checksum or does not decode ({e})",
                                 self.fix) from None
        if len(raw) != want:
            raise PlayworldError(f"frames file {self.path}: chunk {i} decodes to {len(raw)} bytes, expected {want}", self.fix)
        arr = np.frombuffer(raw, self.dtype).reshape(rows, *self.shape[1:])  # read-only: frombuffer over bytes
        _CACHE.put(key, arr)
        return arr

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """frames[start:stop] for 0 <= start <= stop <= T."""
        if start >= stop:
            return np.empty((0, *self.shape[1:]), self.dtype)
        first, last = start // self.chunk, (stop - 1) // self.chunk
        if first == last:
            base = first * self.chunk
            return self.read_chunk(first)[start - base : stop - base]
        parts = [self.read_chunk(i) for i in range(first, last + 1)]
        return np.concatenate(parts)[start - first * self.chunk : stop - first * self.chunk]

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            t = int(key) + n if key < 0 else int(key)
            if not 0 <= t < n:
                raise IndexError(f"frame {key} out of range for {n} frames")
            return self._rows(t, t + 1)[(0, *rest)]
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(n)
            out = self._rows(start, max(start, stop))
        else:
            idx = np.arange(n)[key]
            out = np.stack([self._rows(int(t), int(t) + 1)[0] for t in idx]) if idx.size else self._rows(0, 0)
        return out[(slice(None), *rest)] if rest else out

    def __iter__(self):
        for i in range(self.num_chunks):
            yield from self.read_chunk(i)

    def __array__(self, dtype=None, copy=None):
        out = self._rows(0, self.shape[0])
        return out.astype(dtype) if dtype is not None else out

    def check(self) -> str | None:
        """Decode every chunk; the first problem as text, else None."""
        try:
            for i in range(self.num_chunks):
                self.read_chunk(i)
        except PlayworldError as e:
            return e.message
        return None


def _valid_header(h) -> bool:
    try:
        shape, sizes, chunk = h["shape"], h["sizes"], h["chunk"]
        ok = (h["codec"] == CODEC and isinstance(shape, list) and len(shape) >= 1
              and all(type(s) is int and s >= 0 for s in shape) and type(chunk) is int and chunk >= 1
              and isinstance(sizes, list) and all(type(s) is int and s > 0 for s in sizes)
              and len(sizes) == -(-shape[0] // chunk))
        np.dtype(h["dtype"])
        return bool(ok)
    except (KeyError, TypeError, ValueError):
        return False
