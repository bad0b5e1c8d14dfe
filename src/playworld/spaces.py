"""Action spaces shared by worlds, datasets and models.

Three kinds:
- ``discrete``: integer actions in ``[0, n)``; stored and passed as int64, shape ``()`` per step.
- ``continuous``: float32 vectors of length ``dim`` within ``[low, high]``.
- ``none``: the world takes no action (physics clips, imported video). It behaves as a discrete
  space with a single no-op action 0, so every model and loader treats it uniformly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["discrete", "continuous", "none"]


@dataclass(frozen=True)
class ActionSpace:
    kind: Kind
    n: int = 1
    """number of discrete actions (1 for kind 'none', unused for 'continuous')"""
    dim: int = 0
    """length of a continuous action vector (0 for discrete/none)"""
    low: tuple[float, ...] = field(default=())
    """per-dimension lower bound of a continuous action"""
    high: tuple[float, ...] = field(default=())
    """per-dimension upper bound of a continuous action"""
    names: tuple[str, ...] = field(default=())
    """optional human-readable names of discrete actions, e.g. ('noop', 'up', ...)"""

    # -- constructors ---------------------------------------------------------------------------
    @staticmethod
    def discrete(n: int, names: tuple[str, ...] | list[str] = ()) -> "ActionSpace":
        if n < 1:
            raise ValueError(f"a discrete action space needs n >= 1, got {n}")
        return ActionSpace("discrete", n=n, names=tuple(names))

    @staticmethod
    def continuous(low, high) -> "ActionSpace":
        low = tuple(float(x) for x in np.ravel(low))
        high = tuple(float(x) for x in np.ravel(high))
        if len(low) != len(high) or not low:
            raise ValueError("continuous bounds must be non-empty and of equal length")
        return ActionSpace("continuous", n=0, dim=len(low), low=low, high=high)

    @staticmethod
    def none() -> "ActionSpace":
        return ActionSpace("none", n=1, names=("noop",))

    # -- properties -----------------------------------------------------------------------------
    @property
    def is_discrete(self) -> bool:
        """True for 'discrete' and 'none' (a single no-op): actions are integer indices."""
        return self.kind in ("discrete", "none")

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,) if self.kind == "continuous" else ()

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.kind == "continuous" else np.dtype(np.int64)

    # -- helpers --------------------------------------------------------------------------------
    def noop(self) -> np.ndarray:
        """The do-nothing action: 0 for discrete/none, the zero vector (clipped to bounds) otherwise."""
        if self.kind == "continuous":
            return np.clip(np.zeros(self.dim, np.float32), self.low, self.high).astype(np.float32)
        return np.array(0, dtype=np.int64)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "continuous":
            return rng.uniform(self.low, self.high).astype(np.float32)
        return np.array(rng.integers(self.n), dtype=np.int64)

    def contains(self, action: Any) -> bool:
        a = np.asarray(action)
        if self.kind == "continuous":
            return a.shape == (self.dim,) and bool(np.all(a >= np.array(self.low) - 1e-6) and np.all(a <= np.array(self.high) + 1e-6))
        return a.shape == () and np.issubdtype(a.dtype, np.integer) and 0 <= int(a) < self.n

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(d: dict) -> "ActionSpace":
        return ActionSpace(
            kind=d["kind"], n=int(d.get("n", 1)), dim=int(d.get("dim", 0)),
            low=tuple(d.get("low", ())), high=tuple(d.get("high", ())), names=tuple(d.get("names", ())),
        )

    @property
    def is_latent(self) -> bool:
        """True for latent actions learned from video (Genie): discrete, named 'latent 0', 'latent 1', ..."""
        return self.kind == "discrete" and bool(self.names) and all(n.startswith("latent ") for n in self.names)

    def accepts(self, data: "ActionSpace") -> bool:
        """Can a model with this action space read a dataset whose actions are `data`?

        The same space always can; a latent-action model also reads action-free ('none') data,
        since it infers its actions from the frames.
        """
        if self.is_latent and data.kind == "none":
            return True
        return (self.kind, self.n, self.dim) == (data.kind, data.n, data.dim)

    def describe(self) -> str:
        if self.kind == "continuous":
            return f"continuous({self.dim})"
        if self.kind == "none":
            return "none"
        return f"discrete({self.n})"
