"""The compressed frames file: lossless, indexes like the array it holds, bounded memory, clear errors."""

import numpy as np
import pytest

from playworld.data import chunks
from playworld.data.chunks import ChunkedFrames, chunk_frames, encode
from playworld.errors import PlayworldError


@pytest.fixture
def stored(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (75, 16, 16, 3), dtype=np.uint8)
    frames[::3] = 7  # something to compress
    path = tmp_path / "frames.chunks"
    path.write_bytes(encode(frames, level=3)[0])
    return frames, path


def test_chunk_sizes_follow_the_frame_size():
    assert [chunk_frames(r * r * 3) for r in (16, 32, 64, 128, 256)] == [64, 64, 32, 8, 2]


def test_indexes_like_the_array(stored):
    frames, path = stored
    got = ChunkedFrames(path)
    assert got.chunk == 64 and got.num_chunks == 2 and len(got) == 75
    assert got.shape == frames.shape and got.dtype == frames.dtype and got.ndim == 4 and got.nbytes == frames.nbytes
    np.testing.assert_array_equal(np.asarray(got), frames)
    for key in (0, 63, 64, -1, -75, slice(None), slice(60, 70), slice(-5, None), slice(10, 5), slice(0, 75, 7),
                slice(None, None, -1), [3, 70, 3], np.array([74, 0]), (5, 2), (slice(62, 66), 0, slice(None), 1)):
        np.testing.assert_array_equal(got[key], frames[key], err_msg=str(key))
    np.testing.assert_array_equal(np.stack(list(got)), frames)
    with pytest.raises(IndexError):
        got[75]
    assert not got[3].flags.writeable  # read-only, like a read-only memory map: the cache cannot be changed


def test_decoded_chunks_share_one_bounded_cache(stored, monkeypatch):
    frames, path = stored
    cache = chunks._ChunkCache(limit=frames[:64].nbytes + 100)  # room for one full chunk
    monkeypatch.setattr(chunks, "_CACHE", cache)
    a, b = ChunkedFrames(path), ChunkedFrames(path)
    a[0], b[1]
    assert len(cache._items) == 1  # the same chunk of the same file is decoded once for both readers
    a[70]
    assert cache.used <= cache.limit and len(cache._items) == 1


def test_truncated_and_damaged_files(stored):
    frames, path = stored
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(PlayworldError, match="frames.chunks is truncated or overwritten"):
        ChunkedFrames(path)
    path.write_bytes(b"not a chunk file at all")
    with pytest.raises(PlayworldError, match="not a playworld chunk file"):
        ChunkedFrames(path)
    damaged = bytearray(data)
    damaged[-50] ^= 0xFF
    path.write_bytes(bytes(damaged))
    got = ChunkedFrames(path)
    np.testing.assert_array_equal(got[:64], frames[:64])
    with pytest.raises(PlayworldError, match="chunk 1 fails its checksum"):
        got[64]
    assert "chunk 1" in got.check()
