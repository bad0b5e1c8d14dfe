"""Keys map to actions from the action space's names; agents act within the space."""

from __future__ import annotations

import numpy as np

from playworld.play.controls import KeyMap, list_agents, make_agent, parse_direction
from playworld.spaces import ActionSpace

ATARI = ("NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT", "DOWNLEFT", "UPFIRE")


def test_direction_names_parse():
    assert parse_direction("UPRIGHT") == {"up", "right"}
    assert parse_direction("down-left fire") == {"down", "left", "fire"}
    assert parse_direction("noop") == frozenset()
    assert parse_direction("jump") is None and parse_direction("upjump") is None


def test_explorer_arrows_and_wasd():
    km = KeyMap(ActionSpace.discrete(5, ("noop", "up", "down", "left", "right")))
    assert int(km.action([])) == 0
    assert int(km.action(["ArrowUp"])) == 1 and int(km.action(["KeyW"])) == 1
    assert int(km.action(["ArrowDown"])) == 2 and int(km.action(["KeyA"])) == 3 and int(km.action(["KeyD"])) == 4
    assert int(km.action(["ArrowUp", "ArrowDown"])) == 0  # opposite keys cancel
    assert int(km.action(["KeyQ", "Tab"])) == 0  # keys it does not use
    # up+right has no action of its own: one of the two held directions, never something else
    assert int(km.action(["ArrowUp", "ArrowRight"])) in (1, 4)
    legend = {b["does"]: b["keys"] for b in km.legend()}
    assert legend["up"] == ["↑", "W"] and legend["right"] == ["→", "D"]
    assert {"ArrowUp", "KeyS", "ArrowLeft", "KeyD"} <= km.codes


def test_atari_combinations_and_fire():
    km = KeyMap(ActionSpace.discrete(len(ATARI), ATARI))
    name = lambda keys: ATARI[int(km.action(keys))]  # noqa: E731
    assert name([]) == "NOOP" and name(["Space"]) == "FIRE"
    assert name(["ArrowUp", "ArrowRight"]) == "UPRIGHT" and name(["KeyS", "KeyA"]) == "DOWNLEFT"
    assert name(["ArrowUp", "Space"]) == "UPFIRE"
    assert name(["ArrowDown", "Space"]) in ("DOWN", "FIRE")  # no DOWNFIRE: a held part of it


def test_unnamed_and_other_actions_get_digits():
    km = KeyMap(ActionSpace.discrete(3))
    assert [int(km.action(k)) for k in ([], ["Digit1"], ["Digit2"], ["Digit3"])] == [0, 1, 2, 0]
    km = KeyMap(ActionSpace.discrete(4, ("noop", "jump", "up", "interact")))
    assert int(km.action(["Digit1"])) == 1 and int(km.action(["Digit2"])) == 3 and int(km.action(["KeyW"])) == 2
    assert int(km.action(["Digit2", "KeyW", "Digit1"])) == 1  # the newest non-direction key wins
    assert {"does": "jump", "keys": ["1"], "codes": ["Digit1"]} in km.legend()


def test_continuous_keys_push_to_bounds():
    km = KeyMap(ActionSpace.continuous([-2.0, 0.0, -1.0], [2.0, 1.0, 1.0]))
    np.testing.assert_allclose(km.action([]), [0, 0, 0])
    np.testing.assert_allclose(km.action(["ArrowRight"]), [2, 0, 0])
    np.testing.assert_allclose(km.action(["KeyA", "ArrowUp"]), [-2, 1, 0])
    np.testing.assert_allclose(km.action(["ArrowLeft", "ArrowRight", "KeyL"]), [0, 0, 1])
    np.testing.assert_allclose(km.action(["ShiftLeft", "ArrowLeft"]), [-1, 0, 0])
    assert km.action([]).dtype == np.float32
    assert len([b for b in km.legend() if b["does"].startswith("dim")]) == 6


def test_none_space_has_no_keys():
    km = KeyMap(ActionSpace.none())
    assert int(km.action(["ArrowUp"])) == 0 and km.codes == set()
    assert "no actions" in km.legend()[0]["does"]


def test_random_agent_acts_in_space_and_holds():
    assert "random" in list_agents()
    space = ActionSpace.discrete(5)
    agent = make_agent("random", space)
    agent.reset(3)
    acts = [int(agent.act(np.zeros((8, 8, 3), np.uint8))) for _ in range(40)]
    assert all(space.contains(np.int64(a)) for a in acts) and len(set(acts)) > 1
    assert all(acts[i] == acts[i - i % 4] for i in range(40))  # each action held for 4 ticks
    cont = make_agent("random", ActionSpace.continuous([-1], [1]))
    assert ActionSpace.continuous([-1], [1]).contains(cont.act(None))
