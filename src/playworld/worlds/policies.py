"""Collection policies: what acts in a world while `collect` records it.

A policy is called once per step with the current frame and ground-truth state and returns an
action (a numpy array of ``action_space.dtype``); ``reset()`` is called at the start of every
episode. Policies draw from one generator seeded once, so episodes differ and a collection is
reproducible from its seed.

    make_policy("random", space, seed=0)
    make_policy("sticky", space, p=0.8)        # repeat the previous action with probability p
    make_policy("explore", space)              # explorer only: A -> B -> A walks, so places are revisited
    make_policy(lambda frame: 2, space)        # any callable obs -> action
    make_policy("mypkg.policies:greedy", space)  # a callable imported from module:function
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

import numpy as np

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace

BUILTIN = ("random", "sticky", "explore")
_FIX = f"use one of {', '.join(BUILTIN)}, a Python callable obs -> action, or 'module:function'"


class Policy:
    """Base class: `reset()` at each episode start, `__call__(frame, state) -> action`."""

    def __init__(self, action_space: ActionSpace, seed: int = 0):
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _sample(self) -> np.ndarray:
        space = self.action_space
        if space.kind != "continuous":
            return np.array(self.rng.integers(space.n), np.int64)
        low, high = np.array(space.low), np.array(space.high)
        finite = np.isfinite(low) & np.isfinite(high)
        a = np.where(finite, self.rng.uniform(np.where(finite, low, 0), np.where(finite, high, 1)), self.rng.normal(size=space.dim))
        return np.clip(a, low, high).astype(np.float32)


class RandomPolicy(Policy):
    """A uniformly random action every step."""

    def __call__(self, frame, state):
        return self._sample()


class StickyPolicy(Policy):
    """Repeat the previous action with probability p, else draw a new random one (like the
    'Brownian' exploration of Ha & Schmidhuber's World Models). Continuous spaces: with
    probability p the action drifts by Gaussian noise of `sigma` x (high - low), else it is redrawn."""

    def __init__(self, action_space: ActionSpace, seed: int = 0, p: float = 0.8, sigma: float = 0.1):
        super().__init__(action_space, seed)
        if not 0.0 <= p <= 1.0:
            raise PlayworldError(f"sticky policy probability p={p} is not in [0, 1]", "pass e.g. p=0.8")
        self.p, self.sigma = float(p), float(sigma)
        self.prev: np.ndarray | None = None

    def reset(self):
        self.prev = None

    def __call__(self, frame, state):
        if self.prev is None or self.rng.random() >= self.p:
            self.prev = self._sample()
        elif self.action_space.kind == "continuous":
            low, high = np.array(self.action_space.low), np.array(self.action_space.high)
            scale = np.where(np.isfinite(high - low), high - low, 1.0) * self.sigma
            self.prev = np.clip(self.prev + self.rng.normal(size=len(low)) * scale, low, high).astype(np.float32)
        return self.prev.copy()


class ExplorePolicy(Policy):
    """For `explorer`: walk away from a point A for 5..50 steps (a sticky random walk), then
    retrace the cells walked back to A exactly, then start again from there: A -> B -> A paths,
    so every outward stretch is revisited in reverse. Reads the agent cell from ``state['agent']``
    (blocked moves do not enter the path, so the way back never bumps)."""

    # explorer actions: 0 noop, 1 up, 2 down, 3 left, 4 right; (dx, dy) -> action
    _ACTION_OF = {(0, -1): 1, (0, 1): 2, (-1, 0): 3, (1, 0): 4}

    def __init__(self, action_space: ActionSpace, seed: int = 0, min_len: int = 5, max_len: int = 50,
                 p: float = 0.7, noop: float = 0.05):
        super().__init__(action_space, seed)
        if action_space.kind != "discrete" or action_space.n != 5:
            raise PlayworldError("the explore policy drives the explorer world (5 actions)",
                                 "use --policy random or sticky for other worlds")
        self.min_len, self.max_len, self.p, self.noop = int(min_len), int(max_len), float(p), float(noop)
        self.reset()

    def reset(self):
        self.phase = "out"  # "out": walking away from the anchor; "back": retracing to it
        self.anchor: tuple[int, int] | None = None
        self.path: list[tuple[int, int]] = []  # cells walked since the anchor, anchor first
        self.left = 0  # outward steps left
        self.prev = 0

    def _start_out(self, here: tuple[int, int]) -> None:
        self.phase, self.anchor, self.path = "out", here, [here]
        self.left = int(self.rng.integers(self.min_len, self.max_len + 1))

    def __call__(self, frame, state):
        if "agent" not in state:
            raise PlayworldError("the explore policy needs state['agent'] (the explorer world)",
                                 "use --policy random or sticky for this world")
        here = (int(state["agent"][0]), int(state["agent"][1]))
        if self.anchor is None:
            self._start_out(here)
        if self.phase == "out":
            if here != self.path[-1]:
                self.path.append(here)
            if self.left <= 0:
                self.phase = "back"
            else:
                self.left -= 1
                if self.rng.random() < self.noop:
                    return np.array(0, np.int64)
                if self.prev == 0 or self.rng.random() >= self.p:
                    self.prev = int(self.rng.integers(1, 5))
                return np.array(self.prev, np.int64)
        # back: step to the previous cell of the path; at the anchor start a new outward walk
        while self.path and self.path[-1] == here:
            self.path.pop()
        if not self.path:
            self._start_out(here)
            return self(frame, state)
        target = self.path[-1]
        return np.array(self._ACTION_OF[(target[0] - here[0], target[1] - here[1])], np.int64)


class CallablePolicy(Policy):
    """Wrap a user callable ``obs -> action`` (or ``(frame, state) -> action``)."""

    def __init__(self, fn: Callable[..., Any], action_space: ActionSpace, seed: int = 0):
        super().__init__(action_space, seed)
        self.fn = fn
        try:  # two required positional parameters: (frame, state); otherwise obs -> action
            params = inspect.signature(fn).parameters.values()
            required = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                        and p.default is p.empty]
            self.two_args = len(required) >= 2
        except (TypeError, ValueError):
            self.two_args = False

    def reset(self):
        if callable(getattr(self.fn, "reset", None)):
            self.fn.reset()

    def __call__(self, frame, state):
        action = self.fn(frame, state) if self.two_args else self.fn(frame)
        return np.asarray(action, dtype=self.action_space.dtype).reshape(self.action_space.shape)


def _import_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise PlayworldError(f"cannot import policy module {module_name!r}: {e}", _FIX) from None
    for part in attr.split("."):
        if not part.isidentifier() or not hasattr(obj, part):
            raise PlayworldError(f"policy {spec!r}: {module_name!r} has no attribute {attr!r}", _FIX)
        obj = getattr(obj, part)
    if not callable(obj):
        raise PlayworldError(f"policy {spec!r} is not callable", _FIX)
    return obj


def make_policy(spec: str | Callable[..., Any], action_space: ActionSpace, seed: int = 0, **opts: Any) -> Policy:
    """Build a collection policy from a name, a callable, or a 'module:function' string."""
    if isinstance(spec, Policy):
        return spec
    if callable(spec):
        return CallablePolicy(spec, action_space, seed)
    if not isinstance(spec, str):
        raise PlayworldError(f"policy {spec!r} is neither a name nor a callable", _FIX)
    classes = {"random": RandomPolicy, "sticky": StickyPolicy, "explore": ExplorePolicy}
    if spec in classes:
        try:
            return classes[spec](action_space, seed=seed, **opts)
        except TypeError as e:
            raise PlayworldError(f"bad options for policy {spec!r}: {e}", "check the option names") from None
    if ":" in spec:
        return CallablePolicy(_import_callable(spec), action_space, seed)
    raise PlayworldError(f"unknown policy {spec!r}", _FIX)
