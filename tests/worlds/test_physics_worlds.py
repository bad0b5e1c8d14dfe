"""Physics worlds: determinism, the laws they claim, the paper's parameter ranges, pure colours."""

import numpy as np
import pytest

from playworld.errors import PlayworldError
from playworld.worlds import list_worlds, make_world
from playworld.worlds.physics import (
    DT, GRAVITY, ID_RADIUS, ID_SPEED, OOD_RADIUS, OOD_SPEED, mask_centroid_world, pixel_to_world, world_to_pixel,
)

PHYSICS = ["physics/uniform", "physics/collision", "physics/parabola"]


def rollout(name, seed, resolution=64, **options):
    world = make_world(name, resolution, **options)
    frame, state = world.reset(seed)
    frames, states = [frame], [state]
    for _ in range(world.max_steps):
        step = world.step(0)
        frames.append(step.frame)
        states.append(step.state)
    assert step.truncated and not step.terminated
    stacked = {k: np.stack([s[k] for s in states]) for k in states[0]}
    return np.stack(frames), stacked


def in_ranges(values, ranges):
    return np.array([any(lo - 1e-12 <= v <= hi + 1e-12 for lo, hi in ranges) for v in np.ravel(values)])


def test_registered():
    assert set(PHYSICS) <= set(list_worlds())


@pytest.mark.parametrize("name", PHYSICS)
def test_clip_shape_and_determinism(name):
    frames, states = rollout(name, seed=3)
    assert frames.shape == (32, 64, 64, 3) and frames.dtype == np.uint8
    frames2, states2 = rollout(name, seed=3)
    np.testing.assert_array_equal(frames, frames2)
    for k in states:
        np.testing.assert_array_equal(states[k], states2[k])
    frames3, _ = rollout(name, seed=4)
    assert not np.array_equal(frames, frames3)


