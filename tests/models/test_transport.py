"""The diffusion family's learned transport: it moves the newest frame exactly, starts as the identity, and
learns a shift from the actions fast enough to matter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from playworld.errors import PlayworldError
from playworld.models.diffusion import Denoiser, DiffusionConfig
from playworld.models.diffusion.transport import Transport
from playworld.models.interface import WorldSpec
from playworld.spaces import ActionSpace

SPEC = WorldSpec(16, ActionSpace.discrete(3), context=2)


def _transport(radius: int = 2, patch: int = 4) -> Transport:
    torch.manual_seed(0)
    return Transport(SPEC, radius=radius, patch=patch, channels=16, action_dim=8, groups=4)


def _one_hot(radius: int, dy: int, dx: int, blocks: int = 4, batch: int = 2) -> torch.Tensor:
    n = 2 * radius + 1
    weights = torch.zeros(batch, n * n, blocks, blocks)
    weights[:, (dy + radius) * n + dx + radius] = 1.0
    return weights


@pytest.mark.parametrize("dy,dx", [(0, 0), (2, 0), (0, -1), (-2, 2)])
def test_a_one_hot_weight_moves_the_frame_by_that_displacement(dy, dx):
    t = _transport(radius=2)
    frame = torch.randn(2, 3, 16, 16)
    moved, inside = t.move(frame, _one_hot(2, dy, dx))
    expected = F.pad(frame, (2, 2, 2, 2), mode="replicate")[:, :, 2 + dy : 18 + dy, 2 + dx : 18 + dx]
    assert torch.allclose(moved, expected)
    # the share from inside the frame: 0 on the rows and columns brought in from beyond the edge, 1 elsewhere
    rows, cols = torch.arange(16) + dy, torch.arange(16) + dx
    known = ((rows >= 0) & (rows < 16))[:, None] & ((cols >= 0) & (cols < 16))[None, :]
    assert torch.equal(inside[:, 0], known.float().expand(2, 16, 16))


def test_weights_are_per_block():
    t = _transport(radius=1, patch=4)
    frame = torch.randn(1, 3, 16, 16)
    weights = _one_hot(1, 0, 0, batch=1)
    weights[:, :, 1, 2] = _one_hot(1, 0, 1, batch=1)[:, :, 1, 2]  # one block takes its pixels from one to the right
    moved, _ = t.move(frame, weights)
    padded = F.pad(frame, (1, 1, 1, 1), mode="replicate")
    assert torch.allclose(moved[:, :, 4:8, 8:12], padded[:, :, 5:9, 10:14])
    outside = torch.ones(16, 16, dtype=torch.bool)
    outside[4:8, 8:12] = False
    assert torch.allclose(moved[..., outside], frame[..., outside])


def test_it_starts_close_to_the_identity():
    t = _transport(radius=2)
    context, actions = torch.rand(4, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (4, 3))
    w = t.weights(context, actions).detach()
    assert w.shape == (4, 25, 4, 4) and torch.allclose(w.sum(1), torch.ones(4, 4, 4))
    assert float(w[:, 12].min()) > 0.5  # the centre ('stay') holds most of the weight


def _scroll_batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A world of 2 px cells that action 1 shifts 2 px left, action 2 2 px up, action 0 holds: context, actions, next."""
    world = (torch.rand(n, 3, 8, 8) > 0.5).float().repeat_interleave(2, -1).repeat_interleave(2, -2)  # 16 x 16, 2 px cells
    world = world * 2 - 1
    a = torch.randint(0, 3, (n,))
    shift = torch.stack([torch.zeros(n), torch.where(a == 2, 2, 0), torch.where(a == 1, 2, 0)], 1).long()
    padded = F.pad(world, (2, 2, 2, 2), mode="replicate")
    nxt = torch.stack([padded[i, :, 2 + s[1] : 18 + s[1], 2 + s[2] : 18 + s[2]] for i, s in enumerate(shift)])
    context = torch.stack([world, world], 1)
    actions = torch.stack([torch.zeros_like(a), torch.zeros_like(a), a], 1)
    return context, actions, nxt


