"""The World contract, checked over every registered built-in world."""

import numpy as np
import pytest

from playworld.worlds import list_worlds, make_world


@pytest.mark.parametrize("name", list_worlds())
def test_world_contract(name):
    world = make_world(name, 48)
    assert world.can_restore and world.max_steps and world.fps > 0
    frame, state = world.reset(0)
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    shapes = {k: (v.shape, v.dtype) for k, v in state.items()}
    rng = np.random.default_rng(0)
    for _ in range(12):
        action = world.action_space.sample(rng)
        assert world.action_space.contains(action)
        step = world.step(action)
        assert step.frame.shape == (48, 48, 3) and step.frame.dtype == np.uint8
        assert isinstance(step.reward, float)
        assert {k: (v.shape, v.dtype) for k, v in step.state.items()} == shapes  # keys and shapes fixed
    # restore from the last state reproduces the last frame in a fresh world
    np.testing.assert_array_equal(make_world(name, 48).restore(step.state), step.frame)
