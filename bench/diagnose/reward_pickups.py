"""Diagnosis: does a world model's reward head see the rewards of each part of its dataset? Prints JSON.

    python bench/diagnose/reward_pickups.py RUN DATA [--horizon 15 --windows 3]

For a model with a reward head (rssm), per collection in the dataset's history (e.g. the random and
the scripted episodes the dream benches collect, then each round's agent episodes): windows of K
real frames are filtered by `model.reset`, then the next `horizon` steps follow the recorded actions
twice, filtered frame by frame (`model.observe`, the posterior) and imagined without frames
(`model.advance`, the prior: what a dream sees). Reported for each: the mean predicted reward at
steps where the real reward came and elsewhere, and the correlation of predicted with real reward
summed over the horizon. A head that has learned the reward event stands out at rewarded steps in
every collection; one that has learned a shortcut (say, a scripted policy's approach to a coin)
stands out only where the shortcut holds, and an agent trained in its dream exploits it.

On explorer data it also reports `coins_drawn`: the fraction of the real frames' coin pixels that the
decoded filtered / imagined states draw in the coin colour (within L1 90 of it): a model that does not
draw the coins cannot tell a pickup from a step onto bare ground; and `adjacent_coin` (`--adjacent-episodes`
real episodes of random moves in the dataset's explorer, each frame filtered into the model's state):
at every step where some move lands on a coin, whether the move with the highest predicted one-step
reward (`model.advance` then the reward head) is one of them, against the chance of a random move
being one. It is the least an agent needs from the model: to see the coin next to it.

For a family without reward heads (diffusion, genie), or with `--reward-model`, only the adjacent-coin
check runs, with the reward model a dream would learn from DATA (agents/reward.py, cached in
RUN/agents/reward_model): once on the frames the world model predicts for each move (from the last K
real frames) and once on the world's real next frames (the reward model alone). It also reports the
mean predicted reward of the coin move, the other moves and staying put: a dream pays these, so a
reward that stays high beside a coin teaches an agent to wait there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from playworld.agents.reward import has_reward_head, reward_model_for
from playworld.data.store import Dataset
from playworld.models.interface import LatentState
from playworld.runs.load import load_world_model
from playworld.worlds.explorer import MOVES, Explorer, coin_pixels

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

MOVE_ACTIONS = torch.arange(0, 5)  # noop, then the four moves


def _stats(pred: np.ndarray, real: np.ndarray) -> dict:
    """pred, real (windows, horizon) -> mean prediction at rewarded / other steps, correlation of the sums."""
    hit = real != 0
    sums = pred.sum(1), real.sum(1)
    corr = float(np.corrcoef(*sums)[0, 1]) if np.std(sums[0]) > 0 and np.std(sums[1]) > 0 else None
    return {"mean_at_reward": float(pred[hit].mean()) if hit.any() else None,
            "mean_elsewhere": float(pred[~hit].mean()) if (~hit).any() else None, "corr_of_sums": corr}


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)  # (3, R, R) uint8


def _real_next_frames(world: Explorer) -> torch.Tensor:
    """The world's real next frame for each of the 5 actions (5, 3, R, R), the world left as it was."""
    saved, nexts = world.state(), []
    for a in range(5):
        world.restore(saved)
        nexts.append(_to_tensor(world.step(np.asarray(a)).frame))
    world.restore(saved)
    return torch.stack(nexts)


def _move_scores(model, reward_fn, real_frames: bool, world: Explorer, s, context: list, acts: list, seed: int) -> list[float]:
    """The predicted one-step reward of each of the 5 actions: through the reward heads (`advance` from the
    filtered state `s`), or through `reward_fn` on the frame each action leads to (the model's or the world's)."""
    if reward_fn is None:
        return [float(model.predict_reward(model.advance(s, torch.tensor([a])))) for a in range(5)]
    prev = context[-1][None].repeat(5, 1, 1, 1)
    if real_frames:
        ms, after = None, _real_next_frames(world)
    else:
        ms = model.reset(torch.stack(context)[None].repeat(5, 1, 1, 1, 1), torch.tensor(acts)[None].repeat(5, 1), seed=seed)
        ms, after = model.step(ms, MOVE_ACTIONS)
    return reward_fn(ms, prev, after)[0].tolist()


