"""explorer: determinism, actions visible in the frame, walls, coins, restore, resolutions."""

import numpy as np
import pytest

from playworld.errors import PlayworldError
from playworld.worlds import make_world
from playworld.worlds.explorer import MOVES, PASSABLE, WALL, Explorer

NOOP, UP, DOWN, LEFT, RIGHT = range(5)


@pytest.fixture(scope="module")
def world():
    return make_world("explorer", 64, map_size=96, n_coins=32)


def open_cell(w: Explorer, need_free=(UP, DOWN, LEFT, RIGHT)):
    """Put the agent on a reachable cell whose neighbours in `need_free` directions are floor."""
    for x, y in w.reachable:
        if all(PASSABLE[w.base[y + MOVES[a][1], x + MOVES[a][0]]] for a in need_free):
            state = w.state()
            state["agent"] = np.array([x, y], np.int32)
            return w.restore(state)
    raise AssertionError("no open cell")


def test_action_space(world):
    assert world.action_space.n == 5
    assert world.action_space.names == ("noop", "up", "down", "left", "right")


def test_deterministic_per_seed():
    def run(seed):
        w = make_world("explorer", 64, map_size=96, n_coins=32)
        frames = [w.reset(seed)[0]]
        frames += [w.step(a).frame for a in np.random.default_rng(1).integers(0, 5, 40)]
        return np.stack(frames)

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_each_action_moves_the_agent_and_shifts_the_view(world):
    world.reset(2)
    p = world.cell_px
    for action in (UP, DOWN, LEFT, RIGHT):
        before = open_cell(world)
        start = world.state()["agent"].copy()
        step = world.step(action)
        dx, dy = MOVES[action]
        np.testing.assert_array_equal(step.state["agent"], start + [dx, dy])
        np.testing.assert_array_equal(step.state["camera"], step.state["agent"])
        assert step.state["bumped"] == 0 and step.state["facing"] == action - 1
        # the terrain shifts by exactly one cell (p pixels) the other way; compare away from the agent
        shifted = np.roll(before, (-dy * p, -dx * p), axis=(0, 1))
        keep = np.ones(before.shape[:2], bool)
        keep[:p, :] = keep[-p:, :] = keep[:, :p] = keep[:, -p:] = False  # rolled-in border
        o = world.centre_px
        keep[o - p:o + 2 * p, o - p:o + 2 * p] = False  # the agent, before and after
        np.testing.assert_array_equal(step.frame[keep], shifted[keep])
    world.step(NOOP)
    frame = world.render()
    assert np.array_equal(world.step(NOOP).frame, frame)  # noop: nothing changes


def test_walls_block_and_the_bump_is_visible(world):
    world.reset(3)
    for y, x in zip(*np.nonzero(world.base == WALL)):  # a floor cell with a wall to its right
        if 0 < y < world.map_size - 1 and 0 < x < world.map_size - 1 and PASSABLE[world.base[y, x - 1]]:
            break
    state = world.state()
    state["agent"], state["facing"] = np.array([x - 1, y], np.int32), np.array(3, np.int32)  # facing right
    before = world.restore(state)
    step = world.step(RIGHT)
    np.testing.assert_array_equal(step.state["agent"], [x - 1, y])
    assert step.state["bumped"] == 1 and step.reward == 0
    assert not np.array_equal(step.frame, before)  # a blocked move still shows
    after_noop = world.step(NOOP)
    assert after_noop.state["bumped"] == 0 and np.array_equal(after_noop.frame, before)


def test_facing_indicator_differs_per_direction():
    w = make_world("explorer", 64, map_size=64, n_coins=8)
    w.reset(0)
    sprites = {w.sprites[f, 0].tobytes() for f in range(4)}
    assert len(sprites) == 4


