"""Benchmark: a CEM / MPPI planner inside a trained world model, scored in the real world, printed as JSON.

    python bench/diagnose/planner_real.py RUN [--episodes 5] [--population 128 --horizon 15 --iterations 3]

RUN is a trained run whose model can score returns (a reward head, e.g. rssm; or pass --data to
learn a reward model from the dataset), e.g. the `run` folder that bench/repro/dream_cartpole.py writes.
The planner replans at every real step (agents/planner.py); the random policy plays the same
episode seeds (10000 + i, as the dream benches evaluate). Prints the returns of both, their means,
and the planner's CPU seconds per real step.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from playworld.agents.agent import make_real_world, world_returns
from playworld.agents.planner import Planner
from playworld.runs.load import load_world_model
from playworld.worlds.base import parse_world_options
from playworld.worlds.policies import RandomPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("run", type=Path, help="trained run folder")
    ap.add_argument("--data", type=Path, default=None, help="dataset to learn rewards from (models without reward heads)")
    ap.add_argument("--method", default="cem", choices=["cem", "mppi"])
    ap.add_argument("--population", type=int, default=128)
    ap.add_argument("--horizon", type=int, default=15)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=None, help="cap on real steps per episode (default: the world's)")
    ap.add_argument("--world-option", action="append", default=[], metavar="KEY=VALUE",
                    help="option of the real world, e.g. map_size=64 (repeatable; JSON values where they parse)")
    args = ap.parse_args()
    common.start(args)
    options = parse_world_options(args.world_option)
    model = load_world_model(args.run)
    planner = Planner(model, args.method, horizon=args.horizon, population=args.population,
                      elites=max(args.population // 8, 1), iterations=args.iterations, dataset=args.data,
                      cache_dir=args.run / "agents" / "reward_model", seed=args.seed)
    world = make_real_world(model.spec, options)
    seed = 10_000 + args.seed
    c0 = time.process_time()
    planned = world_returns(world, planner, args.episodes, seed=seed, max_steps=args.max_steps)
    cpu = time.process_time() - c0
    rand = world_returns(world, RandomPolicy(model.spec.action_space, seed=seed), args.episodes, seed=seed,
                         max_steps=args.max_steps)
    world.close()
    common.report("planner_real", {
        "run": str(args.run), "world": model.spec.world, "world_options": options,
        "planner": {"method": args.method, "population": args.population, "horizon": args.horizon,
                    "iterations": args.iterations},
        "episodes": args.episodes, "episode_seeds": [seed, seed + args.episodes - 1],
        "planner_returns": planned, "planner_mean": float(np.mean(planned)),
        "random_returns": rand, "random_mean": float(np.mean(rand)),
        "planner_cpu_s_per_step": round(cpu / max(planner.calls, 1), 3), "planner_steps": planner.calls,
    }, args)


if __name__ == "__main__":
    main()