def adjacent_coin(model, world_options: dict, episodes: int, seed: int, steps: int = 200, reward_fn=None,
                  real_frames: bool = False) -> dict:
    """Random-move explorer episodes: does the highest predicted one-step reward pick a move onto a coin
    when there is one? Returns the hit rate, the chance rate, the counts and the mean predicted reward
    of the coin move, of the other moves and of staying put (noop).

    A model with reward heads and `observe` (rssm) filters every real frame into its state and scores
    each move with `advance` then the head. Otherwise `reward_fn(state, prev, frame)` (the learned
    reward model) scores the frame each move leads to: the model's own (`step` from the last K real
    frames), or with `real_frames` the world's real next frame (the reward model alone)."""
    world = Explorer(resolution=model.spec.resolution, **world_options)
    rng, k, heads = np.random.default_rng(seed), model.spec.context, reward_fn is None
    steps_with_coin, hits, chance, pred = 0, 0, 0.0, {"coin_move": [], "other_move": [], "noop": []}
    for e in range(episodes):
        frame, state = world.reset(seed=seed + e)
        s = model.reset(_to_tensor(frame)[None, None], torch.zeros(1, 1, dtype=torch.long), seed=seed + e) if heads else None
        context, acts = [_to_tensor(frame)] * k, [0] * k  # the last K real frames and the actions into them
        for _ in range(steps):
            targets = state["agent"] + MOVES[1:]  # (4, 2) the cell each move leads to
            coin = (targets[:, None] == state["coins"][None]).all(-1).any(-1)  # (4,) the move lands on a coin
            if coin.any():
                scores = _move_scores(model, reward_fn, real_frames, world, s, context, acts, seed + e)
                best = int(np.argmax(scores[1:]))
                steps_with_coin, hits, chance = steps_with_coin + 1, hits + int(coin[best]), chance + coin.mean()
                pred["noop"].append(scores[0])
                for j in range(4):
                    pred["coin_move" if coin[j] else "other_move"].append(scores[1 + j])
            a = int(rng.integers(1, 5))
            r = world.step(np.asarray(a))
            frame, state = r.frame, r.state
            context, acts = context[1:] + [_to_tensor(frame)], acts[1:] + [a]
            if heads:
                s = model.observe(s, _to_tensor(frame)[None], torch.tensor([a]))
    return {"episodes": episodes, "steps_with_adjacent_coin": steps_with_coin,
            "best_move_takes_coin": hits / steps_with_coin if steps_with_coin else None,
            "chance": float(chance / steps_with_coin) if steps_with_coin else None,
            # calibration: the reward a dream would pay for each choice (real: 1 for the coin move, 0 otherwise)
            "mean_predicted": {k: float(np.mean(v)) if v else None for k, v in pred.items()}}


def reward_model_report(model, ds: Dataset, args: argparse.Namespace) -> dict:
    """The adjacent-coin check through the reward model a dream would learn from DATA, on the model's
    predicted frames and on the world's real ones."""
    steps = {"steps": args.reward_steps} if args.reward_steps else {}
    rm = reward_model_for(ds, cache_dir=args.run / "agents" / "reward_model", seed=args.seed, **steps)
    reward_fn = lambda state, prev, frame: rm(prev, frame)
    options, seed = ds.manifest.get("world_options") or {}, 10_000 + args.seed
    return {"run": str(args.run), "reward": "learned reward model (agents/reward.py)",
            "adjacent_coin": adjacent_coin(model, options, args.adjacent_episodes, seed, reward_fn=reward_fn),
            "adjacent_coin_real_frames": adjacent_coin(model, options, args.adjacent_episodes, seed, reward_fn=reward_fn,
                                                       real_frames=True)}


