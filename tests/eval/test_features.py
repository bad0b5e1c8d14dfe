"""The domain encoder's parts: clip handling, the network, caching of helper networks, train-data checks."""

from __future__ import annotations

import pytest
import torch
from eval_fixtures import make_ctx, tiny_explorer
from torch import nn

from playworld.eval.api import TooFewEpisodes
from playworld.eval.features import (
    ClipEncoder, EncoderConfig, cached_network, cut_clips, dataset_key, embed, shuffle_frames, to_unit, train_windows,
)


def test_shuffle_frames_is_never_the_identity_and_keeps_the_frames():
    clips = torch.arange(200 * 4).view(200, 4, 1, 1, 1).float()  # frame values encode (clip, position)
    out = shuffle_frames(clips, torch.Generator().manual_seed(0))
    assert not (out == clips).flatten(1).all(1).any()
    assert torch.equal(out.sort(1).values, clips)
    assert torch.equal(out, shuffle_frames(clips, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError):
        shuffle_frames(clips[:, :1], torch.Generator())


def test_cut_clips_and_to_unit():
    frames = torch.randint(0, 256, (2, 17, 3, 64, 64), dtype=torch.uint8)
    clips = cut_clips(frames, 8)
    assert clips.shape == (4, 8, 3, 64, 64) and torch.equal(clips[1], frames[0, 8:16]) and torch.equal(clips[2], frames[1, :8])
    x = to_unit(clips, 32)
    assert x.shape == (4, 8, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    flat = torch.full((1, 3, 64, 64), 255, dtype=torch.uint8)
    assert torch.allclose(to_unit(flat, 32), torch.ones(1, 3, 32, 32))


def test_encoder_shapes_and_time_sensitivity_of_the_input():
    cfg = EncoderConfig(clip=4, width=8, dim=16)
    enc = ClipEncoder(cfg).eval()
    clips = torch.randint(0, 256, (3, 4, 3, 64, 64), dtype=torch.uint8)
    assert embed(enc, clips).shape == (3, 16)
    with pytest.raises(ValueError):
        enc(clips[:, :3])
    # frames and their consecutive differences: the input itself changes when the order does
    x = to_unit(clips, 32)
    assert ClipEncoder.stack(x).shape == (3, 7 * 3, 32, 32)
    assert not torch.equal(ClipEncoder.stack(x), ClipEncoder.stack(x.flip(1)))


class _Ctx:
    def __init__(self, dataset, cache_dir):
        self.dataset, self.cache_dir, self.cache = dataset, cache_dir, {}


class _FakeData:
    def __init__(self, fingerprint):
        self.fingerprint = fingerprint


def test_cached_network_trains_once_then_loads_from_memory_and_disk(tmp_path):
    calls = []

    def train(net):
        calls.append(1)
        with torch.no_grad():
            net.weight.fill_(3.0)
        return {"note": "trained"}

    cfg = EncoderConfig(steps=1)
    ctx = _Ctx(_FakeData("abc"), tmp_path)
    net, info = cached_network(ctx, "toy", cfg, lambda: nn.Linear(2, 2), train)
    assert calls == [1] and info == {"note": "trained"} and not net.training
    assert cached_network(ctx, "toy", cfg, lambda: nn.Linear(2, 2), train)[0] is net  # in memory
    fresh = _Ctx(_FakeData("abc"), tmp_path)
    loaded, info2 = cached_network(fresh, "toy", cfg, lambda: nn.Linear(2, 2), train)  # from disk
    assert calls == [1] and torch.all(loaded.weight == 3.0) and info2["note"] == "trained"
    cached_network(_Ctx(_FakeData("other"), tmp_path), "toy", cfg, lambda: nn.Linear(2, 2), train)  # other data
    cached_network(fresh, "toy", EncoderConfig(steps=2), lambda: nn.Linear(2, 2), train)  # other config
    assert calls == [1, 1, 1]
    assert len(list(tmp_path.glob("toy-*.safetensors"))) == 3


def test_cached_network_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cached_network(_Ctx(_FakeData("x"), None), "toy", EncoderConfig(), lambda: nn.Linear(2, 2), lambda n: {"r": torch.rand(1).item()})
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_dataset_key_is_the_fingerprint():
    ds = tiny_explorer()
    assert dataset_key(ds) == ds.fingerprint and len(dataset_key(ds)) == 16


@pytest.mark.slow
def test_train_windows_requires_enough_train_data():
    ctx = make_ctx(tiny_explorer())
    assert len(train_windows(ctx, 8, "FD/KID", 256)) >= 256
    with pytest.raises(TooFewEpisodes, match="FD/KID needs 100000000 windows of 8 frames"):
        train_windows(ctx, 8, "FD/KID", 10**8)
    with pytest.raises(TooFewEpisodes, match="none"):
        train_windows(ctx, 10_000, "FD/KID", 1)
