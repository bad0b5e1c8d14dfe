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
from pathlib import Path

from dream_explorer import pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a few seconds per stage: checks the pipeline, not the target")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--episodes", type=int, default=300, help="random-policy episodes collected")
    ap.add_argument("--train-minutes", type=float, default=8.0, help="CPU minutes of rssm training on the random episodes")
    ap.add_argument("--dream-minutes", type=float, default=3.0, help="CPU minutes of the first dream")
    ap.add_argument("--rounds", type=int, default=3, help="Dreamer rounds: 1 = no agent episodes; each further round "
                    "collects with the agent, retrains the model and dreams again")
    ap.add_argument("--round-episodes", type=int, default=30, help="real episodes collected with the agent per round")
    ap.add_argument("--round-train-minutes", type=float, default=4.0, help="CPU minutes of model training per round")
    ap.add_argument("--round-dream-minutes", type=float, default=3.0, help="CPU minutes of dreaming per round")
    ap.add_argument("--inputs", default="auto", help="what the actor sees: auto, latent or pixels")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench_out/dream_cartpole"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    kw = dict(train_minutes=args.train_minutes, dream_minutes=args.dream_minutes, eval_episodes=args.eval_episodes,
              steps_per_episode=500, dream_config={"horizon": 15, "batch": 32, "gamma": 0.99, "inputs": args.inputs},
              rounds=args.rounds, round_episodes=args.round_episodes, round_train_minutes=args.round_train_minutes,
              round_dream_minutes=args.round_dream_minutes)
    episodes = args.episodes
    if args.tiny:
        episodes = 4
        kw = dict(train_minutes=1.0, dream_minutes=1.0, eval_episodes=2, steps_per_episode=500, train_steps=3,
                  dream_steps=3, dream_config={"horizon": 4, "batch": 4, "inputs": args.inputs}, rounds=2, round_episodes=2,
                  round_train_minutes=0.02, round_dream_minutes=0.02)
    report = pipeline("gym:CartPole-v1", {}, args.resolution, [("random", "random", episodes)], out=args.out,
                      target={"mean_return": 150.0}, seed=args.seed, **kw)
    report["tiny"] = args.tiny
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
