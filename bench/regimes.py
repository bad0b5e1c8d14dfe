"""Training regimes against drift, as JSON: `playworld experiment regimes` with its defaults.

    .venv/bin/python bench/regimes.py --minutes 10 --out runs/regimes      # the real measurement
    .venv/bin/python bench/regimes.py --minutes 0.2 --preset debug --episodes 8 --resolution 32 --out /tmp/regimes

Prints regimes.json's per-world summary (AUC, steps above threshold, velocity error); the plot and
the table are written next to it.
"""

from __future__ import annotations

import argparse
import json

import torch

from playworld.experiments import VARIANTS, WORLDS, regimes_experiment

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/regimes")
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--preset", default="small")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--episode-steps", type=int, default=200)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res = regimes_experiment(args.out, minutes=args.minutes, steps=args.steps, preset=args.preset, worlds=WORLDS,
                             variants=tuple(VARIANTS), episodes=args.episodes, episode_steps=args.episode_steps,
                             resolution=args.resolution, horizon=args.horizon, eval_episodes=args.eval_episodes)
    summary = {world: {v: {k: r.get(k) for k in ("train_steps", "psnr_auc", "steps_above_threshold", "velocity_error")}
                       for v, r in per.items()} for world, per in res["worlds"].items()}
    print(json.dumps(summary, indent=2))