def _fit_the_scroll(t: Transport, steps: int = 300, batch=None) -> tuple[float, float]:
    """Train `t` on its own loss over `batch`es (`_scroll_batch` by default); the MSE of its moved frame and of the
    frame as it was."""
    batch = batch or _scroll_batch
    opt = torch.optim.Adam(t.parameters(), 3e-3)
    for _ in range(steps):
        context, actions, nxt = batch()
        loss = F.mse_loss(t(context, actions, context[:, -1])[0], nxt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    context, actions, nxt = batch(64)
    with torch.no_grad():
        moved = F.mse_loss(t(context, actions, context[:, -1])[0], nxt).item()
    return moved, F.mse_loss(context[:, -1], nxt).item()


def test_it_learns_to_move_the_frame_the_way_the_action_says():
    """Action 1 shifts the world 2 px left, action 2 2 px up, action 0 holds it: a few hundred steps of the
    transport's own loss make the moved frame the next frame (the frame as it was is far off)."""
    torch.manual_seed(0)
    moved, held = _fit_the_scroll(_transport(radius=2))
    assert moved < 0.05 * held, (moved, held)


def test_the_denoiser_takes_its_residual_from_the_moved_frame():
    config = DiffusionConfig(channels=(16, 16), depths=(1, 1), attention=(False, False), cond_dim=32, action_dim=8,
                             groups=4, transport=2, transport_channels=16)
    net = Denoiser(config, SPEC)
    context, actions = torch.rand(2, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (2, 3))
    moved, inside = net.origin(context, actions, context[:, -1])
    expected = net.transport(context, actions, context[:, -1])
    assert torch.allclose(moved, expected[0]) and torch.allclose(inside, expected[1])
    c = net.condition(context, actions, torch.zeros(2), moved, inside)
    assert c.base is moved and net.unet.stem_side.in_channels == (2 * 3 + 3 + 1) * config.patch**2
    plain = Denoiser(DiffusionConfig(channels=(16, 16), depths=(1, 1), attention=(False, False), cond_dim=32,
                                     action_dim=8, groups=4), SPEC)
    base, inside = plain.origin(context, actions, context[:, -1])
    assert plain.transport is None and torch.equal(base, context[:, -1]) and inside is None
    with pytest.raises(ValueError, match="needs residual"):
        Denoiser(DiffusionConfig(residual=False, transport=2), SPEC)


def test_hard_transport_moves_each_block_by_its_most_likely_shift_outside_training():
    """transport_hard: in play each block takes its argmax displacement alone (a frame shifted exactly, no
    mixture's blur); in training the softmax mixture stays, so every displacement gets a gradient."""
    torch.manual_seed(0)
    t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, hard=True)
    with torch.no_grad():
        t.out.bias.zero_()
        t.out.bias[(1 + 2) * 5 + 0 + 2] = 3.0  # most weight on (dy, dx) = (1, 0), the rest spread
    context, actions, frame = torch.rand(2, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (2, 3)), torch.randn(2, 3, 16, 16)
    weights = t.weights(context, actions)
    assert bool((weights.argmax(1) == 17).all()) and float(weights.max(1).values.max()) < 0.9  # a real mixture
    t.eval()
    hard, _ = t(context, actions, frame)
    assert torch.allclose(hard, t.move(frame, _one_hot(2, 1, 0))[0])
    t.train()
    soft, _ = t(context, actions, frame)
    assert torch.allclose(soft, t.move(frame, weights)[0]) and not torch.allclose(soft, hard)
    config = DiffusionConfig(channels=(8, 8), depths=(1, 1), attention=(False, False), groups=4, transport=2, transport_hard=True)
    assert Denoiser(config, SPEC).transport.hard


