"""Fidelity: how close generated frames and clips are to the real ones.

- teacher-forced next-frame PSNR / SSIM: real context, one step with the real action, many windows;
- autoregressive PSNR / SSIM per step t = 1..H from real contexts with the real actions, as curves
  (`psnr_by_step`, `ssim_by_step`) summarised by their mean over steps (area under the curve,
  normalised) and the number of steps before PSNR first drops below a threshold (default 20 dB);
- FD and KID between generated and real clips in the feature space of the dataset's own domain
  encoder (eval/features.py), with the real-vs-real floor (held-out real clips of the same split,
  disjoint from the evaluated windows) and a frame-shuffle check (real clips with their frames
  permuted must score clearly worse than the floor: the features see time);
- temporal flicker (VBench) over the steps where the real video is static.

PSNR is that of the mean squared error over the windows (`metrics.pooled_psnr`), capped at
`metrics.PSNR_CAP` = 100 dB for exact frames: the oracle scores 100 dB, and frames a baseline copies
exactly (static scenes) cannot dominate the average as their per-frame infinite dB would.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from playworld import metrics as M
from playworld.errors import PlayworldError
from playworld.eval.api import EvalContext, GroupResult, Metric, Skip, TooFewEpisodes, Windows, register_group
from playworld.eval.features import EncoderConfig, cut_clips, domain_encoder, embed, shuffle_frames
from playworld.media import labelled_panels


@dataclass(frozen=True)
class FidelityConfig:
    teacher_forced_windows: int = 64
    """windows for the one-step (teacher-forced) PSNR/SSIM"""
    psnr_threshold: float = 20.0
    """dB; `psnr_steps_above_threshold` counts the steps before the mean PSNR curve drops below it"""
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    reference_clips: int = 512
    """at most this many held-out real clips form the FD/KID reference set"""
    min_clips: int = 16
    """FD/KID are skipped when either set has fewer clips than this"""
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    shuffle_ratio: float = 2.0
    """the frame-shuffle check passes when FD(shuffled real clips) >= ratio x the real-vs-real floor"""
    static_tol: float = 0.0
    """a real transition is static when its mean absolute difference (0..255) is at most this"""
    static_min_transitions: int = 2
    """a static segment spans at least this many consecutive static transitions (3 frames)"""
    video_windows: int = 4
    """rollouts shown in the report video, one row each (real left, model right, labelled)"""


def group_config(ctx: EvalContext, name: str, cls: type) -> Any:
    """Settings of group `name`: `ctx.options[name]` (a `cls` or a dict of its fields), else defaults."""
    given = (ctx.options or {}).get(name)
    if given is None or isinstance(given, cls):
        return given or cls()
    if not isinstance(given, dict):
        raise PlayworldError(f"options for metric group {name!r} must be a dict", f"pass fields of {cls.__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(given) - set(known)
    if unknown:
        raise PlayworldError(f"unknown option(s) {sorted(unknown)} for metric group {name!r}", f"use {', '.join(known)}")
    kw = {}
    for k, v in given.items():
        sub = known[k].default_factory() if callable(known[k].default_factory) else None  # type: ignore[misc]
        kw[k] = type(sub)(**v) if is_dataclass(sub) and isinstance(v, dict) else v
    return cls(**kw)


@contextmanager
def skipping(res: GroupResult, *names: str) -> Iterator[None]:
    """Run a block; a Skip inside records its reason for each of `names` not already computed.

    The first such Skip is kept in res.extra["_first_skip"] so a group whose every metric was
    skipped can raise it (`raise_if_empty`) and the suite reports the group itself as skipped.
    """
    try:
        yield
    except Skip as e:
        for n in names:
            if n not in res.metrics:
                res.skipped[n] = str(e)
        res.extra.setdefault("_first_skip", e)


def raise_if_empty(res: GroupResult) -> GroupResult:
    """Re-raise the first Skip when no metric could be computed; else drop the bookkeeping entry."""
    first = res.extra.pop("_first_skip", None)
    if not res.metrics and first is not None:
        raise first
    return res


def _mean(a) -> float:
    return float(np.mean(a))


# -- windows that do not overlap, and held-out real clips ------------------------------------------
def rollout_windows(ctx: EvalContext, horizon: int, n: int) -> Windows:
    """Up to `n` non-overlapping windows of K + `horizon` frames from ctx.split, spread over episodes.

    At most half of the split's window slots are used, so held-out real clips remain for the FD/KID
    reference set (`reference_clips`) even in small datasets.

    The horizon is shortened to the longest episode's length minus K when no episode is long enough
    (e.g. 32-frame physics clips); the caller reads the horizon back from the Windows.
    """
    K, ds = ctx.spec.context, ctx.dataset
    eps = ds.episode_ids(ctx.split)
    if not eps:
        raise Skip(f"the {ctx.split} split has no episodes")
    longest = max(ds.episode_length(e) for e in eps)
    horizon = min(horizon, longest - K)
    if horizon < 1:
        raise Skip(f"no {ctx.split} episode is longer than the context ({K} frames)")
    seg = K + horizon
    rng = np.random.default_rng(ctx.seed)
    per_ep = []
    for ep in rng.permutation(eps):
        T = ds.episode_length(int(ep))
        count = T // seg
        if count:
            offset = int(rng.integers(0, T - count * seg + 1))
            per_ep.append([(int(ep), offset + i * seg + K) for i in rng.permutation(count)])
    index: list[tuple[int, int]] = []
    for i in range(max(map(len, per_ep))):  # round robin: one window per episode first
        index += [lst[i] for lst in per_ep if i < len(lst)]
    return Windows(ds, index[:min(n, max(1, len(index) // 2))], K, horizon)


def reference_positions(ctx: EvalContext, windows: Windows, length: int) -> list[tuple[int, int]]:
    """(episode, first frame) of every `length`-frame clip of ctx.split (on a grid of step `length`)
    that shares no frame with the windows' futures."""
    ds = ctx.dataset
    used: dict[int, list[tuple[int, int]]] = {}
    for ep, t in windows.index:
        used.setdefault(ep, []).append((t, t + windows.horizon))
    return [(ep, s) for ep in ds.episode_ids(ctx.split) for s in range(0, ds.episode_length(ep) - length + 1, length)
            if all(s + length <= a or s >= b for a, b in used.get(ep, []))]


