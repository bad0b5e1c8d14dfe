"""Where a play session's starting context (K real frames and the actions that led into them) comes from.

- `EnvContexts`: run the real world (built-in or Gymnasium) from a fresh seed for K frames under a
  random policy. The live world is handed to the session, which steps it beside the model.
- `DatasetContexts`: a random window of the dataset's val split. When the world can be restored
  from the recorded state (built-in worlds), the real world is restored beside the model too.

Both return a `Context` holding the recorded world state at the newest frame (oracle models need it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from playworld.data.store import Dataset
from playworld.data.windows import cut_window
from playworld.errors import PlayworldError
from playworld.models.interface import WorldSpec
from playworld.worlds.base import make_world


@dataclass
class Context:
    frames: np.ndarray  # (K, H, W, 3) uint8
    actions: np.ndarray  # (K,) int64 or (K, dim) float32; actions[i] led into frames[i]
    world_state: dict[str, np.ndarray] | None  # ground truth at frames[-1], when known
    real: Any = None  # a playworld World in the state of frames[-1], or None
    source: dict = field(default_factory=dict)  # where it came from, for the page and recordings


class ContextSource(Protocol):
    def sample(self, seed: int, real: Any = None) -> Context:
        """A new context; `real` is the world the session used last time (reused when possible)."""
        ...


def _check_spec(what: str, resolution: int, space, spec: WorldSpec) -> None:
    if resolution != spec.resolution or not spec.action_space.accepts(space):
        raise PlayworldError(
            f"{what} ({resolution}x{resolution}, actions {space.describe()}) does not match the model "
            f"({spec.resolution}x{spec.resolution}, actions {spec.action_space.describe()})",
            "play with --context-from set to the dataset the model was trained on, or --context-from env",
        )


class EnvContexts:
    """Contexts from the real world: reset(seed), then K-1 random actions (each held for a few steps)."""

    def __init__(self, world: str, spec: WorldSpec, world_options: dict | None = None, repeat: int = 4):
        self.world_name, self.spec, self.repeat = world, spec, repeat
        self.world_options = dict(world_options or {})
        probe = make_world(world, resolution=spec.resolution, **self.world_options)
        _check_spec(f"world {world!r}", probe.resolution, probe.action_space, spec)
        probe.close()

    def sample(self, seed: int, real: Any = None) -> Context:
        world = real if real is not None else make_world(self.world_name, resolution=self.spec.resolution, **self.world_options)
        space, K = world.action_space, self.spec.context
        for attempt in range(20):  # an episode that ends during the warm-up starts again from the next seed
            rng = np.random.default_rng([seed, attempt])
            frame, state = world.reset(seed=int(seed) * 100 + attempt)
            frames, actions = [frame], [space.noop()]
            action, done = space.noop(), False
            for i in range(1, K):
                if i % self.repeat == 1:
                    action = space.sample(rng)
                res = world.step(action)
                frames.append(res.frame), actions.append(action)
                state, done = res.state, res.terminated or res.truncated
                if done:
                    break
            if not done:
                return Context(
                    frames=np.stack(frames).astype(np.uint8), actions=np.stack(actions).astype(space.dtype),
                    world_state=state, real=world, source={"from": "env", "world": self.world_name, "seed": int(seed)},
                )
        raise PlayworldError(
            f"world {self.world_name!r} ends within {K} steps of every reset", "use --context-from DATA instead",
        )


class DatasetContexts:
    """Contexts from a dataset split (val by default): a random episode and a random window of K frames."""

    def __init__(self, path: str | Path, spec: WorldSpec, split: str = "val"):
        self.data = Dataset(path)
        self.spec = spec
        _check_spec(f"dataset {path}", self.data.resolution, self.data.action_space, spec)
        K = spec.context
        ids = [e for e in self.data.episode_ids(split) if self.data.episode_length(e) >= K]
        if not ids:  # tiny datasets may have no usable val episode; any episode still gives a real context
            ids = [e for e in self.data.episode_ids() if self.data.episode_length(e) >= K]
        if not ids:
            raise PlayworldError(f"dataset {path} has no episode of at least {K} frames", "collect longer episodes")
        self.ids, self.split = ids, split
        self.can_restore = self._restorable()

    def _restorable(self) -> bool:
        if not self.data.state_keys or self.data.world.startswith("gym:"):
            return False
        try:
            return bool(self._make_world().can_restore)
        except PlayworldError:
            return False

    def _make_world(self):
        options = self.data.manifest.get("world_options") or {}
        return make_world(self.data.world, resolution=self.data.resolution, **options)

    def sample(self, seed: int, real: Any = None) -> Context:
        rng = np.random.default_rng(seed)
        ep = int(rng.choice(self.ids))
        episode = self.data.load_episode(ep)
        t = int(rng.integers(self.spec.context, len(episode) + 1))  # window frames[t-K:t]
        K = self.spec.context
        state = {k: np.asarray(v[t - 1]) for k, v in episode.state.items()} or None
        if self.can_restore and state is not None:
            real = real if real is not None else self._make_world()
            real.restore(state)
        else:
            real = None
        window = cut_window(episode, t, K, 0)
        return Context(
            frames=np.array(window["frames"], dtype=np.uint8), actions=np.array(window["actions"]),
            world_state=state, real=real,
            source={"from": "data", "path": str(self.data.path), "episode": ep, "t": t},
        )
