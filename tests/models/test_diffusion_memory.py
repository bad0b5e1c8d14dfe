"""The diffusion family's memory (`model.memory=true`): what a playing model keeps, how it retrieves, and
that the network learns to use a memory frame."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from playworld.data.batch import Batch
from playworld.data.memory import thumbnails
from playworld.errors import PlayworldError
from playworld.models import diffusion, get_family
from playworld.models.diffusion.loss import edm_loss
from playworld.models.interface import WorldSpec, frames_to_unit
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

K = resolve_context(load_preset("debug"))
RES = 16


def _parts(**overrides):
    family = get_family("diffusion")
    config = dataclasses.replace(make_model_config(family, load_preset("debug")), memory=True, **overrides)
    spec = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=K)
    torch.manual_seed(0)
    net = family.build(config, spec)
    return family, config, spec, net


def _frames(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (b, t, 3, RES, RES), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_a_playing_model_keeps_the_frames_older_than_its_context():
    family, config, spec, net = _parts(memory_size=4)
    model = family.world_model(net, config, spec)
    frames = _frames(2, K + 3)
    state = model.reset(frames, torch.zeros(2, K + 3, dtype=torch.long), seed=0)
    assert torch.equal(state.memory, frames_to_unit(frames[:, :3]))
    assert torch.allclose(state.keys, thumbnails(frames[:, :3]))
    leaving = state.frames[:, 0].clone()
    state, _ = model.step(state, torch.tensor([1, 2]))
    assert state.memory.shape[1] == 4 and torch.equal(state.memory[:, -1], leaving)  # the frame that left the context
    for a in range(3):
        state, _ = model.step(state, torch.tensor([a, a]))
    assert state.memory.shape[1] == 4 and state.keys.shape[1] == 4  # the oldest went first
    # a context of K frames leaves nothing to remember at first
    state = model.reset(frames[:, -K:], torch.zeros(2, K, dtype=torch.long), seed=0)
    assert state.memory.shape[1] == 0


def test_play_retrieves_the_frame_nearest_its_draft(monkeypatch):
    family, config, spec, net = _parts()
    model = family.world_model(net, config, spec)
    calls = []
    condition = net.condition
    monkeypatch.setattr(net, "condition", lambda *a, **kw: calls.append(a[5] if len(a) > 5 else kw.get("memory")) or condition(*a, **kw))
    frames = _frames(2, K + 6, seed=1)
    actions = torch.zeros(2, K + 6, dtype=torch.long)
    state = model.reset(frames, actions, seed=3)
    _, frame = model.step(state, torch.tensor([1, 1]))
    assert len(calls) == 2 and calls[0] is None
    remembered, valid = calls[1]
    assert valid.all()
    # the draft is what the same network makes with no memory frame: a memory-less adapter around it
    draft_model = diffusion.DiffusionWorldModel(net, dataclasses.replace(config, memory=False), spec)
    _, draft = draft_model.step(draft_model.reset(frames, actions, seed=3), torch.tensor([1, 1]))
    expect = state.memory[torch.arange(2), ((state.keys - thumbnails(draft)[:, None]) ** 2).sum(-1).argmin(1)]
    assert torch.equal(remembered, expect)
    assert not torch.equal(frame, draft)  # the memory frame changed the frame played
    # with nothing remembered, one call
    calls.clear()
    model.step(model.reset(frames[:, -K:], actions[:, -K:], seed=3), torch.tensor([1, 1]))
    assert calls == [None]


def test_training_without_memory_frames_is_a_clear_error():
    _, config, _, net = _parts()
    frames = _frames(2, K + 1)
    batch = Batch(frames[:, :K], torch.zeros(2, K, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long), frames[:, K:],
                  torch.zeros(2, 1), torch.zeros(2, 1, dtype=torch.bool))
    with pytest.raises(PlayworldError, match="no memory frames"):
        edm_loss(net, batch, config)


def test_the_network_learns_to_copy_a_memory_frame_the_context_cannot_predict():
    """Targets are fresh random textures, shown only in the memory: with it the denoiser can copy them,
    without it (the same network, the memory withheld) it can only guess their mean."""
    family, config, spec, net = _parts(memory_dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)

    def batch(n: int) -> Batch:
        coarse = torch.randint(0, 256, (n, 1, 3, 4, 4), dtype=torch.uint8, generator=g)
        target = coarse.repeat_interleave(4, -1).repeat_interleave(4, -2)  # (n, 1, 3, RES, RES): smooth enough to learn fast
        context = torch.full((n, K, 3, RES, RES), 128, dtype=torch.uint8)
        return Batch(context, torch.zeros(n, K, dtype=torch.long), torch.zeros(n, 1, dtype=torch.long), target,
                     torch.zeros(n, 1), torch.zeros(n, 1, dtype=torch.bool), memory_frames=target.clone(),
                     memory_valid=torch.ones(n, 1, dtype=torch.bool))

    for _ in range(150):
        loss, _ = edm_loss(net, batch(16), config, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = family.world_model(net.eval(), config, spec)
    test = batch(32)
    context = torch.cat([test.memory_frames, test.context_frames], 1)  # the memory frame sits just before the context
    acts = torch.zeros(32, K + 1, dtype=torch.long)
    _, with_memory = model.step(model.reset(context, acts, seed=0), torch.zeros(32, dtype=torch.long))
    _, without = model.step(model.reset(test.context_frames, acts[:, -K:], seed=0), torch.zeros(32, dtype=torch.long))
    truth = test.future_frames[:, 0].float()
    mse_with, mse_without = F.mse_loss(with_memory.float(), truth), F.mse_loss(without.float(), truth)
    assert mse_with < 0.25 * mse_without, (float(mse_with), float(mse_without))
