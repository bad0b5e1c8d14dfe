"""Diagnosis: does a world model's reward head see the rewards of each part of its dataset? Prints JSON.

    python bench/reward_pickups.py RUN DATA [--horizon 15 --windows 3]

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
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _stats(pred: np.ndarray, real: np.ndarray) -> dict:
    """pred, real (windows, horizon) -> mean prediction at rewarded / other steps, correlation of the sums."""
    hit = real != 0
    sums = pred.sum(1), real.sum(1)
    corr = float(np.corrcoef(*sums)[0, 1]) if np.std(sums[0]) > 0 and np.std(sums[1]) > 0 else None
    return {"mean_at_reward": float(pred[hit].mean()) if hit.any() else None,
            "mean_elsewhere": float(pred[~hit].mean()) if (~hit).any() else None, "corr_of_sums": corr}


def adjacent_coin(model, world_options: dict, episodes: int, seed: int, steps: int = 200) -> dict:
    """Random-move explorer episodes filtered frame by frame: does the highest predicted one-step reward
    pick a move onto a coin when there is one? Returns the hit rate, the chance rate and the counts."""
    import torch

    from playworld.worlds.explorer import MOVES, Explorer

    world = Explorer(resolution=model.spec.resolution, **world_options)
    rng = np.random.default_rng(seed)
    steps_with_coin, hits, chance = 0, 0, 0.0
    for e in range(episodes):
        frame, state = world.reset(seed=seed + e)
        s = model.reset(torch.from_numpy(frame).permute(2, 0, 1)[None, None], torch.zeros(1, 1, dtype=torch.long), seed=seed + e)
        for _ in range(steps):
            targets = state["agent"] + MOVES[1:]  # (4, 2) the cell each move leads to
            coin = (targets[:, None] == state["coins"][None]).all(-1).any(-1)  # (4,) the move lands on a coin
            if coin.any():
                best = int(np.argmax([float(model.predict_reward(model.advance(s, torch.tensor([a])))) for a in range(1, 5)]))
                steps_with_coin, hits, chance = steps_with_coin + 1, hits + int(coin[best]), chance + coin.mean()
            a = int(rng.integers(1, 5))
            r = world.step(np.asarray(a))
            frame, state = r.frame, r.state
            s = model.observe(s, torch.from_numpy(frame).permute(2, 0, 1)[None], torch.tensor([a]))
    return {"episodes": episodes, "steps_with_adjacent_coin": steps_with_coin,
            "best_move_takes_coin": hits / steps_with_coin if steps_with_coin else None,
            "chance": float(chance / steps_with_coin) if steps_with_coin else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="trained run folder (a model with a reward head)")
    ap.add_argument("data", type=Path, help="the dataset it was trained on")
    ap.add_argument("--horizon", type=int, default=15, help="steps followed after each window's context")
    ap.add_argument("--windows", type=int, default=3, help="windows per episode")
    ap.add_argument("--adjacent-episodes", type=int, default=30, help="explorer only: real random-move episodes "
                    "for the adjacent-coin check (0 skips it)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from playworld.agents.reward import has_reward_head
    from playworld.data.store import Dataset
    from playworld.train.checkpoint import load_world_model
    from playworld.worlds.explorer import coin_pixels

    torch.set_num_threads(args.threads)
    model, ds = load_world_model(args.run), Dataset(args.data)
    if not has_reward_head(model) or not callable(getattr(model, "observe", None)):
        raise SystemExit(f"{args.run}: the model has no reward head to diagnose (an rssm run has one)")
    k, h, rng = model.spec.context, args.horizon, np.random.default_rng(args.seed)
    ids = sorted(ds.episode_ids())
    history = [c for c in ds.manifest.get("history", []) if "first_episode" in c] or [{"policy": "all", "first_episode": 0}]
    starts = [c["first_episode"] for c in history] + [len(ids)]
    report = {"run": str(args.run), "horizon": h, "collections": []}
    explorer = ds.manifest.get("world") == "explorer"
    for c, first, end in zip(history, starts, starts[1:]):
        post, imag, real = [], [], []
        drawn = {"filtered": [0, 0], "imagined": [0, 0]}  # coin pixels drawn, coin pixels in the real frames
        for e in ids[first:end]:
            ep = ds.load_episode(e)
            if len(ep.rewards) < k + h:
                continue
            frames = torch.from_numpy(np.asarray(ep.frames).transpose(0, 3, 1, 2).copy())  # (T, 3, R, R) uint8
            actions = torch.from_numpy(np.asarray(ep.actions))
            for s in rng.integers(0, len(ep.rewards) - k - h + 1, args.windows):
                filtered = imagined = model.reset(frames[None, s : s + k], actions[None, s : s + k], seed=args.seed)
                p, i = [], []
                for t in range(s + k, s + k + h):
                    filtered = model.observe(filtered, frames[None, t], actions[None, t])
                    imagined = model.advance(imagined, actions[None, t])
                    p.append(float(model.predict_reward(filtered)))
                    i.append(float(model.predict_reward(imagined)))
                    if explorer:
                        coins = coin_pixels(np.asarray(ep.frames[t]))
                        n_coins = int(coins.sum())
                        for name, state in (("filtered", filtered), ("imagined", imagined)):
                            decoded = model.decode(state)[0].permute(1, 2, 0).cpu().numpy()
                            drawn[name][0] += int((coin_pixels(decoded) & coins).sum())
                            drawn[name][1] += n_coins
                post.append(p), imag.append(i), real.append(np.asarray(ep.rewards[s + k : s + k + h], np.float64))
        if not real:
            continue
        real_a = np.array(real)
        report["collections"].append({
            "policy": c.get("policy"), "seed": c.get("seed"), "episodes": [first, end - 1], "windows": len(real),
            "real_reward_per_window": float(real_a.sum(1).mean()),
            "filtered": _stats(np.array(post), real_a), "imagined": _stats(np.array(imag), real_a)})
        if explorer:
            report["collections"][-1]["coins_drawn"] = {n: d / c if c else None for n, (d, c) in drawn.items()}
    if explorer and args.adjacent_episodes > 0:
        report["adjacent_coin"] = adjacent_coin(model, ds.manifest.get("world_options") or {}, args.adjacent_episodes,
                                                seed=10_000 + args.seed)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