def test_hard_training_gives_the_denoiser_the_hard_move_and_the_transport_loss_the_mixture():
    """transport_hard_train: the denoiser's origin is the argmax move in training as in play (no gradient), while
    the transport's own loss scores the softmax mixture, whose gradient reaches the transport network."""
    config = DiffusionConfig(channels=(8, 8), depths=(1, 1), attention=(False, False), cond_dim=16, action_dim=8, groups=4,
                             transport=2, transport_channels=16, transport_hard_train=True)
    torch.manual_seed(0)
    net = Denoiser(config, SPEC).train()
    with torch.no_grad():
        net.transport.out.bias.zero_()
        net.transport.out.bias[(1 + 2) * 5 + 0 + 2] = 3.0  # most weight on (dy, dx) = (1, 0), the rest spread
    context, actions = torch.rand(2, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (2, 3))
    newest = context[:, -1]
    mixed, base, inside, _ = net.training_origin(context, actions, newest)
    weights = net.transport.weights(context, actions)
    torch.testing.assert_close(mixed, net.transport.move(newest, weights)[0])
    hard, hard_inside = net.transport.move(newest, _one_hot(2, 1, 0))
    assert torch.equal(base, hard) and torch.equal(inside, hard_inside) and not torch.allclose(mixed, base)
    assert mixed.requires_grad and not base.requires_grad and not inside.requires_grad
    mixed.sum().backward()
    assert net.transport.out.weight.grad.abs().sum() > 0
    for mode in (net.train(), net.eval()):  # play, and self forcing's rollouts in training, continue from the hard move
        assert torch.equal(mode.origin(context, actions, newest)[0], hard)
    plain = Denoiser(DiffusionConfig(channels=(8, 8), depths=(1, 1), attention=(False, False), groups=4, transport=2), SPEC)
    mixed, base, _, _ = plain.train().training_origin(context, actions, newest)
    assert torch.equal(mixed.detach(), base) and not base.requires_grad  # without it: one origin, the mixture


def test_zero_edges_move_nothing_in_from_beyond_the_frame():
    """transport_edge zeros: a shift that reaches beyond the frame brings in 0, not the edge repeated; the
    inside share is the same either way, and inside the frame the two agree."""
    frame = torch.rand(1, 3, 16, 16) * 2 - 1
    weights = _one_hot(2, 0, -2, batch=1)  # fill (y, x) from (y, x - 2): the two leftmost columns from beyond the edge
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4}
    rep, inside = Transport(SPEC, **kwargs).move(frame, weights)
    zero, inside_zero = Transport(SPEC, **kwargs, edge="zeros").move(frame, weights)
    assert torch.equal(inside, inside_zero) and not inside[..., :2].any() and inside[..., 2:].all()
    assert not zero[..., :2].any() and torch.allclose(rep[..., :2], frame[..., :1].expand(-1, -1, -1, 2))
    assert torch.allclose(zero[..., 2:], rep[..., 2:]) and torch.allclose(zero[..., 2:], frame[..., :-2])
    with pytest.raises(PlayworldError, match="transport_edge"):
        DiffusionConfig(transport_edge="wrap")


def test_flow_warps_by_the_expected_displacement():
    """transport_flow: a whole-pixel expected shift moves the frame exactly as the one-hot mixture does; half the
    weight on 0 and half on +1 reads half a pixel over (the mean of the two neighbours, inside the frame);
    the denoiser then trains and plays from the warp while the transport's loss scores the mixture."""
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4}
    torch.manual_seed(0)
    frame = torch.rand(2, 3, 16, 16) * 2 - 1
    for edge in ("replicate", "zeros"):
        t = Transport(SPEC, **kwargs, edge=edge, flow=True)
        for dy, dx in [(0, 0), (1, 0), (-2, 1), (2, -2)]:
            warped, inside = t.warp(frame, _one_hot(2, dy, dx))
            moved, inside_moved = t.move(frame, _one_hot(2, dy, dx))
            torch.testing.assert_close(warped, moved, atol=1e-5, rtol=0)
            torch.testing.assert_close(inside, inside_moved, atol=1e-5, rtol=0)
    half = (_one_hot(2, 0, 0) + _one_hot(2, 0, 1)) / 2
    warped, _ = t.warp(frame, half)
    torch.testing.assert_close(warped[..., :-1], (frame[..., :-1] + frame[..., 1:]) / 2, atol=1e-5, rtol=0)
    config = DiffusionConfig(channels=(8, 8), depths=(1, 1), attention=(False, False), cond_dim=16, action_dim=8, groups=4,
                             transport=2, transport_channels=16, transport_flow=True)
    net = Denoiser(config, SPEC).train()
    context, actions = torch.rand(2, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (2, 3))
    mixed, base, _, _ = net.training_origin(context, actions, context[:, -1])
    weights = net.transport.weights(context, actions)
    torch.testing.assert_close(mixed, net.transport.move(context[:, -1], weights)[0])
    torch.testing.assert_close(base, net.transport.warp(context[:, -1], weights)[0])
    assert mixed.requires_grad and not base.requires_grad
    torch.testing.assert_close(net.eval().origin(context, actions, context[:, -1])[0], base)
    with pytest.raises(PlayworldError, match="two ways"):
        DiffusionConfig(transport_flow=True, transport_hard_train=True)


