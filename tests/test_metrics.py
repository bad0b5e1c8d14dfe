"""The pure metric functions agree with their definitions on synthetic arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from playworld import metrics as M


def _frames(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


def test_psnr_matches_scikit_image_and_caps_identical_frames():
    a, b = _frames((4, 3, 32, 32), 0), _frames((4, 3, 32, 32), 1)
    got = M.psnr(a, b)
    assert got.shape == (4,)
    for i in range(4):
        ref = peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=255)
        assert got[i] == pytest.approx(ref, rel=1e-9)
    same = M.psnr(a, a)
    assert np.all(same == M.PSNR_CAP) and np.isfinite(same).all()
    # one grey level off in one pixel of one channel is still below the cap
    c = a.clone()
    c[0, 0, 0, 0] ^= 1
    assert M.psnr(c[:1], a[:1])[0] < M.PSNR_CAP


def test_psnr_keeps_leading_dims_and_channel_layout():
    a, b = _frames((2, 5, 3, 32, 32), 2), _frames((2, 5, 3, 32, 32), 3)
    assert M.psnr(a, b).shape == (2, 5)
    hwc = M.psnr(a.permute(0, 1, 3, 4, 2), b.permute(0, 1, 3, 4, 2), channels_first=False)
    np.testing.assert_allclose(hwc, M.psnr(a, b))


def test_ssim_wraps_scikit_image():
    a = _frames((3, 3, 32, 32), 4)
    noisy = (a.int() + torch.from_numpy(np.random.default_rng(5).integers(-20, 21, a.shape))).clamp(0, 255).to(torch.uint8)
    got = M.ssim(noisy, a)
    ref = structural_similarity(noisy[1].permute(1, 2, 0).numpy(), a[1].permute(1, 2, 0).numpy(), channel_axis=-1, data_range=255)
    assert got[1] == pytest.approx(ref)
    assert np.all(M.ssim(a, a) == pytest.approx(1.0))
    assert np.all(got < 1.0)


def test_fd_zero_for_equal_sets_matches_closed_form_for_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    assert M.fd(x, x) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(m, 4 I) in D dims: |m|^2 + D (1 + 4 - 2*2) = |m|^2 + D, approached with many samples
    y = rng.normal(size=(20000, 8)) * 2 + 1.0
    x = rng.normal(size=(20000, 8))
    assert M.fd(x, y) == pytest.approx(8 * 1.0 + 8 * 1.0, rel=0.05)
    with pytest.raises(ValueError):
        M.fd(x[:1], y)


def test_fd_uses_the_covariance_not_only_the_mean():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 4))
    y = rng.normal(size=(4000, 4)) * 3  # same mean, different spread
    assert M.fd(x, y) > 10 * M.fd(x, rng.normal(size=(4000, 4)))


def test_kid_unbiased_near_zero_for_same_distribution_positive_otherwise():
    rng = np.random.default_rng(2)
    x, x2 = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same, std = M.kid(x, x2, subsets=20, subset_size=200)
    diff, _ = M.kid(x, rng.normal(size=(400, 16)) + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 3 * std + 0.01
    assert diff > 10 * abs(same)


def test_kid_matches_direct_formula_on_one_subset():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(10, 3)) + 1
    val, _ = M.kid(x, y, subsets=1, subset_size=10)  # the subset is all rows (a permutation)
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 10
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / m**2
    assert val == pytest.approx(xx + yy - 2 * xy)


def test_flicker_vbench_formula_on_static_segments():
    f = np.zeros((1, 5, 3, 32, 32), np.uint8)
    f[0, 1] = 10  # transitions: 0->1 diff 10, 1->2 diff 10, others 0
    mask = np.array([[True, False, True, True]])
    # masked diffs: 10, 0, 0 -> mean 10/3
    assert M.flicker(f, mask) == pytest.approx((255 - 10 / 3) / 255)
    assert M.flicker(np.zeros_like(f), mask) == 1.0
    with pytest.raises(ValueError):
        M.flicker(f, np.zeros((1, 4), bool))


def test_static_mask_and_segments():
    f = np.zeros((1, 6, 3, 32, 32), np.uint8)
    f[0, 3:] = 50  # static 0-1-2-3? no: frames 0,1,2 equal, 3,4,5 equal
    m = M.static_mask(f)
    assert m.tolist() == [[True, True, False, True, True]]
    seg = M.static_segments(np.array([[True, False, True, True, False, True]]), min_transitions=2)
    assert seg.tolist() == [[False, False, True, True, False, False]]


def test_auc_and_steps_to_threshold():
    curve = [30.0, 25.0, 21.0, 19.0, 22.0]
    assert M.auc(curve) == pytest.approx(np.mean(curve))
    assert M.steps_to_threshold(curve, 20.0) == 3  # steps 1..3 above, step 4 below
    assert M.steps_to_threshold(curve, 10.0) == 5  # never below: the whole horizon
    assert M.steps_to_threshold(curve, 40.0) == 0


def test_values_are_json_floats():
    a, b = _frames((2, 3, 32, 32), 6), _frames((2, 3, 32, 32), 7)
    vals = [float(M.psnr(a, a).mean()), float(M.ssim(a, b).mean()), M.auc([1, 2]), M.finite_or_none(math.inf)]
    assert json.loads(json.dumps(vals))[3] is None


def test_pooled_psnr_is_psnr_of_mean_mse_and_not_dominated_by_exact_frames():
    a = _frames((2, 3, 3, 32, 32), 8)
    b = a.clone()
    b[:, 1:] = _frames((2, 2, 3, 32, 32), 9)  # step 0 copied exactly, later steps wrong
    per_frame_mean = M.psnr(b, a).mean()
    pooled = M.pooled_psnr(b, a)
    assert pooled == pytest.approx(10 * np.log10(255**2 / M.mse(b, a).mean()))
    assert pooled < per_frame_mean - 20  # the exact frames' capped 100 dB do not lift the set's PSNR
    by_step = M.pooled_psnr(b, a, axis=0)
    assert by_step.shape == (3,) and by_step[0] == M.PSNR_CAP and by_step[1] < 20
    assert M.pooled_psnr(a, a) == M.PSNR_CAP


def test_detail_energy_is_the_finest_haar_detail():
    detail_energy = M.detail_energy
    flat = np.full((1, 3, 8, 8), 90, np.uint8)
    checker = flat.copy()
    checker[..., ::2, ::2] = 190  # one pixel of each 2x2 block 100 brighter: each detail coefficient 25
    assert detail_energy(flat).tolist() == [0.0]
    assert detail_energy(checker).tolist() == [3 * 25.0**2]
    edges = np.zeros((2, 8, 8, 3), np.uint8)
    edges[0, :, :4] = 200  # an edge on the 2x2 grid has no finest detail; one off the grid has
    edges[1, :, :3] = 200
    assert detail_energy(edges, channels_first=False).tolist()[0] == 0.0 and detail_energy(edges, channels_first=False)[1] > 0
    # leading shape kept, channels-first and -last agree
    clips = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 6, 6), dtype=np.uint8)
    assert detail_energy(clips).shape == (2, 3)
    assert np.allclose(detail_energy(clips), detail_energy(np.moveaxis(clips, -3, -1), channels_first=False))


def test_region_contrast_is_the_variance_of_region_means():
    flat = np.full((1, 3, 16, 16), 90, np.uint8)
    halves = flat.copy()
    halves[..., :8] = 190  # two of four 8x8 regions 100 brighter: means 90, 90, 190, 190 -> variance 2500
    checker = flat.copy()
    checker[..., ::2, ::2], checker[..., 1::2, 1::2] = 140, 140  # texture within every region, the same mean in each
    assert M.region_contrast(flat).tolist() == [0.0] and M.region_contrast(halves).tolist() == [2500.0]
    assert M.region_contrast(checker).tolist() == [0.0] and M.detail_energy(checker)[0] > 0
    clips = np.random.default_rng(0).integers(0, 256, (2, 3, 3, 16, 16), dtype=np.uint8)
    assert M.region_contrast(clips).shape == (2, 3)
    assert np.allclose(M.region_contrast(clips), M.region_contrast(np.moveaxis(clips, -3, -1), channels_first=False))
