"""Physical consistency on the physics worlds: the protocol of Kang et al. 2024.

"How Far is Video Generation from World Model: A Physical Law Perspective" measures a video
model by *parsing* its frames: each ball's position is the centroid of its colour mask (red:
R>127, G<127, B<127; blue: B>127, R<127, G<127), converted to world units; velocity is the
per-frame difference divided by 0.1 s; the metric is the mean absolute velocity error against
the simulator's ground truth over the generated frames (for collisions, post-collision frames
only). The same parser applied to the real frames gives the parsing floor, the best any model can
score (the paper's floors: 0.0099 uniform, 0.0117 collision, 0.0210 parabola).

Here:
- ground-truth velocity of frame t is (p_t - p_{t-1}) / 0.1 from the recorded positions (what a
  perfect video implies; equal to the state velocity for uniform motion);
- the absolute error of a velocity is the Euclidean norm of the 2-D difference;
- only (ball, frame) pairs whose ground-truth disc is fully in view in both frames count (a ball
  cut by the border has a biased centroid, in real frames too);
- each clip's window starts at the first frame t >= K whose previous frame shows every ball's
  centre (fast balls enter from outside the view; nothing could predict a ball the context lacks);
- a ball the parser cannot find in a generated frame is counted (`ball_missing_fraction`), not
  crashed on; its velocities are left out of the mean;
- the dataset's manifest (world_options.ood) says whether the test set is in- or
  out-of-distribution; metrics are reported per dataset and the split is named in `extra`.
"""

from __future__ import annotations

import numpy as np

from playworld.eval.api import EvalContext, GroupResult, Metric, NotApplicable, Skip, TooFewEpisodes, Windows, register_group
from playworld.media import labelled_panels
from playworld.worlds.physics import DT, WORLD_SIZE, pixel_to_world

PAPER_FLOORS = {"physics/uniform": 0.0099, "physics/collision": 0.0117, "physics/parabola": 0.0210}
"""Kang et al. 2024, ground-truth parsing floor of the velocity error per scenario"""
PAPER_DIT_S = {"id": (0.015, 0.022), "ood": (0.29, 0.44)}
"""Kang et al. 2024 Fig. 3, DiT-S velocity error range (uniform motion), in and out of distribution"""
METRICS = ("velocity_error", "position_error", "ball_missing_fraction")