def test_the_remainder_is_the_sub_pixel_part_the_whole_pixel_move_left_out():
    """transport_remainder: beside the hard-moved frame the denoiser gets each block's expected displacement less the
    one it was moved by: 0 where one shift has all the weight; +0.5 pixel in x where the weight is split between
    +1 and +2 and the move took +1; a run with it has two more input planes and plays with them."""
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4}
    t = Transport(SPEC, **kwargs, hard_always=True, remainder=True)
    frame = torch.rand(2, 3, 16, 16) * 2 - 1
    moved, planes = t._move_hard(frame, _one_hot(2, 1, -2))
    hard, inside = t.move(frame, _one_hot(2, 1, -2))
    assert planes.shape == (2, 3, 16, 16) and torch.equal(moved, hard) and torch.equal(planes[:, :1], inside)
    assert not planes[:, 1:].any()
    split = (_one_hot(2, 0, 1) + _one_hot(2, 0, 2)) / 2
    split[:, :, 0, 0] = _one_hot(2, -1, 0)[:, :, 0, 0]  # one block certain: nothing left over there
    moved, planes = t._move_hard(frame, split)
    torch.testing.assert_close(moved[..., 4:, :], t.move(frame, _one_hot(2, 0, 1))[0][..., 4:, :])
    assert not planes[:, 1].any()  # no sub-pixel part in y anywhere
    assert not planes[:, 2, :4, :4].any() and torch.allclose(planes[:, 2, 4:], torch.full((2, 12, 16), 0.5))
    config = DiffusionConfig(channels=(8, 8), depths=(1, 1), attention=(False, False), cond_dim=16, action_dim=8, groups=4,
                             transport=2, transport_channels=16, transport_hard_train=True, transport_remainder=True)
    net = Denoiser(config, SPEC)
    assert net.unet.stem_side.in_channels == (2 * 3 + 3 + 3) * 4  # K frames, the moved frame, inside + remainder
    context, actions = torch.rand(2, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (2, 3))
    _, base, planes, _ = net.train().training_origin(context, actions, context[:, -1])
    assert planes.shape == (2, 3, 16, 16)
    out = net(torch.randn(2, 3, 16, 16), torch.ones(2), context, actions, torch.zeros(2), base, planes)
    assert out.shape == (2, 3, 16, 16)
    with pytest.raises(PlayworldError, match="transport_hard_train"):
        DiffusionConfig(transport=2, transport_remainder=True)


def test_a_global_transport_moves_every_block_alike_and_learns_a_camera_move():
    """transport_global: one displacement for the frame (every block's weights equal), trained as the per-block one
    is: a few hundred steps of its own loss make the moved frame the next frame of a scrolling view."""
    torch.manual_seed(0)
    t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True)
    context, actions = torch.rand(3, 2, 3, 16, 16) * 2 - 1, torch.randint(0, 3, (3, 3))
    w = t.weights(context, actions).detach()
    assert torch.allclose(w, w[:, :, :1, :1].expand_as(w)) and torch.allclose(w.sum(1), torch.ones(3, 4, 4))
    per_block = _transport(radius=2).weights(context, actions).detach()
    assert not torch.allclose(per_block, per_block[:, :, :1, :1].expand_as(per_block))  # the check can fail
    moved, held = _fit_the_scroll(t)
    assert moved < 0.05 * held, (moved, held)


def test_the_config_hands_transport_global_to_the_transport():
    config = DiffusionConfig(channels=(16, 16), depths=(1, 1), attention=(False, False), cond_dim=32, action_dim=8,
                             groups=4, transport=2, transport_channels=16, transport_global=True)
    assert Denoiser(config, SPEC).transport.global_


def test_transport_global_without_a_transport_is_refused():
    with pytest.raises(PlayworldError, match="transport is off"):
        DiffusionConfig(transport_global=True)


