"""How much of a rollout's error comes from the steps where a recorded event happens (a blocked move), as JSON.

    python bench/diagnose/events.py DATA RUN [RUN ...] [--flag bumped] [--horizon 8] [--every 5]
    python bench/diagnose/events.py DATA RUN [RUN ...] --action 0      # the steps whose key was noop

A world's rare events are where a model trained for minutes is least sure: explorer's move into a wall
leaves the view where it was, and a model that has not learned when a move is blocked draws a blend of the
view moved and not moved (trees doubled), then carries the wrong camera on. The dataset's state records such an
event as a flag per frame (`--flag`, explorer's `bumped`: 1 on a frame whose move was blocked); `--action A`
flags instead the frames a discrete action A led into (explorer's 0, noop: does the model stop when no key is
pressed, or carry on the motion its context shows?). Over windows
of DATA's test split (a start every `--every` frames, K context frames from the first run, `--horizon` future
steps with the recorded actions), every RUN rolls out from the real context as the quality bench does, and
beside copy-last-frame on the same windows it reports:

- `step1`: the first generated frame's PSNR (a one-step prediction from real frames) on the windows whose first
  future frame has the flag and on those whose has not, and `error_share`: the share of the step's pooled
  squared error that the flagged windows hold (against `flagged_share`, their share of the windows);
- `by_step`: PSNR at each reported step over the windows with the flag on any of the first `--horizon` future
  frames (`with_event`) and over the rest (`without`), over all of them (`all`), and `all_if_event_windows_exact`:
  the same with the flagged windows' frames replaced by the real ones, the most that getting the events right
  could add at that step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import playworld
from playworld import metrics as M
from playworld.data.store import Dataset
from playworld.eval.api import EvalContext, Windows

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

STEPS = (1, 2, 4, 8, 16, 32, 64)


def psnr(gen: torch.Tensor, real: torch.Tensor) -> float:
    """Pooled PSNR of (N, C, H, W) frames, rounded; nan when there is no frame."""
    return round(float(M.pooled_psnr(gen[None], real[None], axis=1)[0]), 2) if len(gen) else float("nan")


def decompose(gen: torch.Tensor, real: torch.Tensor, flags: np.ndarray, steps: list[int]) -> dict:
    """gen, real (N, H, C, R, R) float, flags (N, H) bool: the event split of one predictor's rollouts."""
    first, any_ = torch.from_numpy(flags[:, 0]), torch.from_numpy(flags.any(axis=1))
    sq = ((gen[:, 0] - real[:, 0]) ** 2).sum(dim=(1, 2, 3))
    exact = torch.where(any_[:, None, None, None, None], real, gen)
    curve = {name: M.pooled_psnr(g[sel], real[sel], axis=0) if int(sel.sum()) else None
             for name, g, sel in (("with_event", gen, any_), ("without", gen, ~any_), ("all", gen, torch.ones_like(any_)),
                                  ("all_if_event_windows_exact", exact, torch.ones_like(any_)))}
    return {
        "step1": {"flagged": psnr(gen[first, 0], real[first, 0]), "unflagged": psnr(gen[~first, 0], real[~first, 0]),
                  "error_share": round(float(sq[first].sum() / sq.sum().clamp_min(1e-12)), 3)},
        "by_step": {name: None if c is None else {str(s): round(float(c[s - 1]), 2) for s in steps} for name, c in curve.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a dataset whose recorded state has the event flag, with a test split")
    ap.add_argument("runs", nargs="+", help="run folders (one context K for all)")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--flag", default="bumped", help="the state key that marks an event on a frame (explorer: bumped)")
    which.add_argument("--action", type=int, default=None,
                       help="flag instead the frames this discrete action led into (explorer: 0, noop)")
    ap.add_argument("--horizon", type=int, default=8, help="future steps per window")
    ap.add_argument("--every", type=int, default=5, help="frames between window starts in an episode")
    args = ap.parse_args()
    common.start(args)
    ds = Dataset(args.data)
    if args.action is not None and ds.action_space.kind != "discrete":
        raise SystemExit(f"{args.data} has {ds.action_space.kind} actions: --action splits by a discrete one; pass --flag")
    if args.action is None and args.flag not in ds.state_keys:
        raise SystemExit(f"{args.data} records no `{args.flag}` state (it has {ds.state_keys}): pass --flag with one "
                         "that marks an event per frame")
    models = {run: playworld.load(run) for run in args.runs}
    contexts = {m.spec.context for m in models.values()}
    if len(contexts) > 1:
        raise SystemExit(f"the runs have different contexts {sorted(contexts)}: measure them one at a time")
    K, H = contexts.pop(), args.horizon
    index = [(int(ep), t) for ep in ds.episode_ids("test") for t in range(K, ds.episode_length(int(ep)) - H + 1, args.every)]
    if not index:
        raise SystemExit(f"no test episode of {args.data} holds {K + H} frames")
    w = Windows(ds, index, K, H)
    batch = w.batch()
    real = batch.future_frames.float()
    def flagged(ep: int, t: int) -> np.ndarray:  # (H,) bool over the future frames t..t+H-1
        episode = ds.load_episode(ep)
        if args.action is not None:  # actions[t] led into frames[t]
            return np.asarray(episode.actions[t : t + H]).reshape(H) == args.action
        return np.asarray(episode.state[args.flag][t : t + H]).reshape(H, -1).any(axis=1)

    flags = np.stack([flagged(ep, t) for ep, t in index])
    steps = [s for s in STEPS if s <= H]
    result = {"data": args.data, "flag": args.flag if args.action is None else f"action={args.action}", "context": K, "horizon": H, "windows": len(w),
              "flagged_share": round(float(flags[:, 0].mean()), 3), "with_event_share": round(float(flags.any(axis=1).mean()), 3),
              "copy_last": decompose(batch.context_frames[:, -1:].float().expand_as(real), real, flags, steps)}
    out = {}
    for run, model in models.items():
        ctx = EvalContext(dataset=ds, spec=model.spec, split="test", episodes=len(w), horizon=H, seed=args.seed)
        out[run] = decompose(ctx.generate(model, w).float(), real, flags, steps)
    result["models"] = out
    common.report("events", result, args)


if __name__ == "__main__":
    main()
