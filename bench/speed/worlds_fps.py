"""Frames per second of every built-in world on one core, printed as JSON.

    python bench/speed/worlds_fps.py [--resolution 64] [--seconds 2] [--world explorer ...]

For each world: `step_fps` steps (dynamics + render) per second with random actions, and
`episode_fps` frames per second over whole episodes, resets included (explorer generates a new
256 x 256 map on each reset). Both are per CPU second of this process (`time.process_time`), so
they measure one core's throughput even on a shared machine; `step_fps_wall` is the same count
per wall-clock second, which drops when other processes compete for the core. `frames` and
`episode_frames` are the counts behind the rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from playworld.worlds import list_worlds, make_world

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

CHUNK = 256  # steps timed per burst (an episode end cuts a burst short)


def step_rate(world, actions: list, seconds: float) -> dict:
    """Steps per CPU second and per wall second; episode ends reset the world, untimed."""
    frames, busy, wall, t_end = 0, 0.0, 0.0, time.process_time() + seconds
    while time.process_time() < t_end:
        t0, w0 = time.process_time(), time.perf_counter()
        for i in range(CHUNK):
            done = world.step(actions[i % len(actions)])
            if done.terminated or done.truncated:
                break
        busy += time.process_time() - t0
        wall += time.perf_counter() - w0
        frames += i + 1
        if done.terminated or done.truncated:
            world.reset()
    return {"step_fps": round(frames / busy), "step_fps_wall": round(frames / wall), "frames": frames}


def episode_rate(world, actions: list, seconds: float) -> dict:
    """Frames per CPU second over whole episodes, resets included."""
    frames, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        world.reset()
        frames += 1
        for i in range(world.max_steps or 200):
            frames += 1
            done = world.step(actions[i % len(actions)])
            if done.terminated or done.truncated:
                break
    return {"episode_fps": round(frames / (time.process_time() - t0)), "episode_frames": frames}


def measure(name: str, resolution: int, seconds: float) -> dict:
    world = make_world(name, resolution)
    rng = np.random.default_rng(0)
    world.reset(0)
    actions = [world.action_space.sample(rng) for _ in range(1024)]
    return {**step_rate(world, actions, seconds), **episode_rate(world, actions, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[common.options(threads=1)])
    parser.add_argument("--resolution", type=int, default=64, help="square frame size in pixels")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per world and measure")
    parser.add_argument("--world", action="append", default=None, help="a world to time (repeatable; default: every one)")
    args = parser.parse_args()
    common.start(args)
    results = {name: measure(name, args.resolution, args.seconds) for name in (args.world or list_worlds())}
    common.report("worlds_fps", {"resolution": args.resolution, "seconds": args.seconds, "target_fps": 5000,
                                 "worlds": results}, args)


if __name__ == "__main__":
    main()
