"""Memory retrieval (playworld.data.memory): the key, the candidates, and what the loader hands out."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from playworld.data.memory import GRID, nearest, retrieve, thumbnails
from playworld.data.windows import WindowSampler, make_loader


def test_the_key_is_the_same_for_uint8_and_unit_frames():
    frames = torch.randint(0, 256, (2, 5, 3, 32, 32), dtype=torch.uint8)
    keys = thumbnails(frames)
    assert keys.shape == (2, 5, 3 * GRID * GRID) and keys.dtype == torch.float32
    assert torch.allclose(keys, thumbnails(frames.float() / 127.5 - 1), atol=1e-6)
    # a block's key is its mean colour: a frame that is one colour per 4x4 block keeps it exactly
    block = torch.rand(1, 3, GRID, GRID) * 2 - 1
    assert torch.allclose(thumbnails(block.repeat_interleave(4, 2).repeat_interleave(4, 3)), block.flatten(1), atol=1e-6)


def test_nearest_ignores_the_padding_beyond_each_rows_count():
    keys = torch.tensor([[[0.0], [5.0], [1.0]], [[9.0], [2.0], [2.1]]])
    query = torch.tensor([[0.9], [2.05]])
    assert nearest(keys, query).tolist() == [2, 1]
    assert nearest(keys, query, count=torch.tensor([2, 3])).tolist() == [0, 1]  # row 0 may not take key 2


def test_retrieve_finds_an_earlier_copy_of_the_target_and_never_a_context_frame():
    keys = torch.randn(20, 12)
    keys[15] = keys[3]  # frame 15 shows what frame 3 showed
    keys[14] = keys[13]  # and frame 14 what 13 did, which is inside 14's context
    index, valid = retrieve(keys, t=15, context=4, horizon=1)
    assert valid.tolist() == [True] and index.tolist() == [3]
    index, valid = retrieve(keys, t=14, context=4, horizon=1)  # candidates 0..9: not 13
    assert valid.tolist() == [True] and index[0] != 13 and index[0] < 10


@settings(max_examples=60, deadline=None)
@given(length=st.integers(2, 30), context=st.integers(1, 6), data=st.data())
def test_a_memory_frame_is_always_from_before_its_context(length, context, data):
    horizon = data.draw(st.integers(1, 4))
    if context + horizon > length:
        return
    t = data.draw(st.integers(context, length - horizon))
    keys = torch.randn(length, 6)
    index, valid = retrieve(keys, t, context, horizon)
    for j in range(horizon):
        end = t + j - context
        assert valid[j] == (end > 0)
        if valid[j]:
            assert 0 <= index[j] < end
            assert index[j] == int((keys[:end] - keys[t + j]).pow(2).sum(-1).argmin())


def test_the_loader_hands_out_the_retrieved_frames(synthetic):
    path = synthetic([12, 9])
    sampler = WindowSampler(path, context=2, horizon=3, split=None, memory=True)
    plain = WindowSampler(path, context=2, horizon=3, split=None)
    for index in range(len(sampler)):
        batch, same = sampler.get(index), plain.get(index)
        assert torch.equal(batch.future_frames, same.future_frames) and same.memory_frames is None
        ep, t = sampler.locate(index)
        frames = np.array(sampler.episode(ep).frames[:])
        expect, valid = retrieve(thumbnails(torch.from_numpy(frames).permute(0, 3, 1, 2)), t, 2, 3)
        assert batch.memory_valid[0].tolist() == valid.tolist()
        for j in range(3):
            got = batch.memory_frames[0, j].permute(1, 2, 0).numpy()
            # the synthetic frames say which (episode, t) they are in their first pixel
            assert (got == frames[expect[j]]).all() if valid[j] else not got.any()
    batch = next(make_loader(path, 2, 3, batch_size=4, split=None, memory=True))
    assert batch.memory_frames.shape == (4, 3, 3, 32, 32) and batch.memory_valid.shape == (4, 3)
    assert batch[1:3].memory_frames.shape[0] == 2
