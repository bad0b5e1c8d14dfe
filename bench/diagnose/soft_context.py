"""Does a model read a softer context as faster motion? As JSON.

    python bench/diagnose/soft_context.py DATA RUN [RUN ...] [--blur 0,0.5,0.8] [--clips 82] [--horizon 16]

A one-step diffusion sampler draws the conditional mean, so a model's own frames come out softer than real
ones; a model trained on real (sharp) frames only has never seen a soft context. On the physics group's
windows of DATA's test split (`eval.physical.physics_windows`), each RUN predicts one step from the real
context blurred by a Gaussian of each `--blur` standard deviation (pixels), and rolls out `--horizon` steps
on its own frames. The balls are parsed as Kang et al. do (`eval.physical.ball_positions`); a step's `gain`
is its displacement along the ball's true direction over the displacement between the two newest frames
it was predicted from: 1 keeps the speed the context shows, above 1 speeds the ball up (only balls whose disc
is wholly in view in all three frames count: a disc cut by the edge parses off its centre). Reported per run:

- `blur`: for each blur, the median (and mean) gain of one step from the real context so blurred, and the
  `softness` of the context's newest frame and of the prediction;
- `own`: per rollout step (from step 3, where two generated frames precede the one scored), the gain of the
  model's own step over its previous one, and the softness of its frame; `compounded` multiplies the median
  gains of every step scored: the speed-up a rollout piles up from reading its own frames;

`softness`: of the pixels whose colour is on the way from the white background to a ball's colour, the share
that is partly there (coverage between 0.16 and 0.84): a sharp disc has only its antialiased rim partly there,
a blurred one a wider rim. The `real` row gives the real frames' softness, the floor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from playworld.eval.physical import ball_positions, in_view
from playworld.models.diffusion.loss import gaussian_blur

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

CHANNEL = (0, 2)  # the channel each ball's colour keeps at 255 on white: red, blue (eval.physical.ball_positions)


def softness(frames: np.ndarray, n_balls: int) -> float:
    """frames (..., H, W, 3) uint8 on white -> the share of the balls' pixels that are partly covered."""
    f = frames.astype(np.float32) / 255
    partly = total = 0
    for b in range(n_balls):
        keep = f[..., CHANNEL[b]]
        others = np.delete(f, CHANNEL[b], axis=-1)
        coverage = 1 - others.mean(-1)  # 0 on white, 1 on the ball's pure colour
        mask = (keep > 0.5) & (coverage > 0.16)
        partly += int((mask & (coverage < 0.84)).sum())
        total += int(mask.sum())
    return partly / max(total, 1)


def gains(older: np.ndarray, newer: np.ndarray, predicted: np.ndarray, direction: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Parsed centres (N, n, 2) of two context frames and the prediction, the true unit direction (N, n, 2) and
    which balls count (N, n) -> each one's predicted step along the direction over the context's last step (flat)."""
    before = ((newer - older) * direction).sum(-1)
    after = ((predicted - newer) * direction).sum(-1)
    ok = valid & np.isfinite(before) & np.isfinite(after) & (np.abs(before) > 0.05)  # 0.05 units: a third of a pixel at 64 px
    return after[ok] / before[ok]


def one_step(model, context: np.ndarray, actions: torch.Tensor, action: torch.Tensor, seed: int) -> np.ndarray:
    """context (N, K, H, W, 3) uint8 -> the model's next frame (N, H, W, 3) uint8."""
    state = model.reset(torch.from_numpy(np.array(context)).permute(0, 1, 4, 2, 3), actions, seed=seed)
    _, frame = model.step(state, action)
    return frame.permute(0, 2, 3, 1).numpy()


def blurred(context: np.ndarray, sigma: float) -> np.ndarray:
    """context (N, K, H, W, 3) uint8 blurred by a Gaussian of sigma pixels, rounded back to uint8."""
    if sigma <= 0:
        return context
    x = torch.from_numpy(np.array(context)).permute(0, 1, 4, 2, 3).float()
    out = gaussian_blur(x, torch.full((x.shape[0],), float(sigma)))
    return out.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2).numpy()