def ball_positions(frames: np.ndarray, n_balls: int) -> np.ndarray:
    """Colour-mask centroids. frames (..., H, W, 3) uint8 -> (..., n_balls, 2) world (x, y); NaN if absent.

    Ball 0 is red, ball 1 blue (the physics worlds' colours)."""
    f = frames.astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    masks = [(r > 127) & (g < 127) & (b < 127), (b > 127) & (r < 127) & (g < 127)][:n_balls]
    H, W = frames.shape[-3:-1]
    rows = np.arange(H, dtype=np.float64)[:, None] + 0.5  # pixel centres
    cols = np.arange(W, dtype=np.float64)[None, :] + 0.5
    out = []
    for m in masks:  # m (..., H, W)
        count = m.sum(axis=(-2, -1)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            col = (m * cols).sum(axis=(-2, -1)) / count
            row = (m * rows).sum(axis=(-2, -1)) / count
        xy = pixel_to_world(np.stack([col, row], axis=-1), H)
        xy[count == 0] = np.nan
        out.append(xy)
    return np.stack(out, axis=-2)


def collision_index(velocities: np.ndarray, tol: float = 1e-6) -> int | None:
    """First frame t whose ground-truth velocity differs from frame t-1's (the collision happened
    in (t-1, t]); velocities (T, n, 2). None when the clip has no collision."""
    change = np.abs(np.diff(velocities, axis=0)).max(axis=(1, 2)) > tol
    hits = np.nonzero(change)[0]
    return int(hits[0]) + 1 if hits.size else None


def in_view(positions: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """positions (..., n, 2), radii (n,) -> (..., n) bool: the whole disc lies inside the world."""
    lo = positions - radii[:, None]
    hi = positions + radii[:, None]
    return (lo >= 0).all(-1) & (hi <= WORLD_SIZE).all(-1)


def clip_errors(parsed: np.ndarray, state: dict[str, np.ndarray], start: int, post_collision: bool) -> dict[str, np.ndarray]:
    """Errors of one clip's parsed positions against its recorded state.

    parsed (T, n, 2): positions parsed from frames 0..T-1 of the clip, real up to `start` and
    evaluated from `start` on (generated, or real for the floor). Returns flat arrays of the
    per-(frame, ball) velocity errors, position errors, and the missing flags over evaluated frames.
    """
    pos, vel, radii = state["positions"], state["velocities"], state["radii"]  # (T, n, 2), (T, n, 2), (n,)
    T = len(parsed)
    visible = in_view(pos[:T], radii)  # (T, n)
    frames = np.arange(start, T)
    if post_collision:
        tc = collision_index(vel[:T])
        if tc is None:
            return {"velocity": np.empty(0), "velocity_step": np.empty(0, int), "position": np.empty(0), "missing": np.empty(0, bool)}
        frames = frames[frames >= tc + 1]  # both ends of the interval after the collision
    frames = frames[frames >= 1]
    found = ~np.isnan(parsed[..., 0])  # (T, n)
    vis_now = visible[frames]  # (F, n)
    missing = vis_now & ~found[frames]
    both = vis_now & visible[frames - 1] & found[frames] & found[frames - 1]
    v_gen = (parsed[frames] - parsed[frames - 1]) / DT  # (F, n, 2)
    v_gt = (pos[frames] - pos[frames - 1]) / DT
    v_err = np.linalg.norm(v_gen - v_gt, axis=-1)[both]
    v_step = np.broadcast_to((frames - start)[:, None], both.shape)[both]  # generated step of each error, 0-based
    p_ok = vis_now & found[frames]
    p_err = np.linalg.norm(parsed[frames] - pos[frames], axis=-1)[p_ok]
    return {"velocity": v_err, "velocity_step": v_step, "position": p_err, "missing": missing[vis_now]}


def is_ood(dataset) -> bool:
    return bool((dataset.manifest.get("world_options") or {}).get("ood", False))


def physics_windows(ctx: EvalContext) -> Windows:
    """One window per test clip: K context frames ending once every ball is in view, then the rest of the clip."""
    K = ctx.spec.context
    eps = [e for e in ctx.dataset.episode_ids(ctx.split) if ctx.dataset.episode_length(e) >= K + 2]
    if not eps:
        lengths = [ctx.dataset.episode_length(e) for e in ctx.dataset.episode_ids(ctx.split)]
        raise TooFewEpisodes(
            "velocity_error", f"at least 1 {ctx.split} clip of >= {K + 2} frames (K={K} context + 2 to measure a velocity)",
            f"{len(lengths)} {ctx.split} clips, longest {max(lengths, default=0)} frames",
        )
    # A ball whose centre has not entered the view by the end of the context cannot be predicted
    # (fast balls start outside it): each clip's window starts once every centre is in view.
    starts = {e: t for e in eps if (t := _first_start(ctx.dataset, e, K)) is not None}
    if not starts:
        raise Skip(f"no {ctx.split} clip shows every ball's centre in view at the end of a K={K} context with 2 frames after it")
    eps = [e for e in eps if e in starts][: ctx.episodes]
    H = min(ctx.horizon, min(ctx.dataset.episode_length(e) - starts[e] for e in eps))
    return Windows(ctx.dataset, [(e, starts[e]) for e in eps], K, H)


def _first_start(dataset, ep: int, K: int) -> int | None:
    """The first t >= K with every ball's centre in view at frame t-1 and 2 frames from t on."""
    pos = np.asarray(dataset.load_episode(ep).state["positions"])  # (T, n, 2)
    shown = ((pos >= 0) & (pos <= WORLD_SIZE)).all(axis=(1, 2))  # (T,)
    for t in range(K, len(pos) - 1):
        if shown[t - 1]:
            return t
    return None


def requires(dataset) -> str | None:
    """Why this group cannot run on `dataset` (None when it can); the suite asks before any work."""
    return None if dataset.world.startswith("physics/") else f"needs a physics/* dataset (this one is {dataset.world!r})"


@register_group("physics")
def physics_group(model, ctx: EvalContext) -> GroupResult:
    world = ctx.dataset.world
    if (why := requires(ctx.dataset)) is not None:
        raise NotApplicable(why)
    windows = physics_windows(ctx)
    K, H = windows.context, windows.horizon
    generated = ctx.generate(model, windows).numpy().transpose(0, 1, 3, 4, 2)  # (N, H, res, res, 3)
    collision = world == "physics/collision"
    parts: dict[str, dict[str, list]] = {"model": {}, "floor": {}}
    for i, (ep, t) in enumerate(windows.index):
        episode = ctx.dataset.load_episode(ep)
        state = {k: np.asarray(v[: t + H]) for k, v in episode.state.items()}
        state["radii"] = np.asarray(episode.state["radii"][t - 1])
        n = state["positions"].shape[1]
        real = ball_positions(np.asarray(episode.frames[: t + H]), n)  # (t+H, n, 2)
        gen = real.copy()
        gen[t:] = ball_positions(generated[i], n)  # the model's frames after the real context
        for name, parsed in (("model", gen), ("floor", real)):
            for key, arr in clip_errors(parsed, state, t, collision).items():
                parts[name].setdefault(key, []).append(arr)
    cat = {name: {k: np.concatenate(v) for k, v in d.items()} for name, d in parts.items()}
    split = "ood" if is_ood(ctx.dataset) else "id"
    where = f"{'out-of' if split == 'ood' else 'in'}-distribution {ctx.split} set of {world}"
    result = GroupResult(extra={
        "distribution": split, "world": world, "clips": len(windows), "context": K, "horizon": H,
        "paper_floor": PAPER_FLOORS.get(world), "paper_dit_s_uniform": PAPER_DIT_S[split],
        "velocity_error_floor": _mean(cat["floor"]["velocity"]), "position_error_floor": _mean(cat["floor"]["position"]),
        "evaluated_pairs": int(cat["model"]["missing"].size),
    })
    if cat["model"]["missing"].size == 0:
        why = "no post-collision frame among the generated ones" if collision else "no ball fully in view in the generated frames"
        for m in METRICS:
            result.skipped[m] = why
        return result
    result.metrics["ball_missing_fraction"] = Metric(
        float(cat["model"]["missing"].mean()), higher_is_better=False, floor=float(cat["floor"]["missing"].mean()),
        description=f"fraction of (ball, frame) pairs in view where the colour parser finds no ball ({where})",
    )
    what = "post-collision generated frames" if collision else "generated frames"
    if cat["model"]["velocity"].size == 0:
        result.skipped["velocity_error"] = "the balls vanish from every generated frame pair"
    else:
        paper = PAPER_FLOORS.get(world)
        result.metrics["velocity_error"] = Metric(
            float(cat["model"]["velocity"].mean()), higher_is_better=False, floor=result.extra["velocity_error_floor"],
            unit="units/s",
            description=f"Kang et al. velocity error, mean |v_gen - v_true| over {what} ({where}); floor = the parser "
                        f"on real frames" + (f" (paper's floor {paper})" if paper is not None else ""),
        )
    if cat["model"]["position"].size == 0:
        result.skipped["position_error"] = "the balls vanish from every generated frame"
    else:
        result.metrics["position_error"] = Metric(
            float(cat["model"]["position"].mean()), higher_is_better=False, floor=result.extra["position_error_floor"],
            unit="units", description=f"state error: mean distance of parsed ball centres from the true positions ({where})",
        )
    steps = cat["model"]["velocity_step"]
    result.curves["velocity_error_by_step"] = [
        float(cat["model"]["velocity"][steps == j].mean()) if (steps == j).any() else float("nan") for j in range(H)]
    result.videos["real | model"] = _side_by_side(windows, generated[: 4])
    return result


physics_group.requires = requires


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if a.size else None


def _side_by_side(windows: Windows, generated: np.ndarray) -> np.ndarray:
    """Up to 4 clips stacked vertically, real left, model right, labelled (playworld.media): (H, H', W', 3) u8."""
    batch = windows.batch()
    real = batch.future_frames[: len(generated)].numpy().transpose(0, 1, 3, 4, 2)
    return labelled_panels({"real": real, "model": np.ascontiguousarray(generated)}, scale=1)
