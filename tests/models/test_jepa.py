"""The jepa family: collapse guards (and a check that fails on a collapsed encoder), the EMA target,
stop-gradients, masking, the latent state, action spaces, bad settings."""

from __future__ import annotations

import copy

import pytest
import torch

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec, frames_to_unit
from playworld.models.jepa import effective_rank, spread
from playworld.models.registry import get_family
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

DEBUG_K = resolve_context(load_preset("debug"))
RES = 32
SPACES = {"discrete": ActionSpace.discrete(5), "continuous": ActionSpace.continuous([-1.0], [1.0]), "none": ActionSpace.none()}


def _build(kind: str = "discrete", seed: int = 0, **overrides):
    family = get_family("jepa")
    config = make_model_config(family, load_preset("debug"), overrides)
    spec = WorldSpec(resolution=RES, action_space=SPACES[kind], context=DEBUG_K)
    torch.manual_seed(seed)
    return family, config, spec, family.build(config, spec)


def _batch(space: ActionSpace, f: int, b: int = 8, seed: int = 0) -> Batch:
    """Windows of a square that the actions move over a background of random colour: every frame differs."""
    g = torch.Generator().manual_seed(seed)
    t = DEBUG_K + f
    if space.kind == "continuous":
        actions = torch.rand(b, t, 1, generator=g) * 2 - 1
        moves = (actions[..., 0] > 0).long() + 3
    else:
        actions = torch.randint(space.n, (b, t), generator=g)
        moves = actions if space.kind == "discrete" else torch.zeros_like(actions)
    frames = torch.zeros(b, t, 3, RES, RES, dtype=torch.uint8)
    for i in range(b):
        bg = torch.randint(0, 120, (3,), generator=g, dtype=torch.uint8)
        y, x = (int(v) for v in torch.randint(4, RES - 12, (2,), generator=g))
        for j in range(t):
            m = int(moves[i, j])
            y, x = min(max(y + 2 * ((m == 2) - (m == 1)), 0), RES - 8), min(max(x + 2 * ((m == 4) - (m == 3)), 0), RES - 8)
            frames[i, j] = bg[:, None, None]
            frames[i, j, :, y:y + 8, x:x + 8] = 255
    return Batch(context_frames=frames[:, :DEBUG_K], context_actions=actions[:, :DEBUG_K], future_actions=actions[:, DEBUG_K:],
                 future_frames=frames[:, DEBUG_K:], future_rewards=torch.zeros(b, f),
                 future_terminated=torch.zeros(b, f, dtype=torch.bool))