def test_a_global_transport_with_zero_edges_scores_only_what_its_shifts_know():
    """On flat ground with one faint patch, moved 2 px left: scored with the unknown strip as 0, a half-moved mixture
    beats the true move (the hedge the renormalised score removes); scored on what is known, the true move wins."""
    frame = torch.full((1, 3, 16, 16), 0.5)
    frame[..., 6:10, 6:10] = 0.2  # a patch of another ground: faint, as most of a scrolling view is
    target = F.pad(frame, (2, 2, 2, 2), mode="replicate")[:, :, 2:18, 4:20]  # the ground continues beyond the edge

    def loss(t: Transport, move: float) -> float:
        weights = _one_hot(2, 0, 2, batch=1) * move + _one_hot(2, 0, 0, batch=1) * (1 - move)
        return F.mse_loss(t.scored(frame, weights), target).item()

    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4, "edge": "zeros"}
    per_block, global_ = Transport(SPEC, **kwargs), Transport(SPEC, global_=True, **kwargs)
    assert loss(per_block, 0.99) > loss(per_block, 0.5)  # the zeros brought in cost the true move more than a hedge
    assert loss(global_, 0.99) < 1e-4 < loss(global_, 0.5)  # (a sliver of "stay" knows the strip)


def test_the_keys_own_logits_start_silent_and_alone_learn_the_keys_moves():
    """transport_action_logits: a linear map of the actions' embedding added to every block's logits. At the start it
    adds nothing (the transport is the one without it); with the blocks' own output held at zero, it alone learns the
    move each key makes, which the transport without it cannot."""
    torch.manual_seed(0)
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4}
    with_keys, without = Transport(SPEC, action_logits=True, **kwargs), Transport(SPEC, **kwargs)
    without.load_state_dict({k: v for k, v in with_keys.state_dict().items() if not k.startswith("action_logits")})
    context, actions, _ = _scroll_batch(4)
    assert torch.equal(with_keys.weights(context, actions), without.weights(context, actions))
    for t in (with_keys, without):
        t.out.weight.requires_grad_(False).zero_()  # the blocks say nothing: the bias's 'stay' alone
    moved, held = _fit_the_scroll(with_keys)
    assert moved < 0.05 * held, (moved, held)
    moved, held = _fit_the_scroll(without)
    assert moved > 0.5 * held, (moved, held)


def test_transport_action_logits_without_a_transport_is_refused():
    with pytest.raises(PlayworldError, match="transport is off"):
        DiffusionConfig(transport_action_logits=True)
    config = DiffusionConfig(channels=(16, 16), depths=(1, 1), attention=(False, False), cond_dim=32, action_dim=8,
                             groups=4, transport=2, transport_channels=16, transport_action_logits=True)
    assert Denoiser(config, SPEC).transport.action_logits is not None


def test_a_global_transport_moves_the_whole_frame_as_the_per_block_mixing_would():
    """The global transport's one-shift mixing gives what the per-block mixing gives when every block has the same
    weights, moved frame and inside share, values and gradients."""
    torch.manual_seed(0)
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4, "edge": "zeros"}
    global_, per_block = Transport(SPEC, global_=True, **kwargs), Transport(SPEC, **kwargs)
    frame = torch.rand(3, 3, 16, 16) * 2 - 1
    logits = torch.randn(3, 25, 1, 1, requires_grad=True)
    outs = []
    for t in (global_, per_block):
        moved, inside = t.move(frame, logits.softmax(1).expand(3, 25, 4, 4))
        (grad,) = torch.autograd.grad((moved * torch.arange(16.0)).sum() + inside.sum(), logits)
        outs.append((moved, inside, grad))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5)


def _disk() -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    return ((((y - 8) ** 2 + (x - 6) ** 2) < 9).float() * 2 - 1).expand(2, 3, 16, 16)


