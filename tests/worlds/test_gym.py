"""Gymnasium adapter: frames, action spaces, state, seeding once, errors."""

import numpy as np
import pytest

from playworld.errors import PlayworldError
from playworld.worlds import make_world


def episode(world, n, seed=None):
    frame, state = world.reset(seed)
    frames, states = [frame], [state]
    for _ in range(n):
        step = world.step(world.action_space.noop())
        frames.append(step.frame)
        states.append(step.state)
        if step.terminated or step.truncated:
            break
    return np.stack(frames), states


def test_cartpole():
    w = make_world("gym:CartPole-v1", 32)
    assert w.action_space.kind == "discrete" and w.action_space.n == 2
    assert w.max_steps == 500 and not w.can_restore
    frames, states = episode(w, 5, seed=0)
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
    assert states[0]["obs"].shape == (4,) and states[0]["obs"].dtype == np.float32
    w.close()


def test_seed_once_then_episodes_differ():
    w = make_world("gym:CartPole-v1", 32)
    first = [w.reset(0)[1]["obs"]] + [w.reset()[1]["obs"] for _ in range(3)]
    assert len({o.tobytes() for o in first}) == 4  # later resets draw from the env's own RNG
    again = [w.reset(0)[1]["obs"]] + [w.reset()[1]["obs"] for _ in range(3)]
    for a, b in zip(first, again):  # and the whole sequence is reproducible from the one seed
        np.testing.assert_array_equal(a, b)
    w.close()


def test_pong_and_breakout():
    for env_id in ("ALE/Pong-v5", "ALE/Breakout-v5"):
        w = make_world(f"gym:{env_id}", 64)
        assert w.action_space.kind == "discrete" and w.action_space.names[0] == "NOOP"
        frames, states = episode(w, 3, seed=0)
        assert frames.shape == (4, 64, 64, 3)
        assert states[0]["ram"].shape == (128,) and states[0]["ram"].dtype == np.uint8
        assert frames.std() > 0  # the game is actually drawn
        w.close()


def test_minigrid():
    w = make_world("gym:MiniGrid-Empty-8x8-v0", 48)
    assert w.action_space.n == 7 and w.action_space.names[:3] == ("left", "right", "forward")
    frame, state = w.reset(0)
    assert frame.shape == (48, 48, 3) and state["agent_pos"].shape == (2,)
    step = w.step(np.array(2))  # forward
    assert not np.array_equal(step.state["agent_pos"], state["agent_pos"])
    w.close()


def test_continuous_box():
    w = make_world("gym:Pendulum-v1", 32)
    assert w.action_space.kind == "continuous" and w.action_space.dim == 1
    frame, _ = w.reset(0)
    step = w.step(np.array([5.0], np.float32))  # clipped into [-2, 2]
    assert step.frame.shape == (32, 32, 3)
    w.close()


def test_unknown_id():
    with pytest.raises(PlayworldError, match="NoSuchEnv-v0"):
        make_world("gym:NoSuchEnv-v0")
    with pytest.raises(PlayworldError, match="playworld\\[gym\\]"):
        make_world("gym:ALE/NoSuchGame-v5")


def test_unsupported_action_space():
    with pytest.raises(PlayworldError, match="action space"):
        _tuple_action_world()


def _tuple_action_world():
    import gymnasium as gym
    from gymnasium import spaces

    class TupleActions(gym.Env):
        metadata = {"render_modes": ["rgb_array"]}
        action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))
        observation_space = spaces.Box(0, 1, (1,))

        def __init__(self, render_mode=None):
            pass

    if "playworld-test/Tuple-v0" not in gym.registry:
        gym.register("playworld-test/Tuple-v0", entry_point=TupleActions)
    return make_world("gym:playworld-test/Tuple-v0")


@pytest.mark.mujoco
def test_mujoco_inverted_pendulum(monkeypatch):
    """Skipped only when the optional extra cannot be imported; with it, any error is a failure (an adapter
    bug must not pass as 'MuJoCo cannot render here')."""
    pytest.importorskip("mujoco", reason="needs the optional mujoco extra (pip install playworld[mujoco])", exc_type=ImportError)
    monkeypatch.setenv("MUJOCO_GL", "egl")
    w = make_world("gym:InvertedPendulum-v5", 32)
    frame, state = w.reset(0)
    assert w.action_space.kind == "continuous" and state["obs"].shape == (4,)
    assert w.step(w.action_space.noop()).frame.shape == (32, 32, 3)
    w.close()
