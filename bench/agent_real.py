"""Benchmark: a saved agent (`playworld dream` or the dream benches) against the random policy in the real world, as JSON.

    python bench/agent_real.py AGENT [--episodes 30 --seed 10000]

Both play the same episode seeds (seed, seed + 1, ...; the dream benches evaluate from 10000) in the
world the agent's model was trained on, with the world options the agent saved. An agent on a world
model's latent state loads that model (its run must still be where it was trained).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("agent", type=Path, help="agent folder (config.json + weights)")
    ap.add_argument("--episodes", type=int, default=30, help="real episodes for the agent and for random")
    ap.add_argument("--seed", type=int, default=10_000, help="first episode seed")
    ap.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode (default: the world's)")
    args = ap.parse_args()

    from playworld.agents.dream import evaluate_real
    from playworld.agents.agent import load_actor, load_latent_model

    actor, spec, config = load_actor(args.agent)
    model = load_latent_model(config, args.agent) if actor.config.latent else None
    report = evaluate_real(spec, actor, config.get("world_options") or {}, episodes=args.episodes, seed=args.seed,
                           max_steps=args.max_steps, progress=False, model=model)
    print(json.dumps({"agent_folder": str(args.agent), "inputs": actor.config.inputs, **report}, indent=1))


if __name__ == "__main__":
    main()
