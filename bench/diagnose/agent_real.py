"""Benchmark: a saved agent (`playworld dream` or the dream benches) against the random policy in the real world, as JSON.

    python bench/diagnose/agent_real.py AGENT [--episodes 30 --seed 10000]

Both play the same episode seeds (seed, seed + 1, ...; the dream benches evaluate from 10000) in the
world the agent's model was trained on, with the world options the agent saved. An agent on a world
model's latent state loads that model (its run must still be where it was trained).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playworld.agents.agent import load_actor, load_latent_model
from playworld.agents.dream import evaluate_real

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=10_000)])
    ap.add_argument("agent", type=Path, help="agent folder (config.json + weights)")
    ap.add_argument("--episodes", type=int, default=30, help="real episodes for the agent and for random")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode (default: the world's)")
    args = ap.parse_args()
    common.start(args)  # --seed: the first episode seed
    actor, spec, config = load_actor(args.agent)
    model = load_latent_model(config, args.agent) if actor.config.latent else None
    result = evaluate_real(spec, actor, config.get("world_options") or {}, episodes=args.episodes, seed=args.seed,
                           max_steps=args.max_steps, progress=False, model=model)
    common.report("agent_real", {"agent_folder": str(args.agent), "inputs": actor.config.inputs, "episodes": args.episodes,
                                 **result}, args)


if __name__ == "__main__":
    main()
