"""The fidelity group against the calibration baselines on a tiny explorer dataset, and its parts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_fixtures import calibration_results, metric_value, HORIZON, make_ctx, single_thread, spec_of, tiny_explorer

from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld import metrics as M
from playworld.eval.api import GroupResult, Skip, get_groups
from playworld.eval.features import EncoderConfig
from playworld.eval.fidelity import FidelityConfig, flicker, group_config, reference_clips, reference_positions, rollout_windows
from playworld.media import GAP, TEXT_COLOR, split_comparison, text_mask
from playworld.models.baselines import CopyLast

_threads = pytest.fixture(scope="module", autouse=True)(single_thread)


@pytest.fixture(scope="module")
def results() -> dict[str, GroupResult]:
    return calibration_results("fidelity")


_v = metric_value


@pytest.mark.slow
def test_oracle_reaches_every_floor(results):
    o = results["oracle"]
    assert not o.skipped
    assert _v(o, "psnr_teacher_forced") == M.PSNR_CAP and _v(o, "psnr_auc") == M.PSNR_CAP
    assert _v(o, "ssim_teacher_forced") == pytest.approx(1.0) and _v(o, "ssim_auc") == pytest.approx(1.0)
    assert _v(o, "psnr_steps_above_threshold") == HORIZON
    assert o.curves["psnr_by_step"] == [M.PSNR_CAP] * HORIZON
    for name in ("fd", "kid", "flicker"):  # FD/KID: the oracle's clips are the floor's real clips
        assert _v(o, name) == pytest.approx(o.metrics[name].floor)
    assert _v(o, "flicker") == 1.0


@pytest.mark.slow
def test_copy_last_and_ignore_actions_score_worse(results):
    o, c, i = results["oracle"], results["copy-last"], results["ignore-actions"]
    for res in (c, i):
        assert _v(res, "psnr_teacher_forced") < 45 and _v(res, "psnr_auc") < 30
        assert _v(res, "ssim_auc") < 0.9
        assert _v(res, "psnr_steps_above_threshold") < HORIZON
    # copy-last freezes the world: its clips have no motion, far from real clips in feature space
    assert _v(c, "fd") > 2 * o.metrics["fd"].floor
    assert _v(c, "kid") > o.metrics["kid"].floor
    # the real world with random actions makes real-looking clips, so FD stays near the floor:
    # FD measures realism; following the actions is the controllability group's job
    assert _v(i, "fd") < _v(c, "fd")
    # the autoregressive curves degrade with the horizon for both
    for res in (c, i):
        curve = res.curves["psnr_by_step"]
        assert len(curve) == HORIZON and np.mean(curve[-4:]) < np.mean(curve[:4])


@pytest.mark.slow
def test_frame_shuffle_check_fires(results):
    check = results["oracle"].extra["frame_shuffle_check"]
    assert check["passed"], check
    assert check["fd_shuffled_real"] > 2 * check["fd_real_vs_real"]


@pytest.mark.slow
def test_results_are_json_and_carry_a_video(results):
    for res in results.values():
        values = {k: m.value for k, m in res.metrics.items()}
        json.dumps({"values": values, "curves": res.curves, "extra": res.extra}, allow_nan=False)
        assert all(isinstance(v, float) for v in values.values())
    video = results["copy-last"].videos["rollouts: real | model"]
    assert video.dtype == np.uint8 and video.shape[0] == HORIZON and video.shape[3] == 3


@pytest.mark.slow
def test_the_report_video_shows_real_left_and_model_right_labelled():
    ds = tiny_explorer()
    ctx = make_ctx(ds, options={"fidelity": {"teacher_forced_windows": 4, "min_clips": 10**6}})  # FD skipped
    video = get_groups()["fidelity"](CopyLast(spec_of(ds)), ctx).videos["rollouts: real | model"]
    gen, real = split_comparison(video, 32)
    batch = rollout_windows(ctx, HORIZON, ctx.episodes).batch()
    k = len(real)
    assert k == FidelityConfig().video_windows and torch.equal(torch.from_numpy(real), batch.future_frames[:k])
    assert torch.equal(torch.from_numpy(gen), batch.context_frames[:k, -1:].expand(-1, HORIZON, -1, -1, -1))  # copy-last
    panel = (video.shape[2] - GAP) // 2
    for label, x in (("real", 2), ("model", panel + GAP + 2)):  # the strip above: a 2 px margin, 7 px glyphs
        mask = text_mask(label)
        assert ((video[:, 2:9, x:x + mask.shape[1]] == TEXT_COLOR).all(-1) == mask).all()
    assert all(not np.array_equal(a[:11], b[:11]) for a, b in zip(video, video[1:]))  # the frame counter moves


@pytest.mark.slow
def test_threshold_is_configurable_and_steps_follow_the_curve():
    ds = tiny_explorer()
    ctx = make_ctx(ds, options={"fidelity": {"psnr_threshold": 10.0, "teacher_forced_windows": 4,
                                             "min_clips": 10**6}})  # FD skipped: no encoder training here
    res = get_groups()["fidelity"](CopyLast(spec_of(ds)), ctx)
    assert _v(res, "psnr_steps_above_threshold") == M.steps_to_threshold(res.curves["psnr_by_step"], 10.0)
    assert "FD/KID needs 1000000 clips" in res.skipped["fd"]


@pytest.mark.slow
def test_windows_are_disjoint_from_the_reference_clips():
    ds = tiny_explorer()
    ctx = make_ctx(ds)
    w = rollout_windows(ctx, HORIZON, 1000)
    slots = sum(ds.episode_length(e) // (2 + HORIZON) for e in ds.episode_ids("test"))
    assert 0 < len(w) <= slots // 2  # half the slots stay free for the reference set
    spans = sorted((ep, t, t + HORIZON) for ep, t in w.index)
    for (e1, _, b1), (e2, a2, _) in zip(spans, spans[1:]):
        assert e1 != e2 or b1 <= a2 - 2  # windows (context included) do not overlap
    pos = reference_positions(ctx, w, 8)
    assert len(pos) >= 16
    for ep, s in pos:  # no reference clip shares a frame with an evaluated future
        assert all(e != ep or s + 8 <= t or s >= t + HORIZON for e, t in w.index)
    ref = reference_clips(ctx, w, 8, 10)
    assert ref.shape == (10, 8, 3, 32, 32) and ref.dtype == torch.uint8
    assert torch.equal(ref, reference_clips(ctx, w, 8, 10))  # seeded


def test_flicker_uses_static_real_segments_and_skips_without_them():
    res = GroupResult()
    last = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    real = torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8)  # static throughout
    gen = real.clone()
    gen[0, 1] = 51  # the generated video flickers on one frame: diffs 51 then 51 over 4 transitions
    flicker(FidelityConfig(), last, real, gen, res)
    assert res.metrics["flicker"].value == pytest.approx((255 - 2 * 51 / 4) / 255)
    assert res.metrics["flicker"].floor == 1.0
    moving = torch.arange(4, dtype=torch.uint8).view(1, 4, 1, 1, 1).expand(1, 4, 3, 32, 32) * 10 + 10
    with pytest.raises(Skip, match="no static segment"):
        flicker(FidelityConfig(), last, moving.contiguous(), gen, GroupResult())


@pytest.mark.slow
def test_group_config_reads_options():
    ctx = make_ctx(tiny_explorer(), options={"fidelity": {"psnr_threshold": 25.0, "encoder": {"steps": 5}}})
    cfg = group_config(ctx, "fidelity", FidelityConfig)
    assert cfg.psnr_threshold == 25.0 and cfg.encoder == EncoderConfig(steps=5)
    assert group_config(make_ctx(tiny_explorer(), options={}), "fidelity", FidelityConfig) == FidelityConfig()
    with pytest.raises(PlayworldError, match="unknown option"):
        group_config(make_ctx(tiny_explorer(), options={"fidelity": {"psnr_treshold": 1}}), "fidelity", FidelityConfig)


@pytest.mark.slow
def test_too_few_episodes_skips_fd_with_what_it_needs(tmp_path):
    ds = collect("explorer", tmp_path / "few", episodes=3, steps=40, resolution=32, progress=False)
    res = get_groups()["fidelity"](CopyLast(spec_of(ds)), make_ctx(ds, cache={}))
    assert "psnr_auc" in res.metrics  # what can be computed still is
    for name in ("fd", "kid", "fd_frame_shuffled_real"):
        assert res.skipped[name].startswith("FD/KID needs")
