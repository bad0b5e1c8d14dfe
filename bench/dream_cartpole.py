"""Benchmark: CartPole from pixels, balanced by a policy trained only inside an rssm world model.

    python bench/dream_cartpole.py --threads 1     # the full budget (about 26 CPU-minutes)
    python bench/dream_cartpole.py --tiny          # seconds: proves the pipeline end to end

gym:CartPole-v1 rendered at 64 x 64; 300 random-policy episodes (about 22 steps each) start the
dataset; the rssm family learns frames, rewards (1 per step) and termination from them; the actor
reads the model's latent state (`--inputs auto`). Then Dreamer's loop (`--rounds`): collect 30
episodes with the agent, retrain the model on the grown dataset, dream again, so the model learns
the balanced states random play never reaches. Pipeline and JSON as in bench/dream_explorer.py.
Target: mean real return >= 150 (random is about 22). Needs gymnasium's classic-control extra (pygame).
"""

from __future__ import annotations

import argparse
import json

from dream_explorer import add_budget_arguments, budget_kwargs, pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_budget_arguments(ap, train_minutes=8.0, round_episodes=30, out="bench_out/dream_cartpole")
    ap.add_argument("--episodes", type=int, default=300, help="random-policy episodes collected")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    kw = budget_kwargs(args, 500, {"horizon": 15, "batch": 32, "gamma": 0.99}, 2)
    episodes = 4 if args.tiny else args.episodes
    report = pipeline("gym:CartPole-v1", {}, args.resolution, [("random", "random", episodes)], out=args.out,
                      target={"mean_return": 150.0}, seed=args.seed, **kw)
    report["tiny"] = args.tiny
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