def _train(steps: int = 80, **overrides):
    family, config, spec, net = _build(**overrides)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=3e-3)
    logs = {}
    for step in range(steps):
        loss, logs = family.loss(net, _batch(spec.action_space, config.horizon, seed=step), config, step,
                                 torch.Generator().manual_seed(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return family, config, spec, net.eval(), logs


@pytest.fixture(scope="module")
def trained():
    return _train()


# -- collapse ---------------------------------------------------------------------------------------
def assert_not_collapsed(encoder: torch.nn.Module, frames: torch.Tensor) -> None:
    """The encoder's representations of different frames must differ: per token and channel, their std over
    the frames (tokens are layer-normalised: up to 1) and the effective rank of the token covariance."""
    with torch.no_grad():
        z = encoder(frames_to_unit(frames))
    s, rank = float(spread(z)), float(effective_rank(z))
    assert s > 0.2 and rank > 2.0, f"collapsed representation: std over frames {s:.3f}, effective rank {rank:.2f}"


def _collapsed(encoder: torch.nn.Module) -> torch.nn.Module:
    """The same encoder with its last layer's weights zeroed: every frame maps to the one grid its bias makes."""
    out = copy.deepcopy(encoder)
    last = out.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.randn_like(last.bias))
    return out


def test_a_trained_encoder_is_not_collapsed_and_logs_its_spread(trained):
    _, config, spec, net, logs = trained
    frames = torch.cat([_batch(spec.action_space, config.horizon, seed=999).context_frames.flatten(0, 1)])
    assert_not_collapsed(net.encoder, frames)
    assert_not_collapsed(net.target, frames)  # the EMA copy the targets come from, too
    assert logs["std"] > 0.2 and logs["erank"] > 2.0  # what training logs, every step


def test_the_collapse_check_fails_on_a_collapsed_encoder(trained):
    _, config, spec, net, _ = trained
    frames = _batch(spec.action_space, config.horizon, seed=999).context_frames.flatten(0, 1)
    with pytest.raises(AssertionError, match="collapsed representation"):
        assert_not_collapsed(_collapsed(net.encoder), frames)


def test_collapse_minimises_prediction_and_the_guards_see_it(trained):
    """A collapsed encoder predicts perfectly (tf = rollout = 0): the loss alone would drive to it. The
    logged std and effective rank read 0 and 1, and the variance guard is at its largest, var_floor."""
    family, config, spec, net, _ = trained
    collapsed = copy.deepcopy(net)
    collapsed.encoder, collapsed.target = _collapsed(net.encoder), _collapsed(net.encoder)
    collapsed.target.load_state_dict(collapsed.encoder.state_dict())
    batch = _batch(spec.action_space, config.horizon, seed=5)
    with torch.no_grad():
        _, bad = family.loss(collapsed, batch, config, 0, torch.Generator().manual_seed(0))
        _, good = family.loss(net, batch, config, 0, torch.Generator().manual_seed(0))
    assert bad["std"] < 1e-3 and bad["erank"] < 1.5
    assert bad["var"] == pytest.approx(config.var_floor, abs=0.02) and good["var"] < 0.5 * config.var_floor
    assert bad["tf"] < 0.3 * good["tf"] and bad["rollout"] < 0.3 * good["rollout"]


# -- the EMA target and stop-gradients -----------------------------------------------------------------
def test_the_target_moves_only_by_its_ema_step():
    family, config, spec, net = _build()
    assert not any(p.requires_grad for p in net.target.parameters())
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = [p.clone() for p in net.target.parameters()]
    online = [p.clone() for p in net.encoder.parameters()]
    batch = _batch(spec.action_space, config.horizon)
    with torch.no_grad():  # evaluation: the target stays
        family.loss(net, batch, config, 0, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(before, net.target.parameters()))
    loss, _ = family.loss(net.train(), batch, config, 0, torch.Generator().manual_seed(0))
    d = config.target_decay
    for b, o, t in zip(before, online, net.target.parameters()):
        assert torch.allclose(t, d * b + (1 - d) * o, atol=1e-6)
    loss.backward()
    assert all(p.grad is None for p in net.target.parameters())  # stop-gradient: no loss reaches the target


def test_the_probe_reads_under_stop_gradient():
    family, config, spec, net = _build(tf_scale=0.0, rollout_scale=0.0, var_scale=0.0)
    loss, _ = family.loss(net, _batch(spec.action_space, config.horizon), config, 0, torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in net.encoder.parameters())  # the pixel loss never shapes it
    assert all(p.grad is None or not p.grad.any() for p in net.predictor.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.decoder.parameters())


def test_masking_blanks_whole_patches():
    _, _, spec, net = _build(mask_ratio=0.5)
    frames = frames_to_unit(_batch(spec.action_space, 2, b=4).context_frames)
    masked = net.mask(frames, 0.5, torch.Generator().manual_seed(0))
    p = RES // net.side
    changed = (masked != frames).any(2).unflatten(-1, (net.side, p)).unflatten(-3, (net.side, p)).any(-1).any(-2)  # (B, T, h, w)
    assert 0.3 < changed.float().mean() < 0.7
    kept = ~(masked == net.mask_token.to(frames.dtype)).all(2)  # pixels not blanked are the frame's own
    assert torch.equal(masked.movedim(2, -1)[kept], frames.movedim(2, -1)[kept])


# -- the world model -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(SPACES))
def test_every_action_space_trains_and_steps(kind):
    family, config, spec, net = _build(kind)
    batch = _batch(spec.action_space, config.horizon, b=2)
    loss, logs = family.loss(net, batch, config, 0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and all(isinstance(v, float) for v in logs.values())
    model = family.world_model(net.eval(), config, spec)
    state = model.reset(batch.context_frames, batch.context_actions, seed=0)
    a, fa = model.step(state, batch.future_actions[:, 0])
    _, fb = model.step(model.reset(batch.context_frames, batch.context_actions, seed=7), batch.future_actions[:, 0])
    assert fa.shape == (2, 3, RES, RES) and fa.dtype == torch.uint8 and torch.equal(fa, fb)  # deterministic
    advanced = model.advance(state, batch.future_actions[:, 0])  # LatentState, in every action space
    assert torch.equal(model.features(advanced), model.features(a)) and model.features(a).shape == (2, model.feature_dim)
    assert model.features(model.observe(state, fa, batch.future_actions[:, 0])).shape == (2, model.feature_dim)


def test_the_latent_is_the_newest_representation_and_observe_encodes_the_real_frame(trained):
    family, config, spec, net, _ = trained
    model = family.world_model(net, config, spec)
    batch = _batch(spec.action_space, config.horizon, b=3)
    state = model.reset(batch.context_frames, batch.context_actions)
    assert model.feature_dim == config.dim * (RES // config.patch) ** 2
    with torch.no_grad():
        encoded = net.encoder(frames_to_unit(batch.context_frames[:, -1]))
    assert torch.allclose(model.features(state), encoded.flatten(1))
    seen = model.observe(state, batch.future_frames[:, 0], batch.future_actions[:, 0])
    with torch.no_grad():
        assert torch.allclose(model.features(seen), net.encoder(frames_to_unit(batch.future_frames[:, 0])).flatten(1))


@pytest.mark.parametrize("bad,match", [({"patch": 3}, "power of two"), ({"mask_ratio": 1.0}, "mask_ratio"),
                                       ({"target_decay": 1.0}, "target_decay"), ({"dim": 0}, "dim")])
def test_bad_settings_are_errors(bad, match):
    with pytest.raises(PlayworldError, match=match):
        _build(**bad)


def test_a_resolution_the_patch_does_not_divide_is_an_error():
    family = get_family("jepa")
    config = make_model_config(family, load_preset("debug"), {"patch": 8})
    with pytest.raises(PlayworldError, match="not divisible"):
        family.build(config, WorldSpec(resolution=36, action_space=SPACES["discrete"], context=DEBUG_K))
