"""The diffusion family's parts: EDM preconditioning, the samplers, the config and the WorldModel adapter."""

from __future__ import annotations

import math

import pytest
import torch

from playworld.errors import PlayworldError
from playworld.models import get_family
from playworld.models.diffusion.network import edm_coefficients
from playworld.models.diffusion.sampler import SAMPLERS, euler, heun, karras_sigmas
from playworld.models.interface import WorldSpec
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.spaces import ActionSpace

DEBUG_K = resolve_context(load_preset("debug"))  # K of the debug preset


def test_edm_coefficients_match_karras():
    sigma, sd = torch.tensor([1e-4, 0.5, 5.0]), 0.5
    c_skip, c_out, c_in, c_noise = edm_coefficients(sigma, sd)
    assert c_skip[0].item() == pytest.approx(1.0, abs=1e-6) and c_out[0].item() == pytest.approx(0.0, abs=1e-3)
    # unit variance of the network's input and (for the EDM target) its output
    assert torch.allclose(c_in.flatten() ** 2 * (sigma**2 + sd**2), torch.ones(3))
    # EDM's effective loss weight: lambda(sigma) * c_out^2 = 1
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    assert torch.allclose(weight * c_out.flatten() ** 2, torch.ones(3))
    assert torch.allclose(c_noise, sigma.log() / 4)


def test_karras_schedule():
    for steps in range(1, 5):
        s = karras_sigmas(steps, 2e-3, 5.0)
        assert len(s) == steps + 1 and s[0] == pytest.approx(5.0) and s[-1] == 0.0
        assert all(a > b for a, b in zip(s[:-1], s[1:]))
    assert karras_sigmas(4, 2e-3, 5.0)[-2] == pytest.approx(2e-3)


def test_samplers_solve_the_probability_flow_of_gaussian_data():
    """For data N(mu, s^2) the ideal denoiser is known and the ODE has a closed form; Heun beats Euler."""
    mu, s = 0.3, 0.2
    denoise = lambda x, sigma: mu + s**2 / (s**2 + sigma[:, None] ** 2) * (x - mu)  # noqa: E731
    x_t = torch.linspace(-10, 10, 7)[:, None]
    exact = mu + (x_t - mu) * math.sqrt(s**2 + 2e-3**2) / math.sqrt(s**2 + 25.0)

    def error(sampler, steps):
        return float((sampler(denoise, x_t, karras_sigmas(steps, 2e-3, 5.0)) - exact).abs().max())

    # doubling the steps halves Euler's error (first order) and quarters Heun's (second order)
    assert 1.6 < error(euler, 20) / error(euler, 40) < 2.5
    assert error(heun, 20) / error(heun, 40) > 3.5 and error(heun, 40) < 0.01
    assert set(SAMPLERS) == {"euler", "heun"}
    # one step from the top level returns the denoiser's estimate there
    assert torch.allclose(euler(denoise, x_t, [5.0, 0.0]), denoise(x_t, torch.full((7,), 5.0)))


def test_config_rejects_bad_values():
    family = get_family("diffusion")
    with pytest.raises(PlayworldError, match="steps"):
        family.make_config({"steps": 5})
    with pytest.raises(PlayworldError, match="sampler"):
        family.make_config({"sampler": "ddim"})
    with pytest.raises(PlayworldError, match="one entry per U-Net level"):
        family.make_config({"channels": (8, 16), "depths": (1,), "attention": (False, False)})
    with pytest.raises(PlayworldError, match="unknown diffusion model option"):
        family.make_config({"chanels": (8,)})


def _model(**overrides):
    family = get_family("diffusion")
    config = make_model_config(family, load_preset("debug"))
    for k, v in overrides.items():
        setattr(config, k, v)
    spec = WorldSpec(resolution=32, action_space=ActionSpace.discrete(5), context=DEBUG_K)
    torch.manual_seed(0)
    return family.world_model(family.build(config, spec), config, spec), config


@pytest.mark.parametrize("sampler,steps", [("euler", 1), ("euler", 4), ("heun", 2), ("heun", 4)])
def test_every_sampler_setting_generates(sampler, steps):
    model, config = _model(sampler=sampler, steps=steps, context_noise_sample=0.05)
    frames = torch.randint(0, 256, (2, DEBUG_K, 3, 32, 32), dtype=torch.uint8)
    state = model.reset(frames, torch.zeros(2, DEBUG_K, dtype=torch.long), seed=0)
    state, frame = model.step(state, torch.tensor([1, 2]))
    assert frame.shape == (2, 3, 32, 32) and frame.dtype == torch.uint8
    # the generated frame becomes the newest context frame, the action the newest action
    assert torch.equal(state.frames[:, -1], frame.float() / 127.5 - 1) and state.actions[:, -1].tolist() == [1, 2]


def test_reset_pads_a_short_context_and_checks_input():
    model, config = _model()
    one = torch.randint(0, 256, (1, 1, 3, 32, 32), dtype=torch.uint8)
    state = model.reset(one, torch.tensor([[3]]), seed=0)
    assert state.frames.shape == (1, DEBUG_K, 3, 32, 32)
    assert state.actions[0].tolist() == [0] * (DEBUG_K - 1) + [3]
    with pytest.raises(PlayworldError, match="out of range"):
        model.step(state, torch.tensor([5]))
    with pytest.raises(PlayworldError, match="do not match the model"):
        model.reset(torch.zeros(1, 2, 3, 16, 16, dtype=torch.uint8), torch.zeros(1, 2, dtype=torch.long))


def test_a_state_always_samples_the_same_next_frame():
    """The generator state lives in the model state, so branching from one state is reproducible."""
    model, config = _model()
    frames = torch.randint(0, 256, (1, DEBUG_K, 3, 32, 32), dtype=torch.uint8)
    state = model.reset(frames, torch.zeros(1, DEBUG_K, dtype=torch.long), seed=0)
    _, a = model.step(state, torch.tensor([1]))
    _, b = model.step(state, torch.tensor([1]))
    assert torch.equal(a, b)


@pytest.mark.parametrize("patch,residual", [(2, True), (2, False), (1, False)])
def test_patch_stem_and_parameterisations(patch, residual):
    """The small preset's patch stem and both parameterisations train (finite loss) and generate."""
    from test_contract import _batch  # tests/models is on sys.path (pytest rootdir-relative import)

    model, config = _model(patch=patch, residual=residual)
    family = get_family("diffusion")
    loss, _ = family.loss(model.net, _batch(family, config, model.spec), config, 0, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    frames = torch.randint(0, 256, (1, DEBUG_K, 3, 32, 32), dtype=torch.uint8)
    _, frame = model.step(model.reset(frames, torch.zeros(1, DEBUG_K, dtype=torch.long), seed=0), torch.tensor([4]))
    assert frame.shape == (1, 3, 32, 32)
