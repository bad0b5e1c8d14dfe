"""The World contract and the world registry.

A world is an environment that renders RGB frames. Every world, built-in or adapted, obeys:

    frame, state = world.reset(seed)                    # frame (H, W, 3) uint8, state: dict of arrays
    step = world.step(action)                           # StepResult(frame, reward, terminated, truncated, state)

`state` is the world's ground truth for the current frame (positions, velocities, ...): a dict
of numpy arrays whose keys and shapes do not change within a world. Worlds that can be put back
into a recorded state implement `restore(state) -> frame`, which the oracle baseline uses to
replay the real world from any recorded moment.

Worlds register under a name (``explorer``, ``physics/uniform``); ``gym:<id>`` names a registered
Gymnasium environment. `make_world` is the only constructor callers need.

World ids arrive from files someone may have sent you (a checkpoint's ``spec.world``, a dataset's
manifest) as well as from the command line, so every one passes `check_world_id`: a built-in name
or ``gym:<id>`` of an environment already in Gymnasium's registry, never ``gym:module:Env``, the
form with which ``gymnasium.make`` would import `module` (and run whatever code it holds).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace

MIN_RESOLUTION, MAX_RESOLUTION = 32, 256
GYM_PREFIX = "gym:"
MAX_WORLD_ID = 200
_GYM_ID = re.compile(r"(?:[A-Za-z0-9_-]+/)?[A-Za-z0-9_.-]+")
"""Gymnasium's `[namespace/]name[-vN]` without its `module:` prefix (the part gymnasium.make imports)"""


@dataclass
class StepResult:
    frame: np.ndarray  # (H, W, 3) uint8
    reward: float
    terminated: bool
    truncated: bool
    state: dict[str, np.ndarray]


class World:
    """Base class of every world. Subclasses set the attributes and implement reset/step."""

    name: str = "world"
    resolution: int = 64
    action_space: ActionSpace = ActionSpace.none()
    fps: float = 10.0
    """frames per second of the world's clock (physics: 10, i.e. 0.1 s per frame)"""
    max_steps: int | None = None
    """natural episode length in steps (physics clips: 31 steps = 32 frames); None = unbounded"""
    ends_itself: bool = False
    """whether episodes end on their own (a game over, a time limit): collection warns when its step cap cuts them"""
    native_frame: np.ndarray | None = None
    """the newest frame as the world rendered it before resizing, where it resizes (Gymnasium worlds)"""

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def step(self, action: Any) -> StepResult:
        raise NotImplementedError

    def restore(self, state: dict[str, np.ndarray]) -> np.ndarray:
        """Put the world into a recorded `state` and return its frame (oracle replay)."""
        raise NotImplementedError(f"world {self.name!r} cannot be restored from a recorded state")

    @property
    def can_restore(self) -> bool:
        return type(self).restore is not World.restore

    def close(self) -> None:
        pass


WorldFactory = Callable[..., World]
_WORLDS: dict[str, WorldFactory] = {}


def register_world(name: str) -> Callable[[WorldFactory], WorldFactory]:
    """Decorator: ``@register_world("physics/uniform")`` on a factory ``(resolution=64, **options) -> World``."""

    def deco(factory: WorldFactory) -> WorldFactory:
        if name in _WORLDS:
            raise ValueError(f"world {name!r} registered twice")
        _WORLDS[name] = factory
        return factory

    return deco


def _load_builtin_worlds() -> None:
    # Importing the modules runs their @register_world decorators (they import this module, so these
    # imports cannot be at the top).
    import playworld.worlds.explorer  # noqa: F401
    import playworld.worlds.physics  # noqa: F401


def list_worlds() -> list[str]:
    _load_builtin_worlds()
    return sorted(_WORLDS)


def check_resolution(resolution: int) -> int:
    if not (MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION):
        raise PlayworldError(
            f"resolution {resolution} is out of range",
            f"choose a square resolution from {MIN_RESOLUTION} to {MAX_RESOLUTION}, e.g. --resolution 64",
        )
    return int(resolution)


def parse_world_options(items: list[str]) -> dict[str, Any]:
    """Command-line ``KEY=VALUE`` world options -> a dict: values as JSON where they parse (numbers,
    lists, true/false), else as text. ``['map_size=64', 'name=x']`` -> ``{'map_size': 64, 'name': 'x'}``."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PlayworldError(f"--world-option {item!r} is not KEY=VALUE", "write it like --world-option map_size=64")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def check_world_id(name: Any, where: str = "") -> str:
    """The one check of a world id, wherever a run, a dataset or the command line names one.

    Refuses what is not a short printable string, and ``gym:`` ids that name a module to import
    (``gym:pkg:Env-v0``, ``gym:pkg:ns/Env-v0``). Names that build no world here (``video:<folder>``
    datasets, a Gymnasium id whose package is not installed) pass: `make_world` refuses them when
    a world is asked for, and it builds ``gym:`` worlds only from ids already in Gymnasium's registry.
    """
    of = f" ({where})" if where else ""
    if not isinstance(name, str) or not name or len(name) > MAX_WORLD_ID or not name.isprintable():
        raise PlayworldError(f"world id {str(name)[:60]!r}{of} is not a world name",
                             "use a built-in world (playworld collect --help lists them) or gym:<id>")
    if name.startswith(GYM_PREFIX) and not _GYM_ID.fullmatch(name[len(GYM_PREFIX):]):
        raise PlayworldError(
            f"world id {name!r}{of} names a module for Gymnasium to import; playworld never imports code a "
            "world id names", "use gym:<id> of an environment Gymnasium has registered (e.g. gym:CartPole-v1); "
            "for your own environment, register it in your Python code before calling playworld",
        )
    return name


def make_world(name: str, resolution: int = 64, **options: Any) -> World:
    """Build a world by name: a built-in (``explorer``, ``physics/parabola``) or ``gym:<id>`` of a
    registered Gymnasium environment (checked by `check_world_id`)."""
    check_world_id(name)
    check_resolution(resolution)
    if name.startswith(GYM_PREFIX):
        from playworld.worlds.gym import make_gym_world  # gym.py imports this module: not at the top

        return make_gym_world(name[len("gym:"):], resolution=resolution, **options)
    _load_builtin_worlds()
    if name not in _WORLDS:
        raise PlayworldError(
            f"unknown world {name!r}",
            f"choose one of {', '.join(sorted(_WORLDS))}, or gym:<id> for a Gymnasium environment",
        )
    return _WORLDS[name](resolution=resolution, **options)