def reference_clips(ctx: EvalContext, windows: Windows, length: int, limit: int) -> Tensor:
    """Held-out real clips: up to `limit` of `reference_positions`, drawn at random (seeded).

    Returns (N, length, 3, H, W) uint8.
    """
    ds = ctx.dataset
    cands = reference_positions(ctx, windows, length)
    rng = np.random.default_rng(ctx.seed + 1)
    pick = [cands[i] for i in sorted(rng.permutation(len(cands))[:limit])]
    clips = [np.asarray(ds.load_episode(ep).frames[s:s + length]) for ep, s in pick]
    if not clips:
        return torch.zeros(0, length, 3, ds.resolution, ds.resolution, dtype=torch.uint8)
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()


# -- the parts ------------------------------------------------------------------------------------
def teacher_forced(model: Any, ctx: EvalContext, cfg: FidelityConfig, res: GroupResult) -> None:
    w = ctx.windows(horizon=1, n=cfg.teacher_forced_windows)
    real = w.batch().future_frames  # (N, 1, 3, H, W)
    gen = ctx.generate(model, w)
    res.metrics["psnr_teacher_forced"] = Metric(
        M.pooled_psnr(gen, real), True, floor=M.PSNR_CAP, unit="dB",
        description=f"next-frame PSNR (of the MSE over {len(w)} windows) from real context and action")
    res.metrics["ssim_teacher_forced"] = Metric(
        _mean(M.ssim(gen, real)), True, floor=1.0, description="next-frame SSIM (scikit-image) from real context and action")


def autoregressive(model: Any, ctx: EvalContext, cfg: FidelityConfig, res: GroupResult) -> tuple[Windows, Tensor, Tensor, Tensor]:
    """Rollouts with the real actions; returns (windows, last context frames, real future, generated)."""
    w = rollout_windows(ctx, ctx.horizon, ctx.episodes)
    batch = w.batch()
    real, last = batch.future_frames, batch.context_frames[:, -1]
    gen = ctx.generate(model, w)  # (N, H, 3, res, res)
    psnr_curve = M.pooled_psnr(gen, real, axis=0)  # (H,): PSNR of the mean MSE over windows at each step
    ssim_curve = M.ssim(gen, real).mean(0)
    H = w.horizon
    res.curves["psnr_by_step"] = [float(v) for v in psnr_curve]
    res.curves["ssim_by_step"] = [float(v) for v in ssim_curve]
    res.metrics["psnr_auc"] = Metric(
        M.auc(psnr_curve), True, floor=M.PSNR_CAP, unit="dB",
        description=f"autoregressive PSNR averaged over steps 1..{H} ({len(w)} rollouts, real actions)")
    res.metrics["ssim_auc"] = Metric(M.auc(ssim_curve), True, floor=1.0, description=f"autoregressive SSIM averaged over steps 1..{H}")
    res.metrics["psnr_steps_above_threshold"] = Metric(
        float(M.steps_to_threshold(psnr_curve, cfg.psnr_threshold)), True, floor=float(H), unit="steps",
        description=f"steps before the mean PSNR first drops below {cfg.psnr_threshold:g} dB ({H} = never within the horizon)")
    res.extra["rollout"] = {"windows": len(w), "horizon": H, "requested_horizon": ctx.horizon,
                            "psnr_threshold_db": cfg.psnr_threshold}
    k = min(cfg.video_windows, len(w))
    if k:  # (H, H', W', 3): rows are rollouts, real left, model right, as small as the labels allow
        res.videos["rollouts: real | model"] = labelled_panels(
            {"real": real[:k].permute(0, 1, 3, 4, 2).numpy(), "model": gen[:k].permute(0, 1, 3, 4, 2).numpy()}, scale=1)
    return w, last, real, gen


