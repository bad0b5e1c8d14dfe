"""Benchmark: a policy trained only inside a world model collects explorer's coins in the real world.

    python bench/dream_explorer.py --threads 1     # the full budget (about 27 CPU-minutes on 2 cores)
    python bench/dream_explorer.py --tiny          # seconds: proves the pipeline end to end

The pipeline (shared with bench/dream_cartpole.py): collect a dataset, train a world model on it
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
is near, not which move lands on it (bench/reward_pickups.py's adjacent-coin check stayed at chance
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
import json
import shutil
import time
from pathlib import Path


def pipeline(
    world: str, world_options: dict, resolution: int, collect_with: list[tuple[str, object, int]], steps_per_episode: int,
    train_minutes: float, dream_minutes: float, eval_episodes: int, out: Path, target: dict, seed: int = 0,
    train_steps: int | None = None, dream_steps: int | None = None, dream_config: dict | None = None,
    max_steps: int | None = None, sets: list[str] | None = None, rounds: int = 1, reward_steps: int | None = None,
    round_episodes: int = 0,
    round_train_minutes: float = 0.0, round_dream_minutes: float = 0.0, family: str = "rssm",
) -> dict:
    """collect -> train a world model of `family` -> dream -> real-world evaluation; returns the JSON-able report.

    With rounds > 1, Dreamer's loop follows the first dream: each further round collects
    `round_episodes` real episodes with the current agent (sampling its actions), appends them to the
    dataset, resumes the rssm run for `round_train_minutes` on the grown dataset, and continues the
    same actor-critic in the retrained model for `round_dream_minutes`. The agent still learns only
    in imagination; the real episodes only teach the model the states the agent reaches."""
    import numpy as np
    import torch

    from playworld.agents.actor_critic import ActorCriticConfig
    from playworld.agents.dream import dream, evaluate_real
    from playworld.agents.agent import actor_policy, save_agent
    from playworld.data.collect import collect
    from playworld.data.store import Dataset
    from playworld.runs.load import load_world_model
    from playworld.runs.checkpoints import resolve_checkpoint
    from playworld.train.loop import train

    shutil.rmtree(out, ignore_errors=True)
    report: dict = {"world": world, "world_options": world_options, "resolution": resolution, "seed": seed, "family": family,
                    "target": target, "seconds": {}, "cpu_seconds": {}}

    def stage(name: str, fn):
        t0, c0 = time.monotonic(), time.process_time()
        value = fn()
        report["seconds"][name] = round(time.monotonic() - t0, 1)
        report["cpu_seconds"][name] = round(time.process_time() - c0, 1)
        return value

    def do_collect():
        for i, (name, policy, episodes) in enumerate(collect_with):
            collect(world, out / "data", episodes=episodes, policy=policy, seed=seed + i, resolution=resolution,
                    steps=steps_per_episode, world_options=world_options, progress=False)
        return Dataset(out / "data")

    data = stage("collect", do_collect)
    rewards = np.concatenate([data.load_episode(e).rewards for e in data.episode_ids()])
    report["dataset"] = {"episodes": len(data), "frames": data.num_frames, "rewarded_frames": int((rewards != 0).sum()),
                         "reward_sum": float(rewards.sum()), "collected_with": [(n, e) for n, _, e in collect_with]}

    # budgets count CPU time, so the figures hold on a shared machine ("within 30 CPU-minutes")
    sets = ["train.budget_clock=cpu", *(sets or [])]
    result = stage("train", lambda: train(out / "run", data=out / "data", model=family, preset="small", sets=sets,
                                          minutes=train_minutes, steps=train_steps, progress=False))
    report["train"] = {"steps": result.step, "val_psnr": result.val_psnr, "reason": result.reason}

    model = load_world_model(out / "run")
    config = ActorCriticConfig(**(dream_config or {}))
    reward_kw = {"reward_steps": reward_steps} if reward_steps else {}  # families without reward heads
    dreamt = stage("dream", lambda: dream(model, data, config, steps=dream_steps, minutes=dream_minutes, seed=seed,
                                          progress=False, cache_dir=out / "run" / "agents" / "reward_model",
                                          budget_clock="cpu", **reward_kw))
    hist = dreamt.history
    report["dream"] = {"steps": dreamt.steps, "config": dreamt.learner.config.to_dict(),
                       "imagined_return_first": hist[0]["imagined_return"] if hist else None,
                       "imagined_return_last": hist[-1]["imagined_return"] if hist else None}
    learner, report["rounds"] = dreamt.learner, []
    for r in range(1, rounds):
        policy = actor_policy(learner.actor, model.spec, seed=seed + 100 + r, model=model)
        before = len(data)

        def do_round_collect():
            collect(world, out / "data", episodes=round_episodes, policy=policy, seed=seed + 100 + r,
                    resolution=resolution, steps=steps_per_episode, world_options=world_options, progress=False)
            return Dataset(out / "data")

        data = stage(f"collect_{r}", do_round_collect)
        new = sorted(data.episode_ids())[before:]
        got = [float(np.sum(data.load_episode(e).rewards)) for e in new]
        trained = stage(f"train_{r}", lambda: train(out / "run", resume=True, sets=["train.budget_clock=cpu"],
                                                     minutes=round_train_minutes, progress=False))
        model = load_world_model(out / "run")
        dreamt = stage(f"dream_{r}", lambda: dream(model, data, config, minutes=round_dream_minutes, seed=seed + r,
                                                   progress=False, cache_dir=out / "run" / "agents" / "reward_model",
                                                   budget_clock="cpu", learner=learner, **reward_kw))
        report["rounds"].append({"round": r, "episodes_collected": len(new), "collected_mean_return": float(np.mean(got)),
                                 "train_step": trained.step, "dream_steps": dreamt.steps})

    save_agent(out / "agent", learner.actor, model.spec, {"world_options": world_options, "run": str((out / "run").resolve()),
                                                          "checkpoint": resolve_checkpoint(out / "run").name})

    ev = stage("evaluate", lambda: evaluate_real(model.spec, learner.actor, world_options, episodes=eval_episodes,
                                                 seed=10_000 + seed, max_steps=max_steps, progress=False, model=model))
    report["real"] = {"agent_mean": ev["agent"]["mean"], "agent_std": ev["agent"]["std"],
                      "random_mean": ev["random"]["mean"], "random_std": ev["random"]["std"],
                      "ratio_to_random": ev["ratio_to_random"], "episodes": eval_episodes}
    if "ratio_to_random" in target:
        report["met"] = ev["ratio_to_random"] is not None and ev["ratio_to_random"] >= target["ratio_to_random"]
    else:
        report["met"] = ev["agent"]["mean"] >= target["mean_return"]
    report["total_cpu_minutes"] = round(sum(report["cpu_seconds"].values()) / 60, 2)
    report["total_wall_minutes"] = round(sum(report["seconds"].values()) / 60, 2)
    report["torch_threads"] = torch.get_num_threads()
    return report


def add_budget_arguments(ap: argparse.ArgumentParser, train_minutes: float, round_episodes: int, out: str,
                         eval_episodes: int = 10) -> None:
    """The options both dream benches share: budgets (CPU minutes), Dreamer's rounds, actor inputs, evaluation."""
    ap.add_argument("--tiny", action="store_true", help="a few seconds per stage: checks the pipeline, not the target")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--train-minutes", type=float, default=train_minutes, help="CPU minutes of model training on the first episodes")
    ap.add_argument("--dream-minutes", type=float, default=3.0, help="CPU minutes of the first dream")
    ap.add_argument("--rounds", type=int, default=3, help="Dreamer rounds: 1 = no agent episodes; each further round "
                    "collects with the agent, retrains the model and dreams again")
    ap.add_argument("--round-episodes", type=int, default=round_episodes, help="real episodes collected with the agent per round")
    ap.add_argument("--round-train-minutes", type=float, default=4.0, help="CPU minutes of model training per round")
    ap.add_argument("--round-dream-minutes", type=float, default=3.0, help="CPU minutes of dreaming per round")
    ap.add_argument("--inputs", default="auto", help="what the actor sees: auto, latent or pixels")
    ap.add_argument("--eval-episodes", type=int, default=eval_episodes, help="real episodes for the agent and for random")
    ap.add_argument("--gamma", type=float, default=None, help="the actor-critic's discount (default: the bench's)")
    ap.add_argument("--horizon", type=int, default=None, help="imagined steps per start context (default: the bench's)")
    ap.add_argument("--model", default="rssm", help="world model family to train and dream in (rssm reads rewards "
                    "from its heads; other families from a reward model learned on the dataset)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra --set overrides for the model's run "
                    "(e.g. model.reward_scale=10)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(out))


def budget_kwargs(args: argparse.Namespace, steps_per_episode: int, dream_config: dict, tiny_round_episodes: int,
                  **tiny_extra) -> dict:
    """pipeline() keyword arguments from the shared options; with --tiny, a few seconds per stage."""
    if args.tiny:
        return dict(train_minutes=1.0, dream_minutes=1.0, eval_episodes=2, steps_per_episode=steps_per_episode,
                    train_steps=3, dream_steps=3, dream_config={"horizon": 4, "batch": 4, "inputs": args.inputs},
                    rounds=2, round_episodes=tiny_round_episodes, round_train_minutes=0.02, round_dream_minutes=0.02,
                    family=args.model, reward_steps=20, **tiny_extra)
    return dict(train_minutes=args.train_minutes, dream_minutes=args.dream_minutes, eval_episodes=args.eval_episodes,
                steps_per_episode=steps_per_episode,
                dream_config={**dream_config, "inputs": args.inputs, **({"gamma": args.gamma} if args.gamma else {}),
                              **({"horizon": args.horizon} if args.horizon else {})},
                rounds=args.rounds, round_episodes=args.round_episodes, round_train_minutes=args.round_train_minutes,
                round_dream_minutes=args.round_dream_minutes, sets=args.sets, family=args.model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # 30 evaluation episodes: coins per episode vary a lot with the map (random: 0 to 5), 10 are too noisy
    add_budget_arguments(ap, train_minutes=10.0, round_episodes=10, out="bench_out/dream_explorer", eval_episodes=30)
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

    import torch

    from playworld.eval.policy_rank import ExplorerCoinPolicy
    from playworld.worlds.explorer import Explorer

    torch.set_num_threads(args.threads)
    options = {"map_size": 64, "n_coins": 64}
    space = Explorer.action_space
    half = max(args.episodes // 2, 1) if not args.tiny else 2
    scripted = ExplorerCoinPolicy(space, seed=args.seed, reach=args.seeker_reach, wander=args.seeker_wander,
                                  adjacent=args.seeker_adjacent)
    # gamma 0.95: visible coins are a few steps away; a long discount makes returns mostly the unpredictable
    # coins of the far future, whose spread (the return scale) shrinks the advantage of heading for the near one
    kw = budget_kwargs(args, 30 if args.tiny else 200, {"horizon": 15, "batch": 32, "gamma": 0.95}, 1, max_steps=30)
    report = pipeline("explorer", options, args.resolution, [("random", "random", half), ("scripted", scripted, half)],
                      out=args.out, target={"ratio_to_random": 3.0}, seed=args.seed, **kw)
    report["seeker"] = {"reach": args.seeker_reach, "wander": args.seeker_wander, "adjacent": args.seeker_adjacent}
    report["sets"], report["tiny"] = args.sets, args.tiny
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
