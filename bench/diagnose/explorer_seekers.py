"""Reference: what the explorer coin task's 3x-random target asks of an agent. Prints JSON.

    python bench/diagnose/explorer_seekers.py [--episodes 30 --resolution 32]

Real returns (200-step episodes on the dream bench's coin task: 64 x 64 cells, 64 coins; the same
episode seeds as the dream benches' evaluation, 10000 on) of the random policy and of scripted
coin seekers that see only part of what the frame shows (eval/policy_rank.py's ExplorerCoinPolicy):
`reach` ignores coins farther than that many cells, `wander` is what it does with none within
reach (walk straight on, or random moves). Reach 0 never goes for a coin; reach 1 takes only the
coin next to it. The rows show how much of the seeking an agent needs to beat 3x random (straight
walking alone covers more new cells than a random walk, but not enough). The seekers are also the
collection policies the dream bench offers (--seeker-reach, --seeker-wander, --seeker-adjacent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from playworld.agents.agent import world_returns
from playworld.eval.policy_rank import ExplorerCoinPolicy
from playworld.worlds.explorer import Explorer
from playworld.worlds.policies import RandomPolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

EPISODE_STEPS = 200  # the dream benches' episode length


def seekers() -> dict[str, dict]:
    """name -> ExplorerCoinPolicy options: reach 0-3 with each wander, the default seeker, and one that
    leaves the last step onto a coin to chance."""
    rows = {f"reach{r}_{w}": {"reach": r, "wander": w} for w in ("straight", "random") for r in (0, 1, 2, 3)}
    rows["any_in_view_straight"] = {}  # the default seeker (the dream bench's default collection)
    rows["reach3_random_adjacent_random"] = {"reach": 3, "wander": "random", "adjacent": "random"}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=10_000)])
    ap.add_argument("--episodes", type=int, default=30, help="real episodes per policy")
    ap.add_argument("--resolution", type=int, default=32, help="frame size (the seekers find coins by colour in it)")
    args = ap.parse_args()
    common.start(args)  # --seed: the first episode seed
    world = Explorer(resolution=args.resolution, map_size=64, n_coins=64)
    space = Explorer.action_space
    policies = {"random": RandomPolicy(space, seed=0),
                **{n: ExplorerCoinPolicy(space, seed=0, **kw) for n, kw in seekers().items()}}
    rows = {}
    for name, policy in policies.items():
        returns = [world_returns(world, policy, 1, seed=args.seed + i, max_steps=EPISODE_STEPS)[0] for i in range(args.episodes)]
        rows[name] = {"mean": float(np.mean(returns)), "std": float(np.std(returns))}
    rand = rows["random"]["mean"]
    for row in rows.values():
        row["ratio_to_random"] = row["mean"] / rand if rand > 0 else None
    common.report("explorer_seekers", {"episodes": args.episodes, "resolution": args.resolution, "seed": args.seed,
                                       "policies": rows, "target_ratio": 3.0}, args)


if __name__ == "__main__":
    main()