def test_the_fourier_warp_shifts_whole_pixels_exactly_and_fractions_without_the_bilinear_blur():
    """transport_warp 'fourier': a whole-pixel displacement is the frame shifted (the edge repeated, `inside` 0 where
    the read left the frame); eight steps of half a pixel, clipped to [-1, 1] as play clips its frames, end nearer the
    disk moved 4 px than eight bilinear steps do, which blur it."""
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4, "flow": True, "global_": True}
    fourier, bilinear = Transport(SPEC, warp="fourier", **kwargs), Transport(SPEC, **kwargs)
    frame = torch.rand(2, 3, 16, 16) * 2 - 1
    moved, inside = fourier.warp(frame, _one_hot(2, 1, -2, batch=2))  # pixel (y, x) reads (y + 1, x - 2)
    expected = F.pad(frame, (2, 2, 2, 2), mode="replicate")[:, :, 3:19, 0:16]
    assert torch.allclose(moved, expected, atol=1e-5)
    assert inside[:, 0, -1].abs().max() < 1e-6 and inside[:, 0, :, :2].abs().max() < 1e-6 and inside[:, 0, :-1, 2:].min() > 1 - 1e-6
    half = _one_hot(2, 0, 0, batch=2) * 0.5 + _one_hot(2, 0, -1, batch=2) * 0.5  # expected displacement: -0.5 px in x
    target = F.pad(_disk(), (4, 0, 0, 0), mode="replicate")[..., :16]
    errors = []
    for t in (fourier, bilinear):
        f = _disk()
        for _ in range(8):
            f = t.warp(f, half)[0].clamp(-1, 1)
        errors.append((f - target).abs().mean().item())
    assert errors[0] < 0.6 * errors[1], errors


def test_the_fourier_warp_needs_a_global_flow():
    with pytest.raises(PlayworldError, match="one fractional displacement"):
        DiffusionConfig(transport=2, transport_warp="fourier", transport_flow=True)
    with pytest.raises(ValueError, match="needs flow and global"):
        Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, warp="fourier")
    config = DiffusionConfig(channels=(16, 16), depths=(1, 1), attention=(False, False), cond_dim=32, action_dim=8, groups=4,
                             transport=2, transport_channels=16, transport_flow=True, transport_global=True, transport_warp="fourier")
    assert Denoiser(config, SPEC).transport.fourier