def distribution(ctx: EvalContext, cfg: FidelityConfig, w: Windows, real: Tensor, gen: Tensor, res: GroupResult) -> None:
    L = cfg.encoder.clip
    gen_clips, real_clips = cut_clips(gen, L), cut_clips(real, L)
    ref = reference_clips(ctx, w, L, cfg.reference_clips)
    if min(len(gen_clips), len(ref)) < cfg.min_clips:
        raise TooFewEpisodes(
            "FD/KID", f"{cfg.min_clips} clips of {L} frames from rollouts and as many held-out real ones in the {ctx.split} split",
            f"{len(gen_clips)} and {len(ref)} (collect more or longer {ctx.split} episodes)")
    encoder, info = domain_encoder(ctx, cfg.encoder)
    f_ref, f_gen, f_real = embed(encoder, ref), embed(encoder, gen_clips), embed(encoder, real_clips)
    f_shuf = embed(encoder, shuffle_frames(real_clips, torch.Generator().manual_seed(ctx.seed)))
    # one scale whatever the encoder learned: every feature divided by the same number, the reference set's
    # RMS spread per dimension (a single factor keeps FD's ranking of models exactly; standardising each
    # dimension apart reordered the model and ignore-actions on 16 rollouts), so KID reads as papers report it
    scale = float(np.sqrt(f_ref.var(0).mean())) + 1e-12
    f_ref, f_gen, f_real, f_shuf = (f / scale for f in (f_ref, f_gen, f_real, f_shuf))
    fd_floor, fd_gen, fd_shuf = M.fd(f_real, f_ref), M.fd(f_gen, f_ref), M.fd(f_shuf, f_ref)
    kw = dict(subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=ctx.seed)
    kid_gen, kid_std = M.kid(f_gen, f_ref, **kw)
    kid_floor, _ = M.kid(f_real, f_ref, **kw)
    where = f"{len(gen_clips)} clips of {L} frames vs {len(ref)} held-out real clips, domain-encoder features (unit RMS spread)"
    res.metrics["fd"] = Metric(fd_gen, False, floor=fd_floor, description=f"Frechet distance, {where}; floor: real vs real")
    res.metrics["kid"] = Metric(kid_gen, False, floor=kid_floor,
                                description=f"kernel distance (unbiased MMD^2, cubic kernel; std {kid_std:.3g}), {where}")
    res.metrics["fd_frame_shuffled_real"] = Metric(
        fd_shuf, False, floor=fd_floor,
        description="FD of real clips with their frames shuffled: must be clearly above the floor (the features see time)")
    res.extra["frame_shuffle_check"] = {
        "fd_real_vs_real": fd_floor, "fd_shuffled_real": fd_shuf, "ratio": fd_shuf / max(fd_floor, 1e-12),
        "required_ratio": cfg.shuffle_ratio, "passed": bool(fd_shuf >= cfg.shuffle_ratio * fd_floor),
    }
    res.extra["encoder"] = {"clip": L, "resolution": cfg.encoder.resolution, "dim": cfg.encoder.dim, **info}


def flicker(cfg: FidelityConfig, last: Tensor, real: Tensor, gen: Tensor, res: GroupResult) -> None:
    real_seq = torch.cat([last[:, None], real], 1)  # (N, H+1, ...): transitions start at the real context
    gen_seq = torch.cat([last[:, None], gen], 1)
    mask = M.static_segments(M.static_mask(real_seq, cfg.static_tol), cfg.static_min_transitions)
    if not mask.any():
        raise Skip(f"the real video has no static segment ({cfg.static_min_transitions}+ unchanged transitions) "
                   "in the evaluation windows; flicker is measured only where the real frames are static")
    res.metrics["flicker"] = Metric(
        M.flicker(gen_seq, mask), True, floor=M.flicker(real_seq, mask),
        description=f"VBench temporal flickering (255 - mean|frame diff|)/255 over {int(mask.sum())} static real transitions")


@register_group("fidelity")
def fidelity(model: Any, ctx: EvalContext) -> GroupResult:
    """Teacher-forced and autoregressive PSNR/SSIM, FD/KID with floor and shuffle check, flicker."""
    cfg = group_config(ctx, "fidelity", FidelityConfig)
    res = GroupResult()
    with skipping(res, "psnr_teacher_forced", "ssim_teacher_forced"):
        teacher_forced(model, ctx, cfg, res)
    rollout_names = ("psnr_auc", "ssim_auc", "psnr_steps_above_threshold", "fd", "kid", "fd_frame_shuffled_real", "flicker")
    rollout = None
    with skipping(res, *rollout_names):
        rollout = autoregressive(model, ctx, cfg, res)
    if rollout is not None:
        w, last, real, gen = rollout
        with skipping(res, "fd", "kid", "fd_frame_shuffled_real"):
            distribution(ctx, cfg, w, real, gen, res)
        with skipping(res, "flicker"):
            flicker(cfg, last, real, gen, res)
    return raise_if_empty(res)
