"""Few-step EDM samplers (Karras et al. 2022, Algorithm 1 without churn), k-diffusion style.

Every sampler has one signature, so they swap freely:

    sample(denoise, x, sigmas) -> x0
        denoise(x, sigma) -> D(x; sigma)   x (B, ...) and sigma a (B,) tensor
        x: the starting noise, already scaled by sigmas[0]; sigmas: the schedule, ending in 0

They are deterministic: all randomness is in the starting noise, which the caller draws from its
seeded generator.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Denoise = Callable[[Tensor, Tensor], Tensor]


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> list[float]:
    """The Karras et al. schedule of `steps` levels from sigma_max down to sigma_min, then 0."""
    if steps == 1:
        return [float(sigma_max), 0.0]
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [float(s) for s in (hi + ramp * (lo - hi)) ** rho] + [0.0]


def _level(x: Tensor, sigma: float) -> Tensor:
    return torch.full((x.shape[0],), sigma, device=x.device, dtype=torch.float32)


def euler(denoise: Denoise, x: Tensor, sigmas: list[float]) -> Tensor:
    """First-order steps: one network call per level."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = denoise(x, _level(x, s))
        if s_next == 0.0:
            return d
        x = d + (x - d) * (s_next / s)  # x + (s_next - s) * (x - d) / s
    return x


def heun(denoise: Denoise, x: Tensor, sigmas: list[float]) -> Tensor:
    """Second-order steps (Euler + trapezoidal correction); the last step to sigma=0 is plain Euler."""
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        d = denoise(x, _level(x, s))
        if s_next == 0.0:
            return d
        slope = (x - d) / s
        x_euler = x + (s_next - s) * slope
        d2 = denoise(x_euler, _level(x, s_next))
        x = x + (s_next - s) * 0.5 * (slope + (x_euler - d2) / s_next)
    return x


SAMPLERS: dict[str, Callable[[Denoise, Tensor, list[float]], Tensor]] = {"euler": euler, "heun": heun}