@pytest.mark.parametrize("name", PHYSICS)
def test_seed_once_then_distinct_episodes(name):
    world = make_world(name)
    first = [world.reset(7)[1]["positions"]] + [world.reset()[1]["positions"] for _ in range(3)]
    again = [world.reset(7)[1]["positions"]] + [world.reset()[1]["positions"] for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # reproducible from the seed
    assert len({a.tobytes() for a in first}) == 4  # episodes after the first differ


def test_uniform_constant_velocity():
    for seed in range(10):
        _, s = rollout("physics/uniform", seed)
        v = s["velocities"][:, 0]
        assert np.allclose(v, v[0], atol=0) and v[0, 1] == 0
        np.testing.assert_allclose(np.diff(s["positions"][:, 0], axis=0), v[1:] * DT, atol=1e-9)


def test_collision_conserves_momentum_and_energy_and_happens():
    for seed in range(40):
        _, s = rollout("physics/collision", seed)
        m = s["radii"][0] ** 2  # mass proportional to r^2
        momentum = np.einsum("b,tbd->td", m, s["velocities"])
        energy = 0.5 * np.einsum("b,tb->t", m, (s["velocities"] ** 2).sum(-1))
        np.testing.assert_allclose(momentum, momentum[0][None].repeat(32, 0), atol=1e-6, rtol=0)
        np.testing.assert_allclose(energy, energy[0], atol=1e-6, rtol=0)
        changed = np.nonzero(np.any(np.diff(s["velocities"], axis=0) != 0, axis=(1, 2)))[0]
        assert len(changed) == 1, f"seed {seed}: expected exactly one collision, got {changed}"
        assert changed[0] + 1 < 31, "the collision should leave frames showing its aftermath"
        assert np.all(s["positions"][:, 0, 1] == s["positions"][0, 0, 1])  # 1-D: one horizontal line
        assert np.all(s["positions"][:, 1, 1] == s["positions"][0, 0, 1])
        gap = s["positions"][:, 1, 0] - s["positions"][:, 0, 0] - s["radii"][0].sum()
        assert gap.min() > -1e-9  # never interpenetrate at a frame


def test_parabola_constant_vertical_acceleration():
    for seed in range(10):
        _, s = rollout("physics/parabola", seed)
        y = s["positions"][:, 0, 1]
        np.testing.assert_allclose(np.diff(y, 2) / DT**2, -GRAVITY, atol=1e-6)
        vx = s["velocities"][:, 0, 0]
        assert np.all(vx == vx[0]) and s["velocities"][0, 0, 1] == 0  # horizontal launch
        np.testing.assert_allclose(np.diff(s["velocities"][:, 0, 1]) / DT, -GRAVITY, atol=1e-9)


@pytest.mark.parametrize("ood", [False, True])
def test_parameter_ranges(ood):
    radius_ranges, speed_ranges = (OOD_RADIUS, OOD_SPEED) if ood else (ID_RADIUS, ID_SPEED)
    radii, speeds = [], []
    for name in PHYSICS:
        world = make_world(name, 32, ood=ood)
        for seed in range(60):
            _, s = world.reset(seed)
            radii.extend(s["radii"])
            speeds.extend(np.abs(s["velocities"][:, 0]))
    assert in_ranges(radii, radius_ranges).all()
    # a collision may nudge a (near-)resting ball to 1e-3 so contact happens
    assert (in_ranges(speeds, speed_ranges) | (np.array(speeds) <= 1e-3)).all()
    if ood:  # both OOD intervals are drawn from
        assert min(radii) < 0.6 and max(radii) > 1.5 and min(speeds) < 0.8 and max(speeds) > 4.5


@pytest.mark.parametrize("name", PHYSICS)
def test_colours_pure_and_centroids_match_state(name):
    frames, s = rollout(name, seed=1, resolution=128)
    f = frames.astype(int)
    red = (f[..., 0] > 127) & (f[..., 1] < 127) & (f[..., 2] < 127)
    blue = (f[..., 2] > 127) & (f[..., 0] < 127) & (f[..., 1] < 127)
    for b, mask in enumerate([red, blue][: s["radii"].shape[1]]):
        centre_in_view = ((s["positions"][:, b] > 0) & (s["positions"][:, b] < 10)).all(-1)
        assert centre_in_view.sum() >= 8 and mask.any(axis=(1, 2))[centre_in_view].all()
    colours = {tuple(c) for c in frames.reshape(-1, 3)}
    assert {(255, 255, 255), (255, 0, 0)} <= colours
    if name == "physics/collision":
        assert (0, 0, 255) in colours
    else:
        assert not blue.any()
    for t in range(32):  # when a ball is wholly in view, its mask centroid is its centre
        for b, mask in enumerate([red, blue][: s["radii"].shape[1]]):
            (x, y), r = s["positions"][t, b], s["radii"][t, b]
            if r < x < 10 - r and r < y < 10 - r:
                np.testing.assert_allclose(mask_centroid_world(mask[t]), [x, y], atol=0.05)


def test_pixel_world_conversion_is_y_up():
    np.testing.assert_allclose(world_to_pixel([0.0, 10.0], 64), [0, 0])  # top-left corner
    np.testing.assert_allclose(world_to_pixel([10.0, 0.0], 64), [64, 64])
    xy = np.random.default_rng(0).uniform(0, 10, (5, 2))
    np.testing.assert_allclose(pixel_to_world(world_to_pixel(xy, 96), 96), xy)


@pytest.mark.parametrize("name", PHYSICS)
def test_restore_reproduces_the_rest_of_the_clip(name):
    frames, s = rollout(name, seed=5)
    world = make_world(name)
    t0 = 4
    frame = world.restore({k: v[t0] for k, v in s.items()})
    np.testing.assert_array_equal(frame, frames[t0])
    for t in range(t0 + 1, 32):
        np.testing.assert_array_equal(world.step(0).frame, frames[t])


@pytest.mark.parametrize("resolution", [32, 256])
def test_resolutions(resolution):
    for name in PHYSICS:
        frame, _ = make_world(name, resolution).reset(0)
        assert frame.shape == (resolution, resolution, 3)


@pytest.mark.parametrize("resolution", [31, 300])
def test_bad_resolution(resolution):
    with pytest.raises(PlayworldError, match="resolution"):
        make_world("physics/uniform", resolution)


def test_unknown_option():
    with pytest.raises(PlayworldError, match="option"):
        make_world("physics/uniform", 64, gravity=3)
