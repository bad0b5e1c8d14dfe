"""Does a model keep each ball's speed on the physics worlds, or pull it towards a typical one? As JSON.

    python bench/diagnose/ball_speed.py DATA [RUN ...] [--clips 82] [--horizon 32]

On the physics group's windows of DATA's test split (`eval.physical.physics_windows`: K real context frames
ending once every ball is in view, then the rest of the clip), each RUN rolls out and its frames are parsed
as Kang et al. do (`eval.physical.ball_positions`). For every (ball, step) whose disc is in view in both
frames of the step, the generated displacement is compared with the true one from the recorded positions:

- `along`: the generated displacement's component along the true one, over the true one's length (1: the
  right speed, above 1 faster, 0 a ball that stopped), median per generated step;
- `across`: the component across it over its length (a turn), median per step;
- `by_true_speed`: the median `along` of steps 1-12 in quartiles of the ball's true speed: a model that
  cannot read a ball's speed from its context predicts one pulled towards the training data's typical speed
  (slow balls sped up, fast ones slowed), and on its own frames the pull compounds step after step;
- `position_error`: median distance (world units) between parsed and true centres per step;
- `velocity_error`: Kang et al.'s |v_gen - v_true| (units/s) averaged over every measured pair, and per step:
  it grows with the step, so two runs compare only over the same generated steps (`--horizon`: a run with a
  longer context K has fewer steps left of a 32-frame clip, 32 - K, unless both are cut to the same count).

Two calibration rows come with every report: `real` (the parser on the real frames: `along` ~1 and
`across` ~0, the floor) and `copy_last` (the newest context frame repeated: `along` 0, the ball stopped).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from playworld.eval.physical import ball_positions, in_view
from playworld.worlds.physics import DT

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

STEPS = (1, 2, 4, 8, 12, 16, 20, 24, 28)


def speed_rows(frames: np.ndarray, positions: np.ndarray, radii: np.ndarray, start: int) -> dict[str, np.ndarray]:
    """One clip: frames (H, R, R, 3) uint8 shown after the real context, positions (start + H, n, 2) true centres,
    radii (n,). Returns flat arrays over the (step, ball) pairs measured: step (1-based), along, across, true speed
    (world units per frame), and position error per (step, ball) with the ball found (step_pos, position)."""
    n = positions.shape[1]
    parsed = ball_positions(frames, n)  # (H, n, 2)
    shown = np.concatenate([positions[start - 1 : start], parsed])  # the last real centre, then the parsed ones
    true = positions[start - 1 : start + len(frames)]
    visible = in_view(true, radii)
    d_gen, d_true = np.diff(shown, axis=0), np.diff(true, axis=0)  # (H, n, 2)
    speed = np.linalg.norm(d_true, axis=-1)
    ok = visible[1:] & visible[:-1] & np.isfinite(d_gen).all(-1) & (speed > 1e-9)
    steps = np.broadcast_to(np.arange(1, len(frames) + 1)[:, None], ok.shape)
    length = np.maximum(speed, 1e-9)
    unit = d_true / length[..., None]
    along = (d_gen * unit).sum(-1) / length
    across = np.abs(d_gen[..., 0] * unit[..., 1] - d_gen[..., 1] * unit[..., 0]) / length
    found = visible[1:] & np.isfinite(parsed).all(-1)
    v_err = np.linalg.norm(d_gen - d_true, axis=-1) / DT
    return {"step": steps[ok], "along": along[ok], "across": across[ok], "speed": speed[ok], "v_err": v_err[ok],
            "step_pos": steps[found], "position": np.linalg.norm(parsed - true[1:], axis=-1)[found]}


def summarise(rows: list[dict[str, np.ndarray]], horizon: int) -> dict:
    """The medians the report shows, from every clip's speed_rows."""
    cat = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    steps = [s for s in STEPS if s <= horizon]

    def per_step(key: str, step_key: str = "step", stat=np.median) -> dict[str, float | None]:
        return {str(s): (round(float(stat(v)), 3) if (v := cat[key][cat[step_key] == s]).size else None) for s in steps}

    early = cat["step"] <= 12
    quartiles = {}
    if early.any():
        edges = np.quantile(cat["speed"][early], [0, 0.25, 0.5, 0.75, 1])
        for lo, hi in itertools.pairwise(edges):
            sel = early & (cat["speed"] >= lo) & (cat["speed"] <= hi)
            quartiles[f"{lo:.3f}-{hi:.3f}"] = round(float(np.median(cat["along"][sel])), 3)
    return {"along": per_step("along"), "across": per_step("across"), "by_true_speed": quartiles,
            "position_error": per_step("position", "step_pos"), "velocity_error": round(float(cat["v_err"].mean()), 4),
            "velocity_error_by_step": per_step("v_err", stat=np.mean), "pairs": int(cat["step"].size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a physics/* dataset with a test split")
    ap.add_argument("runs", nargs="*", help="run folders to measure (their context sets the windows; all must agree)")
    ap.add_argument("--clips", type=int, default=82, help="test clips at most (the quality bench's physics world has 82)")
    ap.add_argument("--horizon", type=int, default=32, help="generated steps at most (the clip's end comes first)")
    ap.add_argument("--context", type=int, default=4, help="K, when no run is given (the calibration rows alone)")
    args = ap.parse_args()
    common.start(args)
    ds, models, ctx, w = common.physics_test_windows(args.data, args.runs, args.clips, args.horizon, args.seed, args.context)
    K = ctx.spec.context
    episodes = [ds.load_episode(ep) for ep, _ in w.index]
    real = [np.asarray(e.frames[t : t + w.horizon]) for e, (_, t) in zip(episodes, w.index)]
    shown = {"real": real, "copy_last": [np.repeat(np.asarray(e.frames[t - 1 : t]), w.horizon, axis=0)
                                         for e, (_, t) in zip(episodes, w.index)]}
    for run, model in models.items():
        shown[run] = list(ctx.generate(model, w).numpy().transpose(0, 1, 3, 4, 2))
    result = {"data": args.data, "context": K, "clips": len(w), "horizon": w.horizon, "rows": {}}
    for name, frames in shown.items():
        rows = [speed_rows(f, np.asarray(e.state["positions"]), np.asarray(e.state["radii"][t - 1]), t)
                for f, e, (_, t) in zip(frames, episodes, w.index)]
        result["rows"][name] = summarise(rows, w.horizon)
    common.report("ball_speed", result, args)


if __name__ == "__main__":
    main()
