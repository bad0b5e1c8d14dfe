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
from scipy import ndimage

from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, create_or_append
from playworld.errors import PlayworldError
from playworld.worlds.base import World, check_resolution, make_world
from playworld.worlds.policies import make_policy

DEFAULT_STEPS = 500
NATIVE_FRAMES = 64
"""frames of the first episode kept at the world's own size for the small-object check"""
MIN_OBJECT_PX = 1.5
"""a moving object thinner than this after the resize is reported: bilinear resizing blends it into its background"""


def collection_seed(seed: int, first_episode: int) -> int:
    """The seed of a collection that starts at episode `first_episode` (= `seed` for a new dataset)."""
    if first_episode == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(first_episode)]).generate_state(1)[0])


def run_episode(world: World, policy: Callable, steps: int, seed: int | None,
                native: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Play one episode of at most `steps` steps; returns the arrays the store takes and whether the step
    cap (not the world) ended it (`capped`). `native` collects the world's frames before resizing."""
    frame, state = world.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset()
    noop = world.action_space.noop()
    frames, actions, rewards, terminated, truncated = [frame], [noop], [0.0], [False], [False]
    states = {k: [np.array(v, copy=True)] for k, v in state.items()}
    capped = False
    for _ in range(steps):
        action = np.asarray(policy(frame, state), dtype=world.action_space.dtype)
        result = world.step(action)
        frame, state = result.frame, result.state
        if native is not None and world.native_frame is not None and len(native) < NATIVE_FRAMES:
            native.append(np.array(world.native_frame, copy=True))
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
        truncated[-1] = capped = True  # cut by the step cap: a time limit, not a terminal state
    return {"capped": capped,
        "frames": np.stack(frames), "actions": np.stack(actions), "rewards": np.array(rewards, np.float32),
        "terminated": np.array(terminated), "truncated": np.array(truncated),
        "state": {k: np.stack(v) for k, v in states.items()},
    }


def collect(
    world: str, out: str | Path, episodes: int, policy: str | Callable = "random", seed: int = 0,
    resolution: int = 64, steps: int | None = None, world_options: dict | None = None, progress: bool = True,
    warn: Callable[[str], None] | None = None, layout: str | None = None,
) -> Dataset:
    """Collect `episodes` episodes of `world` into the dataset at `out` (created or appended to).

    `warn` hears what the data may silently lose: episodes the step cap cut before the world ended them,
    and moving objects so small that the resize to `resolution` may erase them. `layout` is a new
    dataset's (`playworld.data.store.create_or_append`).
    """

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
        with create_or_append(out, world, resolution, env.action_space, env.fps, world_options, source=source,
                              layout=layout) as writer:
            run_seed = collection_seed(seed, writer.next_id)
            agent = make_policy(policy, env.action_space, seed=run_seed)
            native: list[np.ndarray] = []
            capped = 0
            for i in progress_iter(range(episodes), f"collecting {world}", enabled=progress):
                # Seed the world on the first reset only; later resets continue its random stream.
                ep = run_episode(env, agent, steps, seed=run_seed if i == 0 else None, native=native if i == 0 else None)
                capped += ep.pop("capped")
                _check_frames(ep["frames"], resolution, world)
                writer.add_episode(**ep)
            for message in collection_warnings(env, world, steps, capped, episodes, native, resolution):
                if warn is not None:
                    warn(message)
            return writer.dataset()
    finally:
        env.close()


def collection_warnings(env: World, world: str, steps: int, capped: int, episodes: int,
                        native: list[np.ndarray], resolution: int) -> list[str]:
    """What a collection may have lost without a word: cut episodes, objects too small to survive the resize."""
    out = []
    if capped and (env.ends_itself or env.max_steps is not None):
        limit = f" (its own limit is {env.max_steps} steps)" if env.max_steps else ""
        out.append(f"{capped} of {episodes} episodes were cut at --steps {steps} before {world} ended them{limit}; "
                   "pass a larger --steps to keep whole episodes")
    blob = smallest_moving_blob(native)
    if blob is not None:
        (bh, bw), (h, w) = blob, native[0].shape[:2]
        scaled = min(bh * resolution / h, bw * resolution / w)
        if scaled < MIN_OBJECT_PX:
            fits = next((r for r in (64, 96, 128, 192, 256) if min(bh * r / h, bw * r / w) >= MIN_OBJECT_PX), 256)
            out.append(f"the smallest moving object in {world} is {bh}x{bw} px in its {h}x{w} frames, about {scaled:.1f} px "
                       f"at {resolution}x{resolution}: the resize may blur it away; collect at --resolution {fits} or more")
    return out


def smallest_moving_blob(frames: list[np.ndarray], threshold: int = 24, min_area: int = 2) -> tuple[int, int] | None:
    """(height, width) in pixels of the smallest moving object in `frames`: a connected region that differs
    from the frame's background (its most common colour) and changes from the previous frame; None when
    nothing moves. The object, not its change: a slow cart's change is a sliver, the cart is not."""
    best = None
    for a, b in zip(frames[:-1], frames[1:]):
        if a.shape != b.shape:
            continue
        moving = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(-1) > threshold
        colours, counts = np.unique(b.reshape(-1, b.shape[-1]), axis=0, return_counts=True)
        background = colours[counts.argmax()].astype(np.int16)
        labels, _ = ndimage.label(np.abs(b.astype(np.int16) - background).max(-1) > threshold)
        for i in np.unique(labels[moving & (labels > 0)]):
            rows, cols = ndimage.find_objects((labels == i).astype(np.int8))[0]
            h, w = rows.stop - rows.start, cols.stop - cols.start
            if h * w >= min_area and (best is None or min(h, w) < min(best)):
                best = (h, w)
    return best


def _check_frames(frames: np.ndarray, resolution: int, world: str) -> None:
    if frames.dtype != np.uint8 or frames.shape[1:] != (resolution, resolution, 3):
        raise RuntimeError(f"world {world} rendered frames {frames.shape} {frames.dtype}, expected (T, {resolution}, {resolution}, 3) uint8")
