"""Model families, registered by name.

A family is one folder under `models/` that supplies, kept apart:
- `Config`: a dataclass, one docstring per field; presets override it by name;
- `build(config, spec) -> nn.Module`: every trainable parameter of the family in one module;
- `loss(net, batch, config, step, generator) -> (loss, logs)`: the training objective on a `Batch`;
- `world_model(net, config, spec) -> WorldModel`: the sampler wrapped in the shared interface.
- `supports_regimes` and `regime_loss(..., regime)`: the training regimes (train/regimes.py) the
  family can train under; the default is teacher forcing only, through `loss`;
- `capabilities`: the optional abilities of models/interface.py its WorldModel declares;
- `init_from(net, config, spec, path)`, optional: start a new run's network from pretrained weights in a
  local folder (`playworld train --init PATH`).

A family whose optional dependencies are missing calls `register_unavailable` instead: it is not
listed, and `get_family` raises its error (which names the extra to install).

The trainer, `playworld.load`, the CLI and the contract tests only ever go through this class, so a
new family is one folder plus `@register_family` and is picked up everywhere with no other edit.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec


class Family:
    name: ClassVar[str]
    Config: ClassVar[type]
    stochastic: ClassVar[bool] = True
    """whether generation samples (so different seeds give different frames); deterministic families say False"""
    supports_regimes: ClassVar[tuple[str, ...]] = ("teacher_forcing",)
    """the training regimes of train/regimes.py this family implements in `regime_loss`"""
    capabilities: ClassVar[tuple[str, ...]] = ()
    """the optional abilities (names in models.interface.CAPABILITIES) its `world_model` has; the contract
    tests check each one it claims, and that it claims each one it has"""

    def make_config(self, overrides: dict[str, Any] | None = None) -> Any:
        """The family's Config with `overrides` applied; unknown keys are an error naming them."""
        overrides = dict(overrides or {})
        known = {f.name for f in dataclasses.fields(self.Config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PlayworldError(
                f"unknown {self.name} model option(s): {', '.join(unknown)}",
                f"known options are {', '.join(sorted(known))}",
            )
        return self.Config(**overrides)

    def future_length(self, config: Any) -> int:
        """F, the number of future frames a training window needs (1 for teacher forcing)."""
        return int(getattr(config, "horizon", 1))

    def uses_memory(self, config: Any) -> bool:
        """Whether training batches must carry memory frames (`playworld.data.memory`)."""
        return False

    def skips_parameters(self, config: Any) -> bool:
        """Whether some training steps leave parameters without a gradient (staged training); DDP must
        then look for unused parameters each step."""
        return False

    def check_dataset(self, config: Any, spec: WorldSpec, dataset: Any) -> None:
        """Raise a PlayworldError when `dataset` cannot train `config` (called before training starts)."""

    def build(self, config: Any, spec: WorldSpec) -> nn.Module:
        raise NotImplementedError

    def loss(
        self, net: nn.Module, batch: Batch, config: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def world_model(self, net: nn.Module, config: Any, spec: WorldSpec) -> WorldModel:
        raise NotImplementedError

    def init_from(self, net: nn.Module, config: Any, spec: WorldSpec, path: Path) -> dict:
        """Load the pretrained weights saved (with diffusers' `save_pretrained`) in the local folder `path` into
        the freshly built `net`, with the inputs the pretrained model lacks zeroed so the start computes what it
        computed; returns a JSON-able account of what was loaded. `playworld train --init PATH` calls it."""
        able = sorted(n for n, f in _FAMILIES.items() if type(f).init_from is not Family.init_from)
        raise PlayworldError(
            f"model family {self.name} cannot start from pretrained weights (--init)",
            f"drop --init, or train a family that can: {', '.join(able) or 'none is installed'}",
        )

    def check_regime(self, config: Any, regime: str) -> None:
        """Raise PlayworldError when this family (with this config) cannot train under `regime`."""
        if regime not in self.supports_regimes:
            raise PlayworldError(
                f"model family {self.name} does not support the training regime {regime!r}",
                f"{self.name} trains with {', '.join(self.supports_regimes)}: set train.regime to one of them "
                "(and drop train.regime_from), or pick a family that supports it (diffusion)",
            )

    def regime_loss(
        self, net: nn.Module, batch: Batch, config: Any, step: int, generator: torch.Generator | None, regime: Any
    ) -> tuple[Tensor, dict[str, float]]:
        """The objective under `regime` (a train.regimes.RegimeStep); teacher forcing is `loss` itself."""
        self.check_regime(config, regime.name)
        return self.loss(net, batch, config, step, generator)


_FAMILIES: dict[str, Family] = {}
_UNAVAILABLE: dict[str, PlayworldError] = {}


def register_family(cls: type[Family]) -> type[Family]:
    """Class decorator: ``@register_family class Diffusion(Family): name = "diffusion" ...``."""
    if cls.name in _FAMILIES:
        raise ValueError(f"model family {cls.name!r} registered twice")
    _FAMILIES[cls.name] = cls()
    return cls


def register_unavailable(name: str, error: PlayworldError) -> None:
    """A family that cannot be used here (an optional dependency is missing): left out of `list_families`,
    and `get_family(name)` raises `error`."""
    _UNAVAILABLE[name] = error


def _load_builtin_families() -> None:
    import playworld.models as pkg  # the package imports this module, so it cannot be imported at the top

    # Every sub-package of playworld.models is a family; importing it registers it.
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.ispkg:
            importlib.import_module(f"playworld.models.{mod.name}")


def list_families() -> list[str]:
    _load_builtin_families()
    return sorted(_FAMILIES)


def get_family(name: str) -> Family:
    _load_builtin_families()
    if name in _UNAVAILABLE and name not in _FAMILIES:
        raise _UNAVAILABLE[name]
    if name not in _FAMILIES:
        raise PlayworldError(f"unknown model family {name!r}", f"choose one of {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


