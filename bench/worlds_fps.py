"""Frames per second of every built-in world on one core, printed as JSON.

    .venv/bin/python bench/worlds_fps.py [--resolution 64] [--seconds 2]

For each world: `step_fps` steps (dynamics + render) per second with random actions, and
`episode_fps` frames per second over whole episodes, resets included (explorer generates a new
256 x 256 map on each reset). Both are per CPU second of this process (`time.process_time`), so
they measure one core's throughput even on a shared machine; `step_fps_wall` is the same count
per wall-clock second, which drops when other processes compete for the core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from playworld.worlds import list_worlds, make_world  # noqa: E402


def measure(name: str, resolution: int, seconds: float) -> dict:
    world = make_world(name, resolution)
    rng = np.random.default_rng(0)
    world.reset(0)
    actions = [world.action_space.sample(rng) for _ in range(1024)]
    # steps only (reset when an episode ends, but do not count the reset time)
    frames, busy, wall, t_end = 0, 0.0, 0.0, time.process_time() + seconds
    while time.process_time() < t_end:
        t0, w0 = time.process_time(), time.perf_counter()
        for i in range(256):
            done = world.step(actions[i % 1024])
            if done.terminated or done.truncated:
                break
        busy += time.process_time() - t0
        wall += time.perf_counter() - w0
        frames += i + 1
        if done.terminated or done.truncated:
            world.reset()
    step_fps = frames / busy
    # whole episodes, resets included
    episode_frames, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        world.reset()
        episode_frames += 1
        for i in range(world.max_steps or 200):
            episode_frames += 1
            done = world.step(actions[i % 1024])
            if done.terminated or done.truncated:
                break
    episode_fps = episode_frames / (time.process_time() - t0)
    return {"step_fps": round(step_fps), "episode_fps": round(episode_fps),
            "step_fps_wall": round(frames / wall), "frames": frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=64, help="square frame size in pixels")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per world and measure")
    args = parser.parse_args()
    results = {name: measure(name, args.resolution, args.seconds) for name in list_worlds()}
    print(json.dumps({"resolution": args.resolution, "threads": 1, "cpu": platform.processor() or platform.machine(),
                      "target_fps": 5000, "worlds": results}, indent=2))


if __name__ == "__main__":
    main()
