"""Benchmark: a policy trained only inside a world model collects explorer's coins in the real world.

    python bench/repro/dream_explorer.py --threads 1     # the full budget (about 27 CPU-minutes on 2 cores)
    python bench/repro/dream_explorer.py --tiny          # seconds: proves the pipeline end to end

The pipeline (bench/common.py's dream_pipeline, shared with bench/repro/dream_cartpole.py): collect a dataset, train a world model on it
(`--model`, default diffusion; preset small, a CPU-time budget), dream (train the actor-critic purely in the model, on its latent
state where it has one), then `--rounds - 1` rounds of Dreamer's loop (collect episodes with the
agent, resume the model's training on the grown dataset, continue the actor-critic in it), then play
the agent and the random policy for the same real episodes. Prints one JSON object:
settings, dataset size and rewards, training and dreaming steps, real returns, the ratio to
random, the target and whether it was met, and wall / CPU seconds per stage.

The coin task: explorer on a 64 x 64-cell map with 64 coins (default explorer spreads 128 coins over
256 x 256 cells, so a 200-step episode rarely sees one). Half the episodes are collected with a
random policy, half with the scripted coin seeker from eval/policy_rank.py, so the data holds
rewarded transitions for the reward to learn from; the agent itself learns only in the dream.

Why diffusion by default: the coins are 2 pixels at 32 px. An rssm's reward head learned that a coin
is near, not which move lands on it (bench/diagnose/reward_pickups.py's adjacent-coin check stayed at chance
for every rssm tried), so its dream taught no direction. A diffusion model keeps the coins in its
predicted frames, and the dream's pixel reward model (agents/reward.py, trained on the dataset's
(previous frame, frame) pairs and their difference) then tells the move onto a coin from the others.
Defaults: a 32-48-64 U-Net at 32 px, 14 CPU-minutes of training, 12 minutes of dreaming with 8-step imagination, one round.
The rssm settings of earlier sessions: `--model rssm --resolution 64 --rounds 3 --train-minutes 10
--dream-minutes 3 --horizon 15`.

With `--model rssm`, `--seeker-reach 2 --seeker-wander random` makes the seeker a random walk that goes only for coins
within 2 cells: the default seeker's approach (turn, then walk straight at a coin it saw far away)
lets a reward head foresee pickups from the actions alone, which the agent then copies in the dream.
Target: agent mean return >= 3x the random policy's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playworld.eval.policy_rank import ExplorerCoinPolicy
from playworld.worlds.explorer import Explorer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=2, seed=0, out="bench_out/dream_explorer")])
    # 30 evaluation episodes: coins per episode vary a lot with the map (random: 0 to 5), 10 are too noisy
    common.add_dream_arguments(ap, train_minutes=10.0, round_episodes=10, eval_episodes=30)
    ap.add_argument("--episodes", type=int, default=60, help="episodes collected (half random, half scripted)")
    ap.add_argument("--seeker-reach", type=int, default=None, help="the scripted seeker ignores coins farther than this "
                    "many cells (default: any coin in view)")
    ap.add_argument("--seeker-wander", default="straight", help="what the seeker does with no coin within reach: "
                    "'straight' (walk on, turning at random) or 'random' (random moves)")
    ap.add_argument("--seeker-adjacent", default="take", help="what the seeker does with a coin next to it: 'take' it "
                    "or 'random' (a random move, so only the frame and the action tell a pickup)")
    ap.add_argument("--unet", default="32,48,64", help="diffusion only: U-Net widths per level (the small preset's "
                    "64,96,128 is sized for 64 px; at 32 px the narrower one trains 2.4x the steps in the same "
                    "budget, 30.8 vs 28.7 dB validation PSNR after 14 CPU-minutes, and dreams twice as fast)")
    # The defaults meet the target on 4 of seeds 0-4 (4.3x random over the five; README): a diffusion model
    # (pixel space: it keeps the 2-pixel coins an rssm's latent loses) with a learned reward model, 8-step
    # imagination at 32 px, within 30 CPU-minutes
    ap.set_defaults(model="diffusion", resolution=32, rounds=1, train_minutes=14.0, dream_minutes=12.0, horizon=8)
    args = ap.parse_args()
    if args.model == "diffusion" and not any(s.startswith("model.channels=") for s in args.sets):
        args.sets = [f"model.channels={args.unet}", *args.sets]
    common.start(args)
    options = {"map_size": 64, "n_coins": 64}
    space = Explorer.action_space
    half = max(args.episodes // 2, 1) if not args.tiny else 2
    scripted = ExplorerCoinPolicy(space, seed=args.seed, reach=args.seeker_reach, wander=args.seeker_wander,
                                  adjacent=args.seeker_adjacent)
    # gamma 0.95: visible coins are a few steps away; a long discount makes returns mostly the unpredictable
    # coins of the far future, whose spread (the return scale) shrinks the advantage of heading for the near one
    budget = common.dream_budget(args, {"horizon": 15, "batch": 32, "gamma": 0.95}, 1, max_steps=30)
    world = common.DreamWorld("explorer", options, args.resolution, 30 if args.tiny else 200, args.out, args.seed)
    result = common.dream_pipeline(world, [("random", "random", half), ("scripted", scripted, half)],
                                   target={"ratio_to_random": 3.0}, **budget)
    common.report("dream_explorer", result | {
        "seeker": {"reach": args.seeker_reach, "wander": args.seeker_wander, "adjacent": args.seeker_adjacent},
        "sets": args.sets, "tiny": args.tiny}, args)


if __name__ == "__main__":
    main()
