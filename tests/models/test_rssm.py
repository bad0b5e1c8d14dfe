"""The rssm family: free bits, the reward head, action spaces, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.models.registry import get_family
from playworld.models.rssm.loss import categorical_kl, kl_terms
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

DEBUG_K = resolve_context(load_preset("debug"))  # K of the debug preset

RES = 32



def _build(space: ActionSpace, **overrides):
    family = get_family("rssm")
    config = make_model_config(family, load_preset("debug"), overrides)
    spec = WorldSpec(resolution=RES, action_space=space, context=DEBUG_K)
    torch.manual_seed(0)
    net = family.build(config, spec)
    return family, config, spec, net


def _actions(space: ActionSpace, b: int, t: int, g: torch.Generator) -> torch.Tensor:
    if space.kind == "continuous":
        return torch.rand(b, t, space.dim, generator=g) * 2 - 1
    return torch.randint(space.n, (b, t), generator=g)


def _batch(space: ActionSpace, k: int, f: int, b: int = 3, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        torch.randint(0, 256, (b, k, 3, RES, RES), dtype=torch.uint8, generator=g), _actions(space, b, k, g),
        _actions(space, b, f, g), torch.randint(0, 256, (b, f, 3, RES, RES), dtype=torch.uint8, generator=g),
        torch.rand(b, f, generator=g), torch.rand(b, f, generator=g) < 0.3,
    )


def test_free_bits_floor_the_kl_and_stop_its_gradient():
    logits = torch.randn(4, 8, 8).log_softmax(-1)
    post, prior = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    dyn, rep, raw = kl_terms(post, prior, free_nats=1.0)
    assert torch.allclose(raw, torch.zeros(4), atol=1e-6)
    assert torch.all(dyn == 1.0) and torch.all(rep == 1.0)  # the floor
    (dyn + rep).sum().backward()
    assert post.grad.abs().max() == 0 and prior.grad.abs().max() == 0  # below free bits: not optimised
    # far apart: the KL is above the floor and both terms pass gradient (dyn to the prior, rep to the posterior)
    far_prior = (torch.randn(4, 8, 8) * 4).log_softmax(-1).requires_grad_()
    post = logits.clone().requires_grad_()
    dyn, rep, raw = kl_terms(post, far_prior, free_nats=1.0)
    assert torch.all(raw > 1.0) and torch.allclose(dyn, categorical_kl(logits, far_prior.detach()))
    dyn.sum().backward()
    assert far_prior.grad.abs().max() > 0 and post.grad is None
    rep.sum().backward()
    assert post.grad.abs().max() > 0


@pytest.mark.parametrize("space", [ActionSpace.discrete(4), ActionSpace.continuous([-1, -2], [1, 2]), ActionSpace.none()],
                         ids=["discrete", "continuous", "none"])
def test_loss_and_imagination_in_every_action_space(space):
    family, config, spec, net = _build(space)
    batch = _batch(space, DEBUG_K, config.horizon)
    loss, logs = family.loss(net, batch, config, 0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and logs["dyn"] >= config.free_nats and logs["rep"] >= config.free_nats
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    model = family.world_model(net, config, spec)
    state = model.reset(batch.context_frames, batch.context_actions, seed=5)
    s1, f1 = model.step(state, batch.future_actions[:, 0])
    s2, f2 = model.step(state, batch.future_actions[:, 0])  # states are immutable: same step twice
    assert f1.shape == (3, 3, RES, RES) and f1.dtype == torch.uint8 and torch.equal(f1, f2)
    again = model.reset(batch.context_frames, batch.context_actions, seed=5)
    assert torch.equal(model.step(again, batch.future_actions[:, 0])[1], f1)
    assert model.predict_reward(s1).shape == (3,)
    cont = model.predict_continue(s1)
    assert cont.shape == (3,) and bool(((cont >= 0) & (cont <= 1)).all())


def test_bad_actions_and_options_are_errors():
    family, config, spec, net = _build(ActionSpace.discrete(4))
    model = family.world_model(net, config, spec)
    batch = _batch(ActionSpace.discrete(4), DEBUG_K, 1)
    state = model.reset(batch.context_frames, batch.context_actions)
    with pytest.raises(PlayworldError, match="does not fit"):
        model.step(state, torch.tensor([0, 4, 1]))
    with pytest.raises(PlayworldError, match="context actions"):
        model.reset(batch.context_frames, torch.zeros(3, DEBUG_K, 2))
    with pytest.raises(PlayworldError, match="unknown rssm model option"):
        family.make_config({"layers": 3})
    with pytest.raises(PlayworldError, match="classes"):
        family.make_config({"classes": 1})


@pytest.mark.slow
def test_reward_head_learns_a_simple_reward():
    """Reward 1 when the (imagined) frame is bright, 0 when dark; one step ahead, from the prior."""
    space = ActionSpace.discrete(2)  # action 1 turns the next frame bright, action 0 dark
    family, config, spec, net = _build(space, horizon=2)
    rng = np.random.default_rng(0)

    def batch(b: int) -> Batch:
        acts = torch.from_numpy(rng.integers(0, 2, (b, DEBUG_K + config.horizon)))
        frames = (acts * 200 + 20).to(torch.uint8)[:, :, None, None, None].expand(-1, -1, 3, RES, RES)
        k = DEBUG_K
        return Batch(frames[:, :k], acts[:, :k], acts[:, k:], frames[:, k:], acts[:, k:].float(),
                     torch.zeros(b, config.horizon, dtype=torch.bool))

    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(150):
        loss, logs = family.loss(net, batch(16), config, step, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model = family.world_model(net, config, spec)
    test = batch(32)
    state, _ = model.step(model.reset(test.context_frames, test.context_actions, seed=0), test.future_actions[:, 0])
    error = (model.predict_reward(state) - test.future_rewards[:, 0]).abs()
    assert float(error.mean()) < 0.2, logs