def collection_row(model, ds: Dataset, episodes: list[int], explorer: bool, horizon: int, windows: int,
                   rng: np.random.Generator, seed: int) -> dict | None:
    """One collection's windows: the head's reward filtered (posterior) and imagined (prior) against the
    real reward, and on explorer the share of the real coin pixels the decoded states draw."""
    k = model.spec.context
    post, imag, real = [], [], []
    drawn = {"filtered": [0, 0], "imagined": [0, 0]}  # coin pixels drawn, coin pixels in the real frames
    for e in episodes:
        ep = ds.load_episode(e)
        if len(ep.rewards) < k + horizon:
            continue
        frames = torch.from_numpy(np.asarray(ep.frames).transpose(0, 3, 1, 2).copy())  # (T, 3, R, R) uint8
        actions = torch.from_numpy(np.asarray(ep.actions))
        for s in rng.integers(0, len(ep.rewards) - k - horizon + 1, windows):
            filtered = imagined = model.reset(frames[None, s : s + k], actions[None, s : s + k], seed=seed)
            p, i = [], []
            for t in range(s + k, s + k + horizon):
                filtered = model.observe(filtered, frames[None, t], actions[None, t])
                imagined = model.advance(imagined, actions[None, t])
                p.append(float(model.predict_reward(filtered)))
                i.append(float(model.predict_reward(imagined)))
                if explorer:
                    coins = coin_pixels(np.asarray(ep.frames[t]))
                    for name, state in (("filtered", filtered), ("imagined", imagined)):
                        decoded = model.decode(state)[0].permute(1, 2, 0).cpu().numpy()
                        drawn[name][0] += int((coin_pixels(decoded) & coins).sum())
                        drawn[name][1] += int(coins.sum())
            post.append(p), imag.append(i), real.append(np.asarray(ep.rewards[s + k : s + k + horizon], np.float64))
    if not real:
        return None
    real_a = np.array(real)
    row = {"windows": len(real), "real_reward_per_window": float(real_a.sum(1).mean()),
           "filtered": _stats(np.array(post), real_a), "imagined": _stats(np.array(imag), real_a)}
    if explorer:
        row["coins_drawn"] = {n: d / c if c else None for n, (d, c) in drawn.items()}
    return row


def reward_head_report(model, ds: Dataset, explorer: bool, args: argparse.Namespace) -> dict:
    """Per collection in the dataset's history: collection_row; on explorer, the adjacent-coin check."""
    rng, ids = np.random.default_rng(args.seed), sorted(ds.episode_ids())
    history = [c for c in ds.manifest.get("history", []) if "first_episode" in c] or [{"policy": "all", "first_episode": 0}]
    starts = [c["first_episode"] for c in history] + [len(ids)]
    report = {"run": str(args.run), "horizon": args.horizon, "collections": []}
    for c, first, end in zip(history, starts, starts[1:]):
        row = collection_row(model, ds, ids[first:end], explorer, args.horizon, args.windows, rng, args.seed)
        if row is not None:
            report["collections"].append({"policy": c.get("policy"), "seed": c.get("seed"), "episodes": [first, end - 1], **row})
    if explorer and args.adjacent_episodes > 0:
        report["adjacent_coin"] = adjacent_coin(model, ds.manifest.get("world_options") or {}, args.adjacent_episodes,
                                                seed=10_000 + args.seed)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("run", type=Path, help="trained run folder (a model with a reward head)")
    ap.add_argument("data", type=Path, help="the dataset it was trained on")
    ap.add_argument("--horizon", type=int, default=15, help="steps followed after each window's context")
    ap.add_argument("--windows", type=int, default=3, help="windows per episode")
    ap.add_argument("--adjacent-episodes", type=int, default=30, help="explorer only: real random-move episodes "
                    "for the adjacent-coin check (0 skips it)")
    ap.add_argument("--reward-model", action="store_true", help="explorer: score moves with the reward model learned "
                    "from DATA (cached in RUN/agents/reward_model), as a dream in a family without reward heads does; "
                    "implied for such a family")
    ap.add_argument("--reward-steps", type=int, default=None, help="training steps of that reward model (default: "
                    "the dream's); a cached one trained with as many steps is reused")
    args = ap.parse_args()
    common.start(args)
    model, ds = load_world_model(args.run), Dataset(args.data)
    explorer = ds.manifest.get("world") == "explorer"
    if args.reward_model or not has_reward_head(model):
        if not explorer:
            raise SystemExit(f"{args.run}: the model has no reward head to diagnose (an rssm run has one); "
                             "--reward-model checks a learned reward model on explorer data only")
        common.report("reward_pickups", reward_model_report(model, ds, args), args)
        return
    if not isinstance(model, LatentState):
        raise SystemExit(f"{args.run}: the model has reward heads but no observe() to filter real frames with")
    common.report("reward_pickups", reward_head_report(model, ds, explorer, args), args)


if __name__ == "__main__":
    main()
