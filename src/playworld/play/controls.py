"""Who chooses the action each tick: the keyboard (a `KeyMap` built from the action space) or an agent.

Keys are `KeyboardEvent.code` values ("ArrowUp", "KeyW", "Digit1", "Space"), so the mapping does not
depend on the keyboard layout. The browser sends the list of held keys (oldest first); the server
turns it into an action every tick, so a held key keeps acting.

Discrete spaces: action names are read as directions ("up", "LEFT", Atari's "UPRIGHTFIRE") and get
arrows / WASD (+ Space for fire); the other actions get digits, then a few letters. Nothing held is
the no-op (action 0). Continuous spaces: each dimension gets a pair of keys that push it to its
lower / upper bound (Shift: half way). Agents (`register_agent`) pick actions from the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from playworld.agents.agent import check_same_space, load_actor, load_policy
from playworld.spaces import ActionSpace

# Direction keys and the synonyms action names use for them.
_DIRECTION_KEYS = {
    "up": ("ArrowUp", "KeyW"), "down": ("ArrowDown", "KeyS"),
    "left": ("ArrowLeft", "KeyA"), "right": ("ArrowRight", "KeyD"), "fire": ("Space",),
}
_SYNONYMS = {
    "up": "up", "north": "up", "forward": "up", "down": "down", "south": "down", "back": "down",
    "backward": "down", "left": "left", "west": "left", "right": "right", "east": "right",
    "fire": "fire", "shoot": "fire", "noop": "", "none": "", "nothing": "", "idle": "", "stay": "",
}
_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
# Keys for the actions that are not directions, in the order they are handed out.
_OTHER_KEYS = tuple(f"Digit{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 9, 0)) + tuple(
    f"Key{c}" for c in "QERFZXCVBNMUIOPGHJKLTY"
)
# Continuous: (lower-bound keys, upper-bound keys) for dimension 0, 1, 2, ...
_AXIS_KEYS = (
    (("ArrowLeft", "KeyA"), ("ArrowRight", "KeyD")), (("ArrowDown", "KeyS"), ("ArrowUp", "KeyW")),
    (("KeyJ",), ("KeyL",)), (("KeyK",), ("KeyI",)), (("KeyZ",), ("KeyX",)), (("KeyC",), ("KeyV",)),
    (("Digit1",), ("Digit2",)), (("Digit3",), ("Digit4",)), (("Digit5",), ("Digit6",)), (("Digit7",), ("Digit8",)),
)
_SHIFT = ("ShiftLeft", "ShiftRight")
_WORD = re.compile("|".join(sorted(_SYNONYMS, key=len, reverse=True)))


def key_label(code: str) -> str:
    """'ArrowUp' -> '↑', 'KeyW' -> 'W', 'Digit1' -> '1', 'Space' -> 'Space'."""
    arrows = {"ArrowUp": "↑", "ArrowDown": "↓", "ArrowLeft": "←", "ArrowRight": "→"}
    if code in arrows:
        return arrows[code]
    for prefix in ("Key", "Digit"):
        if code.startswith(prefix) and len(code) == len(prefix) + 1:
            return code[len(prefix):]
    return code


def parse_direction(name: str) -> frozenset[str] | None:
    """An action name as a set of directions ('UPRIGHT' -> {up, right}; 'noop' -> {}); None if it is not one."""
    s = re.sub(r"[^a-z]", "", name.lower())
    if not s:
        return None
    parts, pos = [], 0
    while pos < len(s):
        m = _WORD.match(s, pos)
        if not m:
            return None
        parts.append(_SYNONYMS[m.group()])
        pos = m.end()
    return frozenset(p for p in parts if p)


@dataclass(frozen=True)
class Binding:
    keys: tuple[str, ...]
    """KeyboardEvent.code values that trigger it"""
    does: str
    """what the legend says it does"""

    def legend(self) -> dict:
        return {"keys": [key_label(k) for k in self.keys], "codes": list(self.keys), "does": self.does}


class KeyMap:
    """Held keys -> action for one action space. `legend()` lists the bindings for the page."""

    def __init__(self, space: ActionSpace):
        self.space = space
        self.bindings: list[Binding] = []
        self._direction_of: dict[str, str] = {}  # key code -> direction
        self._other_of: dict[str, int] = {}  # key code -> discrete action index
        self._actions_by_dirs: dict[frozenset[str], int] = {}
        self._noop = int(space.noop()) if space.is_discrete else None
        if space.kind == "continuous":
            self._build_continuous()
        elif space.kind == "discrete":
            self._build_discrete()

    # -- building -------------------------------------------------------------------------------
    def _build_discrete(self) -> None:
        names = list(self.space.names) + [f"action {i}" for i in range(len(self.space.names), self.space.n)]
        others: list[int] = []
        for i, name in enumerate(names):
            dirs = parse_direction(name) if self.space.names else None
            if dirs is None or dirs in self._actions_by_dirs:
                if i != self._noop:
                    others.append(i)
                continue
            self._actions_by_dirs[dirs] = i
        used = set().union(*self._actions_by_dirs) if self._actions_by_dirs else set()
        for d in ("up", "down", "left", "right", "fire"):
            if d in used:
                for k in _DIRECTION_KEYS[d]:
                    self._direction_of[k] = d
                self.bindings.append(Binding(_DIRECTION_KEYS[d], d))
        for i, key in zip(others, _OTHER_KEYS):
            self._other_of[key] = i
            self.bindings.append(Binding((key,), names[i]))
        for i in others[len(_OTHER_KEYS):]:
            self.bindings.append(Binding((), f"{names[i]} (no key; agent only)"))
        if self._noop is not None:
            self.bindings.append(Binding((), f"nothing held: {names[self._noop]}"))

    def _build_continuous(self) -> None:
        s = self.space
        for d in range(s.dim):
            if d >= len(_AXIS_KEYS):
                self.bindings.append(Binding((), f"dim {d}: stays at {float(s.noop()[d]):g} (no key)"))
                continue
            lo, hi = _AXIS_KEYS[d]
            self.bindings.append(Binding(lo, f"dim {d} -> {s.low[d]:g}"))
            self.bindings.append(Binding(hi, f"dim {d} -> {s.high[d]:g}"))
        if s.dim:
            self.bindings.append(Binding(_SHIFT, "hold with the above: half way"))

    # -- using ----------------------------------------------------------------------------------
    def legend(self) -> list[dict]:
        if self.space.kind == "none":
            return [{"keys": [], "codes": [], "does": "this world takes no actions: watch it run"}]
        return [b.legend() for b in self.bindings]

    @property
    def codes(self) -> set[str]:
        """Every key code this map reacts to (the page prevents their default, e.g. scrolling)."""
        return {k for b in self.bindings for k in b.keys}

    def action(self, held: list[str]) -> np.ndarray:
        """Held key codes (oldest first) -> action: int64 () for discrete/none, float32 (dim,) for continuous."""
        if self.space.kind == "continuous":
            return self._continuous(set(held))
        if self.space.kind == "none":
            return np.array(0, np.int64)
        for key in reversed(held):  # the newest non-direction key wins
            if key in self._other_of:
                return np.array(self._other_of[key], np.int64)
        dirs = {self._direction_of[k] for k in held if k in self._direction_of}
        dirs = {d for d in dirs if _OPPOSITE.get(d) not in dirs}  # up + down cancel
        if not dirs:
            return np.array(self._noop, np.int64)
        if frozenset(dirs) in self._actions_by_dirs:
            return np.array(self._actions_by_dirs[frozenset(dirs)], np.int64)
        # No exact action (e.g. up+right without UPRIGHT): the action covering most held directions.
        best = max(
            ((len(a), i) for a, i in self._actions_by_dirs.items() if a and a <= dirs), default=None,
        )
        return np.array(best[1] if best else self._noop, np.int64)

    def _continuous(self, held: set[str]) -> np.ndarray:
        s = self.space
        out = s.noop().astype(np.float32)
        scale = 0.5 if held & set(_SHIFT) else 1.0
        for d in range(min(s.dim, len(_AXIS_KEYS))):
            lo, hi = _AXIS_KEYS[d]
            down, up = bool(held & set(lo)), bool(held & set(hi))
            if down != up:
                target = s.low[d] if down else s.high[d]
                out[d] = out[d] + scale * (target - out[d])
        return out


# -- agents -------------------------------------------------------------------------------------
class Agent(Protocol):
    """A policy that plays in place of the keyboard."""

    def reset(self, seed: int) -> None: ...

    def act(self, frame: np.ndarray) -> np.ndarray:
        """frame (H, W, 3) uint8, the newest model frame -> one action of the space."""
        ...


AgentFactory = Callable[[ActionSpace], Agent]
_AGENTS: dict[str, AgentFactory] = {}


def register_agent(name: str) -> Callable[[AgentFactory], AgentFactory]:
    """Decorator: ``@register_agent("random")`` on a factory ``(action_space) -> Agent``."""

    def deco(factory: AgentFactory) -> AgentFactory:
        _AGENTS[name] = factory
        return factory

    return deco


def list_agents() -> list[str]:
    return sorted(_AGENTS)


def make_agent(name: str, space: ActionSpace) -> Agent:
    return _AGENTS[name](space)


@register_agent("random")
class RandomAgent:
    """Uniform random actions, each held for `repeat` ticks (like a person holding a key)."""

    def __init__(self, space: ActionSpace, repeat: int = 4):
        self.space, self.repeat = space, repeat
        self.rng = np.random.default_rng(0)
        self._action, self._left = space.noop(), 0

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self._left = 0

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self._left <= 0:
            self._action, self._left = self.space.sample(self.rng), self.repeat
        self._left -= 1
        return self._action


# -- saved agents (playworld dream) ------------------------------------------------------------------------------
class PlayAgent:
    """A saved agent in `playworld play`'s agent protocol: reset(seed), act(frame) -> action."""

    def __init__(self, path: Path, space: ActionSpace):
        self.path = Path(path)
        self.policy = load_policy(self.path)
        check_same_space(space, self.policy.action_space, "the world model being played", f"agent {self.path}")

    def reset(self, seed: int) -> None:
        self.policy.generator.manual_seed(int(seed))
        self.policy.reset()

    def act(self, frame: np.ndarray) -> np.ndarray:
        return self.policy(frame, {})


def register_play_agent(path: str | Path, name: str | None = None) -> str:
    """Make the agent saved at `path` selectable in play's agent mode (as `name`, default its folder name)."""
    path = Path(path)
    load_actor(path)  # a missing or corrupt agent fails here, before the server starts
    name = name or path.resolve().name
    register_agent(name)(lambda space: PlayAgent(path, space))
    return name
