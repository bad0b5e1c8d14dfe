"""Collect episodes from a world with a policy into the episode store.

One episode of `steps` steps holds steps + 1 frames: frames[0] is the reset frame, reached by the
no-op actions[0]; actions[t] (t >= 1) is the policy's action at frames[t-1], which led into frames[t].
The world is seeded once per collection (so episodes differ) and the policy from the same seed;
a collection is deterministic for its seed. Appending to a dataset derives both seeds from
(seed, first new episode id), so a second `collect --seed 0` adds new episodes, not copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, create_or_append
from playworld.errors import PlayworldError
from playworld.worlds.base import World, check_resolution, make_world
from playworld.worlds.policies import make_policy

DEFAULT_STEPS = 500


def collection_seed(seed: int, first_episode: int) -> int:
    """The seed of a collection that starts at episode `first_episode` (= `seed` for a new dataset)."""
    if first_episode == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(first_episode)]).generate_state(1)[0])


def run_episode(world: World, policy: Callable, steps: int, seed: int | None) -> dict[str, Any]:
    """Play one episode of at most `steps` steps; returns the arrays the store takes."""
    frame, state = world.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset()
    noop = world.action_space.noop()
    frames, actions, rewards, terminated, truncated = [frame], [noop], [0.0], [False], [False]
    states = {k: [np.array(v, copy=True)] for k, v in state.items()}
    for _ in range(steps):
        action = np.asarray(policy(frame, state), dtype=world.action_space.dtype)
        result = world.step(action)
        frame, state = result.frame, result.state
        frames.append(frame)
        actions.append(action)
        rewards.append(float(result.reward))
        terminated.append(bool(result.terminated))
        truncated.append(bool(result.truncated))
        for k, v in state.items():
            states[k].append(np.array(v, copy=True))
        if result.terminated or result.truncated:
            break
    else:
        truncated[-1] = True  # cut by the step cap: a time limit, not a terminal state
    return {
        "frames": np.stack(frames), "actions": np.stack(actions), "rewards": np.array(rewards, np.float32),
        "terminated": np.array(terminated), "truncated": np.array(truncated),
        "state": {k: np.stack(v) for k, v in states.items()},
    }


def collect(
    world: str, out: str | Path, episodes: int, policy: str | Callable = "random", seed: int = 0,
    resolution: int = 64, steps: int | None = None, world_options: dict | None = None, progress: bool = True,
) -> Dataset:
    """Collect `episodes` episodes of `world` into the dataset at `out` (created or appended to)."""

    if episodes < 1:
        raise PlayworldError(f"--episodes must be at least 1, got {episodes}", "pass e.g. --episodes 100")
    if steps is not None and steps < 1:
        raise PlayworldError(f"--steps must be at least 1, got {steps}", "pass e.g. --steps 200, or leave it out")
    check_resolution(resolution)
    env = make_world(world, resolution=resolution, **(world_options or {}))
    try:
        steps = steps or env.max_steps or DEFAULT_STEPS
        make_policy(policy, env.action_space, seed=seed)  # a bad policy fails before the dataset is touched
        policy_name = policy if isinstance(policy, str) else getattr(policy, "__name__", "callable")
        source = {"kind": "collect", "policy": policy_name, "seed": int(seed), "steps": int(steps)}
        with create_or_append(out, world, resolution, env.action_space, env.fps, world_options, source=source) as writer:
            run_seed = collection_seed(seed, writer.next_id)
            agent = make_policy(policy, env.action_space, seed=run_seed)
            for i in progress_iter(range(episodes), f"collecting {world}", enabled=progress):
                # Seed the world on the first reset only; later resets continue its random stream.
                ep = run_episode(env, agent, steps, seed=run_seed if i == 0 else None)
                _check_frames(ep["frames"], resolution, world)
                writer.add_episode(**ep)
            return writer.dataset()
    finally:
        env.close()


def _check_frames(frames: np.ndarray, resolution: int, world: str) -> None:
    if frames.dtype != np.uint8 or frames.shape[1:] != (resolution, resolution, 3):
        raise RuntimeError(f"world {world} rendered frames {frames.shape} {frames.dtype}, expected (T, {resolution}, {resolution}, 3) uint8")