def _wall_batch(n: int = 16, walls: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Action 1 always, the world shifted 2 px left unless one block (the one in front of the agent) is white: a
    wall, and the view stays. Context, actions, next frame."""
    world = (torch.rand(n, 3, 8, 8) > 0.5).float().repeat_interleave(2, -1).repeat_interleave(2, -2) * 2 - 1
    wall = torch.rand(n) < walls
    world[:, :, 4:8, 4:8] = torch.where(wall, 1.0, -1.0).view(n, 1, 1, 1)
    moved = F.pad(world, (2, 2, 2, 2), mode="replicate")[:, :, 2:18, 4:20]
    a = torch.ones(n, 3, dtype=torch.long)
    return torch.stack([world, world], 1), a, torch.where(wall.view(n, 1, 1, 1), world, moved)


def test_the_position_readout_starts_silent_and_learns_a_move_decided_at_one_place():
    torch.manual_seed(0)
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4, "global_": True}
    with_pos, without = Transport(SPEC, position=True, **kwargs), Transport(SPEC, **kwargs)
    without.load_state_dict({k: v for k, v in with_pos.state_dict().items() if not k.startswith("position")})
    context, actions, _ = _wall_batch(4)
    assert torch.equal(with_pos.weights(context, actions), without.weights(context, actions))
    moved, held = _fit_the_scroll(with_pos, batch=_wall_batch)
    assert moved < 0.05 * held, (moved, held)
    with pytest.raises(ValueError, match="needs global"):
        Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, position=True)
    with pytest.raises(PlayworldError, match="needs transport_global"):
        DiffusionConfig(transport=2, transport_position=True)


def test_the_expected_score_is_the_squared_error_of_one_shift_drawn_from_the_weights():
    """`spread` added to the mixture's MSE is sum_d w_d MSE(frame shifted by d, target), per block and for a global
    transport with zero edges (over the shifts that know each pixel); brute force over one-hot weights agrees."""
    torch.manual_seed(0)
    frame, target = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    for kwargs in ({"edge": "replicate"}, {"edge": "zeros", "global_": True}):
        t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, hard_always=True, expected=True, **kwargs)
        logits = torch.randn(2, 25, 1, 1) * 2
        weights = logits.softmax(1).expand(2, 25, 4, 4) if t.global_ else torch.randn(2, 25, 4, 4).softmax(1)
        mixed = t.scored(frame, weights)
        expected = F.mse_loss(mixed, target) + t.spread(frame, weights, mixed)
        brute = torch.zeros(2, 3, 16, 16)
        known = torch.zeros(2, 1, 16, 16)
        for d in range(25):
            moved, inside = t.move(frame, _one_hot(2, d // 5 - 2, d % 5 - 2))
            w = weights[:, d : d + 1].repeat_interleave(4, 2).repeat_interleave(4, 3)
            if t.global_:  # only the shifts that know a pixel count, renormalised
                w = w * inside
            brute += w * (moved - target) ** 2
            known += w
        assert torch.allclose(expected, (brute / known).mean(), atol=1e-5), kwargs


def test_the_expected_score_keeps_a_frame_still_where_balls_fly_every_way_and_the_mixture_does_not():
    """A disk that moves 1-2 px in a random one of 8 directions, read from nothing (a transport of the keys alone, a
    world with no keys): the mixture's best weights are a ring-shaped blur whose most likely shift moves the whole
    frame; the expected squared error is lowest for 'stay'."""
    spec = WorldSpec(16, ActionSpace.none(), context=2)

    def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
        angle = torch.randint(0, 8, (n,)) * (math.pi / 4)
        speed = 1 + torch.rand(n)
        cy, cx = 8 + torch.zeros(n), 8 + torch.zeros(n)
        disk = lambda py, px: ((((y - py.view(-1, 1, 1)) ** 2 + (x - px.view(-1, 1, 1)) ** 2) < 9).float() * 2 - 1)[:, None].expand(n, 3, 16, 16)
        return disk(cy, cx), disk(cy + speed * torch.sin(angle), cx + speed * torch.cos(angle))

    stays = {}
    for expected in (False, True):
        torch.manual_seed(0)
        t = Transport(spec, radius=2, patch=4, channels=16, action_dim=8, groups=4, hard_always=True, global_=True,
                      keys_only=True, expected=expected)
        opt = torch.optim.Adam(t.parameters(), 3e-2)
        for _ in range(300):
            frame, nxt = batch()
            context, actions = torch.stack([frame, frame], 1), torch.zeros(len(frame), 3, dtype=torch.long)
            mixed, _, _, spread = t.both(context, actions, frame)
            loss = F.mse_loss(mixed, nxt) + spread
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights = t.weights(context, actions)[0, :, 0, 0]
        stays[expected] = int(weights.argmax()) == 12
    assert stays == {False: False, True: True}, stays


def test_the_gate_learns_when_the_keys_move_is_blocked_which_the_keys_alone_cannot():
    """transport_gate: the keys propose the move, the frames say whether it happens. On `_wall_batch` (the key always
    moves the view 2 px left unless a wall block is white, a quarter of the frames) the gated transport's move is
    right on almost every frame, from a gate that starts open and from one that starts shut (its loss is a
    cross-entropy, whose gradient does not vanish where the gate is confidently wrong: a gate scored by its expected
    error closed on explorer and never reopened); read from the keys alone it is one move for all, right on about
    3 in 4."""
    right = {}
    for gate, start in ((False, None), (True, 3.0), (True, -6.0)):
        torch.manual_seed(0)
        t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, keys_only=True,
                      hard_always=True, expected=True, gate=gate)
        if start is not None:
            with torch.no_grad():
                t.gate_out.bias.fill_(start)
        opt = torch.optim.Adam(t.parameters(), 3e-3)
        for _ in range(300):
            context, actions, nxt = _wall_batch(walls=0.25)
            mixed, _, _, spread = t.both(context, actions, context[:, -1], nxt)
            loss = F.mse_loss(mixed, nxt) + spread
            opt.zero_grad()
            loss.backward()
            opt.step()
        context, actions, nxt = _wall_batch(64, walls=0.25)
        with torch.no_grad():
            moved = t.train()._move_hard(context[:, -1], t.weights(context, actions))[0]
        right[start] = ((moved - nxt).abs().flatten(1).amax(1) < 1e-5).float().mean().item()
    assert right[3.0] > 0.95 and right[-6.0] > 0.95 and right[None] < 0.9, right


def test_the_gate_is_indifferent_while_the_keys_say_stay():
    """The gate's loss compares the keys' most likely move with 'stay': while the keys are untrained (their most
    likely move is 'stay') it is 0 and pushes the gate nowhere; where the keys' move is the next frame it pushes the
    gate open, where 'stay' is, shut."""
    torch.manual_seed(0)
    t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, keys_only=True,
                  hard_always=True, expected=True, gate=True)
    context, actions, nxt = _wall_batch(32, walls=0.5)
    keys, happens = t._keys(context, actions, t.action_embed(actions))
    happens = happens.detach().requires_grad_(True)
    loss = t.gate_loss(context[:, -1], keys, happens, nxt)
    assert loss.item() == 0.0
    left = F.one_hot(torch.full((32,), 2 * 5 + 4), 25).float()  # (dy, dx) = (0, +2): the 2-px move the key makes
    t.gate_loss(context[:, -1], left, happens, nxt).backward()
    wall = (nxt == context[:, -1]).flatten(1).all(1)
    assert (happens.grad[wall] > 0).all() and (happens.grad[~wall] < 0).all()  # descent: shut at walls, open elsewhere


def test_the_gate_reads_the_frames_by_the_key_discrete_or_continuous():
    """Each key has its own readout of the frames (which block stops a move depends on the key): open at the start
    for every key, and a change to one discrete key's readout leaves the others' gates alone. A continuous action
    weighs a readout per dimension."""
    torch.manual_seed(0)
    context, actions, _ = _wall_batch(6)
    kwargs = {"radius": 2, "patch": 4, "channels": 16, "action_dim": 8, "groups": 4, "global_": True, "keys_only": True,
              "hard_always": True, "expected": True, "gate": True}
    t = Transport(SPEC, **kwargs)
    actions[:, -1] = torch.tensor([0, 1, 2, 0, 2, 1])
    _, happens = t._keys(context, actions, t.action_embed(actions))
    assert happens.shape == (6, 1) and torch.allclose(happens, torch.full((6, 1), 3.0))
    with torch.no_grad():
        t.gate_out.bias[1] = -5.0
    _, happens = t._keys(context, actions, t.action_embed(actions))
    assert happens[:, 0].tolist() == [3.0, -5.0, 3.0, 3.0, 3.0, -5.0]  # key 1's gate alone
    spec = WorldSpec(16, ActionSpace.continuous([-1.0, -1.0], [1.0, 1.0]), context=2)
    t = Transport(spec, **kwargs)
    moves = torch.tensor([[0.5, -1.0], [1.0, 1.0]])
    acts = moves[:, None].expand(2, 3, 2).clone()
    _, happens = t._keys(context[:2], acts, t.action_embed(acts))
    assert torch.allclose(happens, torch.full((2, 1), 3.0))
    with torch.no_grad():
        t.gate_out.bias[:2] = torch.tensor([2.0, 1.0])
    _, happens = t._keys(context[:2], acts, t.action_embed(acts))
    assert torch.allclose(happens[:, 0], torch.tensor([3.0 + 1.0 - 1.0, 3.0 + 2.0 + 1.0]))


    with pytest.raises(ValueError, match="needs keys_only"):
        Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, gate=True)
    with pytest.raises(PlayworldError, match="needs transport_keys_only"):
        DiffusionConfig(transport=2, transport_global=True, transport_gate=True)


def test_a_transport_of_the_keys_reads_the_newest_key_alone_discrete_or_continuous():
    """transport_keys_only: the same newest key gives the same move whatever came before it (a noop after a run of
    moves is a noop), another newest key another; a continuous action is read through a linear map."""
    torch.manual_seed(0)
    t = Transport(SPEC, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, keys_only=True, hard_always=True)
    with torch.no_grad():
        t.action_logits.weight.normal_()
    frames = torch.rand(3, 2, 3, 16, 16) * 2 - 1
    weights = t.weights(frames, torch.tensor([[1, 2, 0], [2, 2, 0], [0, 0, 1]]))
    assert torch.equal(weights[0], weights[1]) and not torch.allclose(weights[0], weights[2])
    assert not any(name.startswith("action_embed") for name, _ in t.named_parameters())  # every weight gets a gradient
    spec = WorldSpec(16, ActionSpace.continuous([-1.0, -1.0], [1.0, 1.0]), context=2)
    c = Transport(spec, radius=2, patch=4, channels=16, action_dim=8, groups=4, global_=True, keys_only=True, hard_always=True)
    assert torch.allclose(c.weights(frames, torch.zeros(3, 3, 2))[:, :, 0, 0].argmax(1), torch.tensor(12))  # 'stay' at the start
    with torch.no_grad():
        c.action_logits.weight.normal_()
    w = c.weights(frames, torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.5, -0.5]]] * 3))
    assert w.shape == (3, 25, 4, 4) and torch.allclose(w.sum(1), torch.ones(3, 4, 4))