def test_coin_reward_and_respawn(world):
    world.reset(4)
    state = world.state()
    k = 0
    cx, cy = state["coins"][k]
    for a in (UP, DOWN, LEFT, RIGHT):  # stand next to coin k, on a floor cell
        nx, ny = cx - MOVES[a][0], cy - MOVES[a][1]
        if PASSABLE[world.base[ny, nx]]:
            break
    state["agent"] = np.array([nx, ny], np.int32)
    world.restore(state)
    step = world.step(a)
    assert step.reward == 1.0
    assert step.state["coin_respawns"][k] == 1
    assert not np.array_equal(step.state["coins"][k], [cx, cy])
    nx2, ny2 = step.state["coins"][k]
    assert PASSABLE[world.base[ny2, nx2]]
    assert len({tuple(c) for c in step.state["coins"]}) == len(step.state["coins"])  # no stacking
    # respawns are a function of the state: the same collection from the same state lands alike
    world.restore(state)
    np.testing.assert_array_equal(world.step(a).state["coins"], step.state["coins"])


def test_restore_reproduces_frames():
    w = make_world("explorer", 64, map_size=96, n_coins=32)
    frame, state = w.reset(5)
    rng = np.random.default_rng(0)
    frames, states = [frame], [state]
    for a in rng.integers(0, 5, 60):
        step = w.step(a)
        frames.append(step.frame)
        states.append(step.state)
    other = make_world("explorer", 64, map_size=96, n_coins=32)
    other.reset(99)  # a different map loaded first
    t0 = 20
    np.testing.assert_array_equal(other.restore(states[t0]), frames[t0])
    w2_frames = [other.step(a).frame for a in np.random.default_rng(0).integers(0, 5, 60)[t0:]]
    np.testing.assert_array_equal(np.stack(w2_frames), np.stack(frames[t0 + 1:]))


def test_episode_length_and_seed_once():
    w = make_world("explorer", 32, map_size=64, n_coins=8, max_steps=10)
    w.reset(0)
    steps = [w.step(0) for _ in range(10)]
    assert [s.truncated for s in steps] == [False] * 9 + [True]
    seeds = [int(w.reset()[1]["seed"]) for _ in range(3)]
    assert len(set(seeds)) == 3
    fixed = make_world("explorer", 32, map_size=64, n_coins=8, map_seed=11)
    maps = {int(fixed.reset(s)[1]["map_seed"]) for s in range(3)}
    assert maps == {11}


@pytest.mark.parametrize("resolution", [32, 48, 100, 256])
def test_resolutions_shift_by_whole_cells(resolution):
    w = make_world("explorer", resolution, map_size=64, n_coins=8)
    frame, _ = w.reset(0)
    assert frame.shape == (resolution, resolution, 3) and frame.dtype == np.uint8
    assert w.cell_px == resolution // 16 and w.cell_px >= 2


@pytest.mark.parametrize("resolution", [31, 300])
def test_bad_resolution(resolution):
    with pytest.raises(PlayworldError):
        make_world("explorer", resolution)


def test_full_size_map_has_landmarks_and_is_mostly_reachable():
    w = make_world("explorer", 64)
    w.reset(0)
    assert w.base.shape == (256, 256)
    landmark_ids = np.unique(w.base[w.base >= 8])
    assert len(landmark_ids) == 64 * 16  # 64 distinct landmarks, 16 cells each
    assert len(w.reachable) > 0.5 * 256 * 256


def test_map_too_small_for_coins_is_redrawn_or_named():
    # episode seed 10026 draws a 64-cell map whose largest floor region has 52 cells: too few for 64
    # coins, so the world draws the next map from the same generator (reproducibly) ...
    from playworld.worlds.explorer import generate_map

    assert len(generate_map(_small_map_seed(), 64)[1]) <= 64  # the first draw is too small: the redraw is exercised
    w = make_world("explorer", 32, map_size=64, n_coins=64)
    _, state = w.reset(seed=10026)
    assert len(w.reachable) > 64 and len(state["coins"]) == 64
    _, again = w.reset(seed=10026)
    assert np.array_equal(state["agent"], again["agent"]) and np.array_equal(state["coins"], again["coins"])
    # ... while a fixed map that small, or coins no map can hold, are a clear error
    with pytest.raises(PlayworldError, match="too small for 64 coins"):
        make_world("explorer", 32, map_size=64, n_coins=64, map_seed=_small_map_seed()).reset(seed=0)
    with pytest.raises(PlayworldError, match="lower n_coins"):
        make_world("explorer", 32, map_size=32, n_coins=2000).reset(seed=0)


def _small_map_seed() -> int:
    """The map seed episode seed 10026 draws first (its largest floor region: 52 cells)."""
    return int(np.random.default_rng(10026).integers(2**31))
