"""Which move a diffusion run's learned transport makes on real contexts, by action and on flagged frames, as JSON.

    python bench/diagnose/transport_moves.py DATA RUN [RUN ...] [--flag bumped] [--every 5] [--split test]

A global transport (`model.transport_global`) moves the whole newest frame by one displacement before the U-Net
draws the change; in play it takes the most likely one. Over windows of DATA's split (a start every `--every`
frames, K real context frames and the action into the next frame), every RUN's transport weights are read, and it
reports for each action (discrete spaces; one row `all` otherwise) and for the frames whose state has `--flag` set
(explorer's `bumped`: a move into an obstacle, where the view does not move):

- `stay`: the share of windows whose most likely displacement is 'no displacement';
- `top_weight`: quantiles 10 / 50 / 90 of the most likely displacement's weight (1: one move for sure; a spread of
  weights is a hedge, which the hard move still turns into one shift);
- `moved_right`: the share of windows whose most likely displacement moves the newest frame to the next one best
  among all displacements (the frame's own best whole-pixel shift, by MSE), beside `best_is_stay`, the share whose
  best shift is 'no displacement' (what a perfect transport's `stay` would be).

Runs without a global transport are refused: a per-block transport has no one move to report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import playworld
from playworld.data.store import Dataset
from playworld.eval.api import Windows
from playworld.models.diffusion.transport import most_likely

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def best_shifts(newest: torch.Tensor, nxt: torch.Tensor, transport) -> torch.Tensor:
    """(N,) index of the whole-pixel displacement that moves each newest frame (N, 3, H, W) in [-1, 1] closest (MSE) to
    the next one, ties going to 'no displacement' (the first minimum after it is moved to the front)."""
    n = (2 * transport.radius + 1) ** 2
    errors = []
    for d in range(n):
        one = torch.zeros(len(newest), n, transport.spec_blocks, transport.spec_blocks)
        one[:, d] = 1.0
        moved, _ = transport.move(newest, one)
        errors.append(((moved - nxt) ** 2).flatten(1).mean(1))
    errors = torch.stack(errors, 1)
    order = [n // 2] + [d for d in range(n) if d != n // 2]  # 'stay' first: argmin keeps the first of equals
    return torch.tensor(order)[errors[:, order].argmin(1)]


def summary(chosen: torch.Tensor, top: torch.Tensor, best: torch.Tensor, stay: int) -> dict:
    if not len(chosen):
        return {"windows": 0}
    q = torch.quantile(top, torch.tensor([0.1, 0.5, 0.9]))
    return {"windows": len(chosen), "stay": round(float((chosen == stay).float().mean()), 3),
            "best_is_stay": round(float((best == stay).float().mean()), 3),
            "moved_right": round(float((chosen == best).float().mean()), 3),
            "top_weight": [round(float(v), 3) for v in q]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a dataset with the split to read")
    ap.add_argument("runs", nargs="+", help="diffusion run folders with a global transport")
    ap.add_argument("--flag", default="bumped", help="a state key marking frames to report apart (skipped if absent)")
    ap.add_argument("--every", type=int, default=5, help="frames between window starts in an episode")
    ap.add_argument("--split", default="test", help="the dataset split to read")
    args = ap.parse_args()
    common.start(args)
    ds = Dataset(args.data)
    result = {"data": args.data, "split": args.split, "runs": {}}
    for run in args.runs:
        model = playworld.load(run)
        transport = getattr(getattr(model, "net", None), "transport", None)
        if transport is None or not transport.global_:
            raise SystemExit(f"{run} has no global transport (model.transport_global): nothing to report")
        K = model.spec.context
        index = [(int(ep), t) for ep in ds.episode_ids(args.split) for t in range(K, ds.episode_length(int(ep)), args.every)]
        if not index:
            raise SystemExit(f"no {args.split} episode of {args.data} holds {K + 1} frames")
        batch = Windows(ds, index, K, 1).batch()
        state = model.reset(batch.context_frames, batch.context_actions, seed=args.seed)
        action = batch.future_actions[:, 0].to(state.actions.device, state.actions.dtype)
        with torch.no_grad():
            weights = transport.weights(state.frames, torch.cat([state.actions, action[:, None]], 1))
            newest = state.frames[:, -1]
            nxt = batch.future_frames[:, 0].float() / 127.5 - 1
            best = best_shifts(newest, nxt, transport)
        chosen = most_likely(weights)[:, :, 0, 0].argmax(1)
        top = weights[:, :, 0, 0].max(1).values
        stay = weights.shape[1] // 2
        rows = {"all": summary(chosen, top, best, stay)}
        if ds.action_space.kind == "discrete":
            acts = batch.future_actions[:, 0].long()
            names = ds.action_space.names or tuple(str(a) for a in range(ds.action_space.n))
            for a in range(ds.action_space.n):
                sel = acts == a
                rows[f"action {names[a]}"] = summary(chosen[sel], top[sel], best[sel], stay)
        if args.flag in ds.state_keys:
            flags = torch.from_numpy(np.array([bool(np.asarray(ds.load_episode(ep).state[args.flag][t]).any()) for ep, t in index]))
            rows[f"{args.flag}"] = summary(chosen[flags], top[flags], best[flags], stay)
            rows[f"not {args.flag}"] = summary(chosen[~flags], top[~flags], best[~flags], stay)
        result["runs"][run] = {"context": K, "rows": rows}
    common.report("transport_moves", result, args)


if __name__ == "__main__":
    main()
