"""Benchmark: CartPole from pixels, balanced by a policy trained only inside an rssm world model.

    python bench/repro/dream_cartpole.py --threads 1     # the full budget (about 26 CPU-minutes)
    python bench/repro/dream_cartpole.py --tiny          # seconds: proves the pipeline end to end

gym:CartPole-v1 rendered at 64 x 64; 300 random-policy episodes (about 22 steps each) start the
dataset; the rssm family learns frames, rewards (1 per step) and termination from them; the actor
reads the model's latent state (`--inputs auto`). Then Dreamer's loop (`--rounds`): collect 30
episodes with the agent, retrain the model on the grown dataset, dream again, so the model learns
the balanced states random play never reaches. Pipeline and JSON as in bench/repro/dream_explorer.py
(bench/common.py's dream_pipeline).
Target: mean real return >= 150 (random is about 22). Needs gymnasium's classic-control extra (pygame).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=2, seed=0, out="bench_out/dream_cartpole")])
    common.add_dream_arguments(ap, train_minutes=8.0, round_episodes=30)
    ap.add_argument("--episodes", type=int, default=300, help="random-policy episodes collected")
    args = ap.parse_args()
    common.start(args)
    budget = common.dream_budget(args, {"horizon": 15, "batch": 32, "gamma": 0.99}, 2)
    world = common.DreamWorld("gym:CartPole-v1", {}, args.resolution, 500, args.out, args.seed)
    episodes = 4 if args.tiny else args.episodes
    result = common.dream_pipeline(world, [("random", "random", episodes)], target={"mean_return": 150.0}, **budget)
    common.report("dream_cartpole", result | {"tiny": args.tiny}, args)


if __name__ == "__main__":
    main()
