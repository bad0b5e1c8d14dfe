"""Random draws for the families' losses and samplers, made on the generator's own device and then moved, so a
seeded CPU generator may drive a GPU run and a run draws the same numbers on either."""

from __future__ import annotations

import torch
from torch import Tensor


def _on(generator: torch.Generator | None, device) -> torch.device | str:
    return generator.device if generator is not None else device


def randn(shape, generator: torch.Generator | None, device) -> Tensor:
    """Standard normal draws of `shape` on `device`."""
    return torch.randn(shape, generator=generator, device=_on(generator, device)).to(device)


def rand(shape, generator: torch.Generator | None, device) -> Tensor:
    """Uniform [0, 1) draws of `shape` on `device`."""
    return torch.rand(shape, generator=generator, device=_on(generator, device)).to(device)


def randint(high: int, shape, generator: torch.Generator | None, device) -> Tensor:
    """Integers uniform in [0, high) of `shape` on `device`."""
    return torch.randint(0, high, shape, generator=generator, device=_on(generator, device)).to(device)
