"""Collection says what the data may silently lose: cut episodes, objects too small for the resize."""

from __future__ import annotations

import numpy as np

from playworld.data.collect import collect, collection_warnings, smallest_moving_blob
from playworld.worlds.base import World


def _frames_with(block: tuple[int, int], size=(210, 160), steps=4) -> list[np.ndarray]:
    frames = []
    for t in range(steps):
        f = np.full((*size, 3), (144, 72, 17), np.uint8)  # a flat background, as in Atari
        f[100:100 + block[0], 20 + 5 * t:20 + 5 * t + block[1]] = 236  # a moving block
        f[10:40, 10:20] = 90  # a still object: not moving, never reported
        frames.append(f)
    return frames


def test_the_smallest_moving_object_is_measured_whole():
    assert smallest_moving_blob(_frames_with((4, 2))) == (4, 2)
    assert smallest_moving_blob(_frames_with((30, 40))) == (30, 40)  # the object, not the sliver that changes
    assert smallest_moving_blob([np.zeros((8, 8, 3), np.uint8)] * 3) is None


def test_a_ball_too_small_for_the_resize_is_reported_with_a_resolution_that_keeps_it():
    env = World()
    tiny = collection_warnings(env, "gym:Pong", 100, 0, 1, _frames_with((4, 2)), 64)
    assert len(tiny) == 1 and "4x2 px" in tiny[0] and "0.8 px at 64x64" in tiny[0] and "--resolution 128" in tiny[0]
    assert collection_warnings(env, "gym:Pong", 100, 0, 1, _frames_with((12, 12)), 64) == []


def test_episodes_cut_by_the_step_cap_are_reported(tmp_path):
    heard: list[str] = []
    collect("physics/uniform", tmp_path / "cut", 2, steps=10, resolution=32, progress=False, warn=heard.append)
    assert any("2 of 2 episodes were cut at --steps 10" in m and "31 steps" in m for m in heard)
    heard.clear()
    collect("physics/uniform", tmp_path / "whole", 2, resolution=32, progress=False, warn=heard.append)
    assert heard == []  # the world's own length: nothing cut
