"""Training regimes (train/regimes.py): each builds its batches as claimed, schedules switch on time,
unsupported regimes fail cleanly, and a run resumed mid-schedule continues it (and a restart fails that check)."""

from __future__ import annotations

import dataclasses

import pytest
import tiny_family
import torch
from resume_checks import resume_failures, train_rows

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models import get_family
from playworld.models.diffusion import loss as diffusion_loss
from playworld.models.interface import WorldSpec
from playworld.runs.presets import load_preset, make_model_config
from playworld.spaces import ActionSpace
from playworld.train import loop
from playworld.train.config import TrainConfig
from playworld.train.loop import train
from playworld.train.regimes import RegimeSchedule, RegimeStep, first_futures

K, R, RES, B = 2, 3, 16, 2


def _diffusion(frame_levels: bool = False, seed: int = 0):
    family = get_family("diffusion")
    sets = {"frame_noise_levels": str(frame_levels)}
    config = make_model_config(family, load_preset("debug"), sets)
    spec = WorldSpec(resolution=RES, action_space=ActionSpace.discrete(5), context=K)
    torch.manual_seed(seed)
    return family, config, family.build(config, spec)


def _batch(f: int = R, zeros: bool = False) -> Batch:
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (B, K + f, 3, RES, RES), generator=g, dtype=torch.uint8)
    if zeros:
        frames.zero_()
    actions = torch.randint(0, 5, (B, K + f), generator=g)
    return Batch(frames[:, :K], actions[:, :K], actions[:, K:], frames[:, K:], torch.zeros(B, f),
                 torch.zeros(B, f, dtype=torch.bool))


def _loss(family, net, config, regime: str, grad_steps: int = 0, batch: Batch | None = None, seed: int = 7):
    step = RegimeStep(regime, context_noise=True, rollout=R, grad_steps=grad_steps)
    return family.regime_loss(net, batch or _batch(), config, 0, torch.Generator().manual_seed(seed), step)[0]


def _tamper(net, amount: float = 0.5):
    """Perturb what the sampler gets from the network (net.denoise), leaving the training call alone."""
    clean = net.denoise
    net.denoise = lambda x, sigma, c: clean(x, sigma, c) + amount


def test_self_forcing_feeds_the_models_own_samples_back_and_teacher_forcing_does_not():
    family, config, net = _diffusion()
    with torch.no_grad():
        tf, sf = _loss(family, net, config, "teacher_forcing"), _loss(family, net, config, "self_forcing")
        assert torch.equal(_loss(family, net, config, "self_forcing"), sf)  # deterministic for a seed
        _tamper(net)
        tf_tampered, sf_tampered = _loss(family, net, config, "teacher_forcing"), _loss(family, net, config, "self_forcing")
    assert torch.equal(tf, tf_tampered)  # teacher forcing never calls the sampler
    assert not torch.allclose(sf, sf_tampered, rtol=0, atol=1e-4)  # the generated context enters the loss


def test_self_forcing_amplify_scales_the_generated_frames_error_within_its_range(monkeypatch):
    """The newest context frame of each rolled-out step is the true frame plus k times the generated frame's
    error, k in [1, amplify] per example (clamped to the frame range, which only ever shrinks the excess)."""
    family, config, net = _diffusion()
    batch = _batch()
    targets = torch.cat([batch.context_frames, batch.future_frames], 1).float() / 127.5 - 1

    def newest_frames(amplify: float) -> list[torch.Tensor]:
        seen, inner = [], diffusion_loss.denoising_loss
        monkeypatch.setattr(diffusion_loss, "denoising_loss", lambda *a, **kw: seen.append(a[7].clone()) or inner(*a, **kw))
        with torch.no_grad():
            _loss(family, net, dataclasses.replace(config, self_forcing_amplify=amplify), "self_forcing", batch=batch)
        monkeypatch.setattr(diffusion_loss, "denoising_loss", inner)
        return seen

    plain, amplified = newest_frames(1.0), newest_frames(4.0)
    assert torch.equal(plain[0], amplified[0])  # step 0 predicts from the real context
    for j in range(1, R):  # the frame generated for step j-1, now the newest of step j's context
        truth = targets[:, K + j - 1]
        err, err_amp = (plain[j] - truth).abs(), (amplified[j] - truth).abs()
        if j == 1:  # the same sample (same draws so far): amplified by a factor of at most 4, never shrunk
            assert (err_amp >= err - 1e-5).all() and (err_amp <= 4 * err + 1e-5).all()
            assert err_amp.mean() > 1.3 * err.mean()


