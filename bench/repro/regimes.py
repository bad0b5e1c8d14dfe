"""Training regimes against drift, as JSON: `playworld experiment regimes` with its defaults.

    python bench/repro/regimes.py --minutes 10 --out runs/regimes      # the real measurement
    python bench/repro/regimes.py --minutes 0.2 --preset debug --episodes 8 --resolution 32 --out /tmp/regimes

Prints regimes.json's per-world summary (training steps, AUC, steps above threshold, the horizon and
the rollouts it was measured over, velocity error); the plot and the table are written next to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playworld.experiments import VARIANTS, WORLDS, regimes_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

SUMMARY = ("train_steps", "psnr_auc", "steps_above_threshold", "horizon", "rollouts", "velocity_error")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[common.options(threads=2, seed=0, out="runs/regimes",
                                                        out_help="folder for data, runs and regimes.json/.md/.png")])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per run (CPU minutes)")
    p.add_argument("--steps", type=int, default=None, help="also stop each run after this many steps")
    p.add_argument("--preset", default="small")
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--episode-steps", type=int, default=200)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--horizon", type=int, default=64)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--world", action="append", default=None, help=f"a world (repeatable; default: {', '.join(WORLDS)})")
    p.add_argument("--variant", action="append", default=None, help=f"a regime (repeatable; default: {', '.join(VARIANTS)})")
    args = p.parse_args()
    common.start(args)
    res = regimes_experiment(args.out, minutes=args.minutes, steps=args.steps, preset=args.preset,
                             worlds=tuple(args.world or WORLDS), variants=tuple(args.variant or VARIANTS),
                             episodes=args.episodes, episode_steps=args.episode_steps, resolution=args.resolution,
                             horizon=args.horizon, eval_episodes=args.eval_episodes, seed=args.seed, progress=False)
    summary = {world: {v: {k: r.get(k) for k in SUMMARY} for v, r in per.items()} for world, per in res["worlds"].items()}
    common.report("regimes", {"config": res["config"], "worlds": summary}, args)


if __name__ == "__main__":
    main()
