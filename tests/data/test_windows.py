import numpy as np
import pytest
import torch
from synthetic_data import synthetic_episode

from playworld.data.store import Dataset
from playworld.data.windows import WindowSampler, make_loader
from playworld.errors import PlayworldError


def _key(frame) -> tuple[int, int]:
    """(episode, t) encoded in pixel (0, 0) of a channels-first frame."""
    return int(frame[0, 0, 0]), int(frame[1, 0, 0])


def test_window_contents_follow_time_convention(synthetic):
    ds = Dataset(synthetic([9, 4, 12, 3]))
    k, f = 3, 2
    sampler = WindowSampler(ds, context=k, horizon=f, split=None)
    # t runs from K to T-F: T - K - F + 1 windows per episode; the 3-frame episode has none
    assert len(sampler) == (9 - 5 + 1) + 0 + (12 - 5 + 1) + 0
    seen = set()
    for i in range(len(sampler)):
        ep, t = sampler.locate(i)
        seen.add((ep, t))
        b = sampler.get(i)
        assert b.size == 1 and b.context_frames.shape == (1, k, 3, 32, 32) and b.future_frames.shape == (1, f, 3, 32, 32)
        assert b.context_frames.dtype == torch.uint8 and b.context_actions.dtype == torch.int64
        want = synthetic_episode(ep, ds.episode_length(ep))
        assert [_key(x) for x in b.context_frames[0]] == [(ep, s) for s in range(t - k, t)]
        assert [_key(x) for x in b.future_frames[0]] == [(ep, s) for s in range(t, t + f)]
        np.testing.assert_array_equal(b.context_actions[0].numpy(), want["actions"][t - k : t])
        np.testing.assert_array_equal(b.future_actions[0].numpy(), want["actions"][t : t + f])
        np.testing.assert_array_equal(b.future_rewards[0].numpy(), want["rewards"][t : t + f])
        np.testing.assert_array_equal(b.future_terminated[0].numpy(), want["terminated"][t : t + f])
        np.testing.assert_array_equal(
            b.future_frames[0, 0].permute(1, 2, 0).numpy(), want["frames"][t])  # channels-first, exact pixels
    assert seen == {(0, t) for t in range(3, 8)} | {(2, t) for t in range(3, 11)}


def test_sample_and_split(synthetic):
    ds = Dataset(synthetic([10] * 12))
    sampler = WindowSampler(ds, 2, 1, split="val")
    b = sampler.sample(16, np.random.default_rng(0))
    assert b.size == 16
    assert {_key(x)[0] for x in b.future_frames[:, 0]} <= set(ds.episode_ids("val"))
    b2 = sampler.sample(16, np.random.default_rng(0))
    assert torch.equal(b.future_frames, b2.future_frames)


def test_no_windows_error_says_why(synthetic):
    ds = Dataset(synthetic([4, 4]))
    with pytest.raises(PlayworldError, match=r"split 'train'.*1 episode.*needs 6") as err:
        WindowSampler(ds, context=4, horizon=2)
    assert "--steps" in err.value.fix


def _stream(loader, n):
    return [tuple(_key(x) for x in b.future_frames[:, 0]) for b in (next(loader) for _ in range(n))]


def test_loader_deterministic_and_covers_epoch(synthetic):
    ds = Dataset(synthetic([10] * 6))
    n = len(WindowSampler(ds, 2, 1, split=None))
    a = _stream(make_loader(ds, 2, 1, batch_size=5, split=None, seed=3), 12)
    assert a == _stream(make_loader(ds, 2, 1, batch_size=5, split=None, seed=3), 12)
    assert a != _stream(make_loader(ds, 2, 1, batch_size=5, split=None, seed=4), 12)
    flat = [w for batch in a for w in batch]
    assert len(set(flat[:n])) == n  # the first epoch is a permutation of every window


def test_loader_rank_shards_disjoint(synthetic):
    ds = Dataset(synthetic([10] * 6))
    n = len(WindowSampler(ds, 2, 1, split=None))  # 6 * 8 = 48 windows, 16 per rank per epoch
    shards = [[w for b in _stream(make_loader(ds, 2, 1, 4, split=None, seed=1, rank=r, world_size=3), 4) for w in b]
              for r in range(3)]
    assert all(len(set(s)) == 16 for s in shards)
    assert len(set().union(*map(set, shards))) == n


def test_loader_workers_same_order(synthetic):
    ds = Dataset(synthetic([10] * 6))
    single = _stream(make_loader(ds, 2, 1, 4, split=None, seed=5), 7)
    assert _stream(make_loader(ds, 2, 1, 4, split=None, seed=5, num_workers=2), 7) == single