def test_self_forcing_truncated_backprop_reaches_through_the_generated_frames():
    family, config, net = _diffusion()

    def grads(grad_steps: int) -> torch.Tensor:
        net.zero_grad()
        _loss(family, net, config, "self_forcing", grad_steps=grad_steps).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])

    last_only, bptt, last_only_again = grads(0), grads(2), grads(0)
    assert torch.equal(last_only, last_only_again)
    assert not torch.allclose(last_only, bptt)  # same noise, same value: only the gradient path differs


def _levels_seen(family, net, config, regime: str, batch: Batch) -> list[torch.Tensor]:
    seen = []
    hook = net.register_forward_pre_hook(lambda module, args: seen.append((args[2].detach(), args[4].detach())))
    with torch.no_grad():
        _loss(family, net, config, regime, batch=batch)
    hook.remove()
    return seen


def test_diffusion_forcing_noises_each_frame_at_its_own_level_and_tells_the_network():
    family, config, net = _diffusion(frame_levels=True)
    batch = _batch(f=1, zeros=True)  # all-black frames: the noised context minus -1 is the noise alone
    ((context, levels),) = _levels_seen(family, net, config, "diffusion_forcing", batch)
    assert levels.shape == (B, K)  # one level per context frame, given to the network
    assert all(len(set(row.tolist())) == K for row in levels)  # different within each example
    noise_std = (context + 1).flatten(2).std(dim=2)  # (B, K) measured per frame
    torch.testing.assert_close(noise_std, levels, rtol=0.15, atol=2e-3)
    ((_, tf_levels),) = _levels_seen(family, net, config, "teacher_forcing", batch)
    assert tf_levels.shape == (B,)  # teacher forcing: one level per example


@pytest.mark.parametrize("regime", ["teacher_forcing", "self_forcing", "diffusion_forcing"])
def test_the_residual_base_is_the_newest_frame_before_noise(regime):
    """Context noise is augmentation of what the network sees; the residual target is taken from the
    clean newest frame (from a noised one, the network would be asked to predict the noise)."""
    from playworld.models.interface import frames_to_unit

    family, config, net = _diffusion(frame_levels=regime == "diffusion_forcing")
    batch = _batch(f=R if regime == "self_forcing" else 1)  # one window per example
    seen = []
    hook = net.register_forward_pre_hook(lambda module, args: seen.append((args[2].detach(), args[5].detach())))
    with torch.no_grad():
        _loss(family, net, config, regime, batch=batch)
    hook.remove()
    context, newest = seen[0]
    clean = frames_to_unit(batch.context_frames[:, -1])
    assert not torch.allclose(context[:, -1], clean)  # the network saw a noised context...
    torch.testing.assert_close(newest, clean)  # ...and the residual base is the frame itself


def test_diffusion_forcing_needs_a_network_that_takes_frame_levels():
    family, config, _ = _diffusion(frame_levels=False)
    with pytest.raises(PlayworldError, match="frame_noise_levels"):
        family.check_regime(config, "diffusion_forcing")


def test_schedules_switch_at_the_configured_step():
    switch = RegimeSchedule(TrainConfig(regime="self_forcing", regime_from="teacher_forcing", regime_switch_step=5))
    assert [switch.at(s).name for s in (0, 4, 5, 6, 100)] == ["teacher_forcing"] * 2 + ["self_forcing"] * 3
    ramp = RegimeSchedule(TrainConfig(regime="self_forcing", regime_from="teacher_forcing",
                                      regime_switch_step=10, regime_ramp_steps=400))
    assert ramp.probability(9) == 0.0 and ramp.probability(209) == 0.5 and ramp.probability(409) == 1.0
    first = [ramp.at(s).name == "self_forcing" for s in range(10, 210)]  # chance rising 0 -> 0.5: mean ~0.25
    second = [ramp.at(s).name == "self_forcing" for s in range(210, 410)]  # 0.5 -> 1: mean ~0.75
    assert 0.15 < sum(first) / 200 < 0.35 and 0.65 < sum(second) / 200 < 0.85
    assert all(ramp.at(s).name == "self_forcing" for s in range(410, 450))
    assert [ramp.at(s) for s in range(200)] == [ramp.at(s) for s in range(200)]  # a function of the step


