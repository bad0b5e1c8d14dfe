import numpy as np
import pytest

from playworld.spaces import ActionSpace


def test_discrete_roundtrip_and_contains():
    s = ActionSpace.discrete(5, ["noop", "up", "down", "left", "right"])
    assert ActionSpace.from_dict(s.to_dict()) == s
    assert s.contains(np.array(4)) and not s.contains(np.array(5)) and not s.contains(np.array(1.5))
    assert s.noop().dtype == np.int64


def test_continuous_bounds():
    s = ActionSpace.continuous([-1, 0], [1, 2])
    assert s.shape == (2,) and s.dtype == np.float32
    a = s.sample(np.random.default_rng(0))
    assert s.contains(a) and not s.contains(np.array([2.0, 1.0]))
    with pytest.raises(ValueError):
        ActionSpace.continuous([], [])


def test_accepts_same_space_and_latent_reads_action_free_data():
    five, none = ActionSpace.discrete(5), ActionSpace.none()
    latent = ActionSpace.discrete(8, [f"latent {i}" for i in range(8)])
    assert five.accepts(five) and not five.accepts(none) and not five.accepts(ActionSpace.discrete(4))
    assert latent.is_latent and latent.accepts(none) and not five.is_latent
    assert not none.accepts(five)
