"""Collection policies: random, sticky, explore, callables, module:function, bad specs."""

import numpy as np
import pytest

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds import make_world
from playworld.worlds.policies import make_policy

DISCRETE = ActionSpace.discrete(5)
BOX = ActionSpace.continuous([-1.0, -2.0], [1.0, 2.0])
FRAME = np.zeros((32, 32, 3), np.uint8)


def test_random_covers_the_space_and_has_the_right_dtype():
    policy = make_policy("random", DISCRETE, seed=0)
    actions = np.array([policy(FRAME, {}) for _ in range(500)])
    assert actions.dtype == np.int64 and set(actions.tolist()) == set(range(5))
    box = make_policy("random", BOX, seed=0)
    a = np.array([box(FRAME, {}) for _ in range(200)])
    assert a.dtype == np.float32 and a.shape == (200, 2)
    assert (a >= BOX.low).all() and (a <= BOX.high).all() and a[:, 1].max() > 1.5


def test_random_is_seeded():
    p1, p2, p3 = (make_policy("random", DISCRETE, seed=s) for s in (3, 3, 4))
    a1, a2, a3 = ([int(p(FRAME, {})) for _ in range(20)] for p in (p1, p2, p3))
    assert a1 == a2 and a1 != a3


@pytest.mark.parametrize("p", [0.5, 0.8, 0.95])
def test_sticky_repeat_rate(p):
    policy = make_policy("sticky", DISCRETE, seed=0, p=p)
    policy.reset()
    actions = np.array([int(policy(FRAME, {})) for _ in range(5000)])
    repeat = np.mean(actions[1:] == actions[:-1])
    expected = p + (1 - p) / 5  # a fresh draw can repeat by chance
    assert abs(repeat - expected) < 0.03


def test_sticky_continuous_drifts_within_bounds():
    policy = make_policy("sticky", BOX, seed=0, p=0.9)
    policy.reset()
    a = np.array([policy(FRAME, {}) for _ in range(1000)])
    assert (a >= BOX.low).all() and (a <= BOX.high).all()
    steps = np.abs(np.diff(a, axis=0)).max(axis=1)
    assert np.median(steps) < 0.5  # mostly small Brownian moves, occasional jumps


def test_explore_walks_out_and_back():
    world = make_world("explorer", 32, map_size=96, n_coins=16)
    policy = make_policy("explore", world.action_space, seed=1)
    frame, state = world.reset(0)
    policy.reset()
    positions, returns = [tuple(state["agent"])], 0
    anchors = []
    for _ in range(600):
        phase_before, anchor_before = policy.phase, policy.anchor
        step = world.step(policy(frame, state))
        frame, state = step.frame, step.state
        positions.append(tuple(state["agent"]))
        if phase_before == "back" and policy.phase == "out":
            anchors.append(anchor_before)
            assert positions[-2] == anchor_before  # the walk came back to where it started
            returns += 1
    assert returns >= 5
    assert len(set(positions)) > 20  # and it also goes places


def test_explore_rejects_other_worlds():
    with pytest.raises(PlayworldError, match="explore"):
        make_policy("explore", ActionSpace.discrete(2))
    policy = make_policy("explore", DISCRETE)
    with pytest.raises(PlayworldError, match="agent"):
        policy(FRAME, {})


def test_callables():
    one = make_policy(lambda obs: 3, DISCRETE)
    assert one(FRAME, {}) == 3 and one(FRAME, {}).dtype == np.int64
    two = make_policy(lambda frame, state: state["a"], DISCRETE)
    assert two(FRAME, {"a": 4}) == 4
    box = make_policy(lambda obs: [0.5, -1.0], BOX)
    np.testing.assert_array_equal(box(FRAME, {}), np.array([0.5, -1.0], np.float32))


def test_module_function_spec():
    policy = make_policy("numpy:argmax", DISCRETE)  # any importable callable obs -> action
    assert policy(np.array([0, 0, 0, 9, 0]), {}) == 3
    with pytest.raises(PlayworldError, match="no_such_module"):
        make_policy("no_such_module:f", DISCRETE)
    with pytest.raises(PlayworldError, match="attribute"):
        make_policy("numpy:no_such_function", DISCRETE)


def test_bad_spec_lists_the_valid_ones():
    with pytest.raises(PlayworldError) as info:
        make_policy("greedy", DISCRETE)
    assert "random" in str(info.value) and "sticky" in str(info.value) and "module:function" in str(info.value)
    with pytest.raises(PlayworldError, match="p="):
        make_policy("sticky", DISCRETE, p=1.5)