def test_windows_hold_r_future_frames_when_self_forcing_and_other_steps_use_the_first():
    family, config, net = _diffusion()
    schedule = RegimeSchedule(TrainConfig(regime="self_forcing", regime_from="teacher_forcing", regime_switch_step=1, rollout=R))
    assert schedule.future_length(family, config) == R
    assert RegimeSchedule(TrainConfig()).future_length(family, config) == 1
    with torch.no_grad():  # step 0 teacher-forces on the first future frame only
        on_window = schedule.loss(family, net, _batch(), config, 0, torch.Generator().manual_seed(7))[0]
        on_first = family.loss(net, first_futures(_batch(), 1), config, 0, torch.Generator().manual_seed(7))[0]
    assert torch.equal(on_window, on_first)
    assert first_futures(_batch(), 1).future_frames.shape[1] == 1


@pytest.mark.parametrize("regime", ["self_forcing", "diffusion_forcing"])
def test_a_family_without_the_regime_raises_a_playworld_error(regime, tmp_path, tiny_data):
    with pytest.raises(PlayworldError, match=f"does not support the training regime '{regime}'"):
        train(tmp_path / "run", data=tiny_data, model=tiny_family.NAME, preset="debug",
              sets=[f"train.regime={regime}"], progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing written before the error
    family, config, _ = _diffusion()
    for name in ("rssm", "genie"):  # teacher forcing only (see train/regimes.py for why)
        with pytest.raises(PlayworldError):
            get_family(name).check_regime(config, regime)


SCHEDULE = ["train.regime=self_forcing", "train.regime_from=teacher_forcing", "train.regime_switch_step=1",
            "train.regime_ramp_steps=2", "train.rollout=2", "train.rollout_grad_steps=1", "train.ckpt_every=1000",
            "train.val_every=0", "train.media_every=0", "train.val_batches=1", "train.batch_size=2",
            "train.warmup_steps=4"]


def test_resume_with_a_schedule_into_self_forcing_begins_at_step_n_plus_1(tmp_path, tiny_data, monkeypatch):
    """Resume mid-schedule: the resumed invocation starts at step 3 with the saved optimiser, schedule
    and EMA (resume_checks.py), draws the straight run's regimes and ends with its weights."""
    assert resume_failures(tmp_path, monkeypatch, tiny_data, "diffusion", SCHEDULE, n=2) == {}
    used = {s: r["regime_self_forcing"] for s, r in train_rows(tmp_path / "straight").items()}
    assert used[1] == 0.0 and used[3] == 1.0 and used[4] == 1.0  # step 1 (index 0) before the switch
    assert {s: r["regime_self_forcing"] for s, r in train_rows(tmp_path / "resumed").items()} == used


def test_the_schedule_resume_check_fails_on_a_trainer_that_restarts_instead(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setattr(loop, "_restore", lambda *args, **kwargs: 0)  # restore nothing, start at step 0
    failed = resume_failures(tmp_path, monkeypatch, tiny_data, "diffusion", SCHEDULE, n=2)
    assert "weights" not in failed and {"steps", "optimizer", "lr", "ema", "metrics", "meta"} <= failed.keys(), failed


def test_highpass_context_noise_perturbs_fine_detail_and_leaves_region_colours():
    """context_noise_kind=highpass: the same standard deviation as white noise, but 8x8 region means (the
    colour of a region) moved far less; the noise the network sees is of that kind, at the drawn level."""
    g = torch.Generator().manual_seed(0)
    white = torch.randn(8, 4, 3, 32, 32, generator=g)
    hp = diffusion_loss.highpass(white)
    assert hp.shape == white.shape and abs(float(hp.std()) - 1) < 0.05
    def region(x):  # the spread of 8x8 region means: the colour of a region
        return torch.nn.functional.avg_pool2d(x.reshape(-1, 3, 32, 32), 8).std()

    assert float(region(hp)) < 0.45 * float(region(white))
    flat, regions = torch.zeros(16, K, 3, 32, 32), {}
    for kind in ("white", "highpass"):
        _, config, _ = _diffusion()
        config = dataclasses.replace(config, context_noise_max=0.5, context_noise_kind=kind)
        noised, levels = diffusion_loss.noise_context(flat, config, torch.Generator().manual_seed(1))
        per_example = noised.flatten(1).std(dim=1)
        torch.testing.assert_close(per_example, levels, rtol=0.1, atol=0.02)  # the level drawn is the one applied
        regions[kind] = float(region(noised))
    assert regions["highpass"] < 0.45 * regions["white"]
    with pytest.raises(PlayworldError, match="context_noise_kind"):
        dataclasses.replace(config, context_noise_kind="pink")


def test_gaussian_blur_spreads_a_point_by_its_sigma_per_example_and_keeps_its_mass():
    point = torch.zeros(3, 2, 3, 21, 21)
    point[..., 10, 10] = 1.0
    out = diffusion_loss.gaussian_blur(point, torch.tensor([0.0, 0.6, 1.2]))
    torch.testing.assert_close(out[0], point[0])  # sigma 0: unchanged
    torch.testing.assert_close(out.sum(dim=(-2, -1)), point.sum(dim=(-2, -1)))
    xs = torch.arange(21.0) - 10
    for i, sigma in ((1, 0.6), (2, 1.2)):
        variance = float((out[i, 0, 0].sum(0) * xs**2).sum())  # the spread along x of the blurred point
        assert variance == pytest.approx(sigma**2, rel=0.05)


def test_context_blur_softens_each_examples_context_and_with_a_blurred_base_the_residual_origin_alike(monkeypatch):
    """context_blur_max: every example's K context frames blurred by its own level in [0, max] (none with
    context noise off or max 0); the residual taken from the clean newest frame, or with residual_base 'blurred'
    from the blurred one, as play takes it from the model's own soft frame."""
    _, config, net = _diffusion()
    edges = torch.zeros(16, K, 3, RES, RES)
    edges[..., :, RES // 2 :] = 1.0  # a sharp vertical edge
    blur = dataclasses.replace(config, context_blur_max=1.0)
    out = diffusion_loss.blur_context(edges, blur, torch.Generator().manual_seed(0))
    step = (out[..., RES // 2] - out[..., RES // 2 - 1]).mean(dim=(1, 2, 3))  # (16,): the edge's height per example
    assert float(step.min()) < 0.5 < float(step.max()) <= 1.0  # each its own level, some barely blurred
    assert torch.equal(out[:, 0], out[:, 1])  # one level for all of an example's frames
    assert diffusion_loss.blur_context(edges, blur, None, on=False) is edges
    assert diffusion_loss.blur_context(edges, config, None) is edges  # the preset: off
    seen = {}

    def spy(net, context, target, actions, context_sigma, config, generator, newest, memory=None):
        seen["context"], seen["newest"] = context, newest
        return torch.zeros(()), 0.0

    monkeypatch.setattr(diffusion_loss, "denoising_loss", spy)
    batch = _batch()
    clean = diffusion_loss.teacher_forcing_windows(batch)[0]
    for base in ("clean", "blurred"):
        quiet = dataclasses.replace(blur, context_noise_max=0.0, residual_base=base)
        for regime in (diffusion_loss.edm_loss, lambda *a: diffusion_loss.self_forcing_loss(*a, rollout=1)):
            regime(net, batch, quiet, torch.Generator().manual_seed(0))
            n = len(seen["context"])
            assert float((seen["context"] - clean[:n]).abs().mean()) > 0.01  # the network sees the context blurred
            torch.testing.assert_close(seen["newest"], (seen["context"] if base == "blurred" else clean[:n])[:, -1])
    with pytest.raises(PlayworldError, match="context_blur_max"):
        dataclasses.replace(config, context_blur_max=-1.0)