def stats(g: np.ndarray) -> dict:
    return {"gain": round(float(np.median(g)), 3) if g.size else None,
            "mean": round(float(np.mean(g)), 3) if g.size else None, "pairs": int(g.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a physics/* dataset with a test split")
    ap.add_argument("runs", nargs="+", help="run folders to measure (their context sets the windows; all must agree)")
    ap.add_argument("--blur", default="0,0.5,0.8", help="comma-separated Gaussian standard deviations in pixels")
    ap.add_argument("--clips", type=int, default=82, help="test clips at most (the quality bench's physics world has 82)")
    ap.add_argument("--horizon", type=int, default=16, help="generated steps of the own-frames rollout")
    ap.add_argument("--at", type=lambda v: [int(x) for x in v.split(",")], default=[4, 8, 12],
                    help="comma-separated generated steps whose real context is blurred and predicted from")
    args = ap.parse_args()
    common.start(args)
    try:
        blurs = [float(b) for b in args.blur.split(",")]
    except ValueError:
        raise SystemExit(f"--blur {args.blur!r}: give comma-separated numbers of pixels, e.g. 0,0.5,0.8") from None
    if any(b < 0 for b in blurs):
        raise SystemExit(f"--blur {args.blur!r}: a blur is a standard deviation, 0 or more pixels")
    ds, models, ctx, w = common.physics_test_windows(args.data, args.runs, args.clips, args.horizon, args.seed)
    K = ctx.spec.context
    batch = w.batch()
    at = [s for s in args.at if s <= w.horizon]
    if not at:
        raise SystemExit(f"--at {args.at}: no step within the {w.horizon} generated steps the clips leave")
    episodes = [ds.load_episode(ep) for ep, _ in w.index]
    n_balls = int(np.asarray(episodes[0].state["positions"]).shape[1])
    # true centres from the frame before the newest context frame on: index i is the frame t - 2 + i, so generated
    # step s (1-based, the frame t + s - 1) is index s + 1 and the step into it is diff index s
    positions = np.stack([np.asarray(e.state["positions"])[t - 2 : t + w.horizon] for e, (_, t) in zip(episodes, w.index)])
    seen = np.stack([in_view(p, np.asarray(e.state["radii"][t - 1])) for p, e, (_, t) in zip(positions, episodes, w.index)])
    step = np.diff(positions, axis=1)
    direction = step / np.maximum(np.linalg.norm(step, axis=-1, keepdims=True), 1e-9)

    def whole(s: int) -> np.ndarray:  # (N, n): the disc wholly in view in the frames of steps s - 2, s - 1 and s
        return seen[:, s - 1] & seen[:, s] & seen[:, s + 1]

    frames = [np.asarray(e.frames) for e in episodes]
    before = {s: np.stack([f[t + s - 1 - K : t + s - 1] for f, (_, t) in zip(frames, w.index)]) for s in at}  # (N, K, H, W, 3)
    after = {s: np.stack([f[t + s - 1] for f, (_, t) in zip(frames, w.index)]) for s in at}
    real = np.concatenate([gains(ball_positions(before[s][:, -2], n_balls), ball_positions(before[s][:, -1], n_balls),
                                 ball_positions(after[s], n_balls), direction[:, s], whole(s)) for s in at])
    result = {"data": args.data, "context": K, "clips": len(w), "horizon": w.horizon, "at": at,
              "real": {"softness": round(softness(np.stack([before[s][:, -1] for s in at]), n_balls), 3), **stats(real)},
              "rows": {}}
    for run, model in models.items():
        row = {"blur": {}, "own": {}}
        for sigma in blurs:
            g, soft_in, soft_out = [], [], []
            for s in at:
                c = blurred(before[s], sigma)
                # the physics worlds take no action: the window's (no-op) actions serve every offset
                pred = one_step(model, c, batch.context_actions, batch.future_actions[:, 0], args.seed)
                g.append(gains(ball_positions(c[:, -2], n_balls), ball_positions(c[:, -1], n_balls), ball_positions(pred, n_balls),
                               direction[:, s], whole(s)))
                soft_in.append(c[:, -1])
                soft_out.append(pred)
            row["blur"][str(sigma)] = {**stats(np.concatenate(g)), "softness_context": round(softness(np.stack(soft_in), n_balls), 3),
                                       "softness_predicted": round(softness(np.stack(soft_out), n_balls), 3)}
        gen = ctx.generate(model, w).numpy().transpose(0, 1, 3, 4, 2)  # (N, H, H_px, W_px, 3)
        parsed = ball_positions(gen, n_balls)  # (N, H, n, 2)
        compounded = 1.0
        for s in range(3, w.horizon + 1):  # generated step s (1-based) from generated frames s-2 and s-1
            g = gains(parsed[:, s - 3], parsed[:, s - 2], parsed[:, s - 1], direction[:, s], whole(s))
            row["own"][str(s)] = {**stats(g), "softness": round(softness(gen[:, s - 1], n_balls), 3)}
            if g.size:
                compounded *= float(np.median(g))
        row["compounded"] = round(compounded, 3)
        result["rows"][run] = row
    common.report("soft_context", result, args)


if __name__ == "__main__":
    main()
