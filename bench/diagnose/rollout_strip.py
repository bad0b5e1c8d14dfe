"""Real frames of test episodes beside runs' rollouts on the recorded actions, as one PNG, and each row's PSNR as JSON.

    python bench/diagnose/rollout_strip.py --data DATA --out strip.png RUN[:STEPS] [RUN[:STEPS] ...] [--at 1,4,8,16,32,64]

For each of the first --episodes test episodes: a row of its real frames at the chosen steps after the
K-frame context, then one row per run (played from the same context with the recorded actions, seed 0,
with STEPS denoising steps if given, else as trained), at the same steps. What a row of numbers cannot
show (walls torn, trees cleaned away, a trail behind a ball, a grid over the ground) shows here; the JSON
gives each row's PSNR against the real frames at every step shown, so the picture has its figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import playworld
from playworld.data.store import Dataset
from playworld.metrics import psnr
from playworld.models.interface import TunableSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def load(spec: str):
    """RUN or RUN:STEPS -> (label, WorldModel), the sampler set to STEPS when given."""
    run, _, steps = spec.rpartition(":") if ":" in spec and spec.rsplit(":", 1)[1].isdigit() else (spec, "", "")
    model = playworld.load(run)
    if steps:
        if not isinstance(model, TunableSampler):
            raise SystemExit(f"{run} has no tunable sampler: drop ':{steps}'")
        model.set_sampling_steps(int(steps))
    return spec, model


def rollout(model, frames: np.ndarray, actions: np.ndarray, horizon: int) -> np.ndarray:
    """(horizon, H, W, 3) uint8: the model played from the episode's first K frames with its recorded actions."""
    k = model.spec.context
    state = model.reset(torch.as_tensor(frames[:k]).permute(0, 3, 1, 2)[None], torch.as_tensor(actions[:k])[None], seed=0)
    out = []
    for t in range(k, k + horizon):
        state, frame = model.step(state, torch.as_tensor(actions[t : t + 1]))
        out.append(frame[0].permute(1, 2, 0).numpy())
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=2)])
    ap.add_argument("runs", nargs="+", help="run folders, each optionally :STEPS (denoising steps to play with)")
    ap.add_argument("--data", required=True, help="the dataset whose test episodes are played")
    ap.add_argument("--out", required=True, help="the PNG to write")
    ap.add_argument("--at", default="1,4,8,16,32,64", help="steps after the context to show")
    ap.add_argument("--episodes", type=int, default=2, help="test episodes, one block of rows each")
    ap.add_argument("--scale", type=int, default=2, help="pixel scale of the PNG")
    args = ap.parse_args()
    common.start(args)
    at = [int(a) for a in args.at.split(",")]
    models = [load(r) for r in args.runs]
    data = Dataset(args.data)
    k = max(m.spec.context for _, m in models)
    episodes = [e for e in data.episode_ids("test") if data.episode_length(e) >= k + max(at)][: args.episodes]
    if not episodes:
        raise SystemExit(f"{args.data} has no test episode of {k + max(at)} frames (K + the last step shown)")
    rows, table = [], []
    for e in episodes:
        ep = data.load_episode(e)
        frames, actions = np.asarray(ep.frames[:]), np.asarray(ep.actions)
        real = frames[k : k + max(at)]
        rows.append(np.concatenate([real[t - 1] for t in at], axis=1))
        for label, model in models:
            own = model.spec.context  # each model from its own K newest frames before the same step
            gen = rollout(model, frames[k - own :], actions[k - own :], max(at))
            rows.append(np.concatenate([gen[t - 1] for t in at], axis=1))
            table.append({"episode": int(e), "run": label, "psnr": {
                str(t): round(float(psnr(gen[t - 1], real[t - 1], channels_first=False)), 2) for t in at}})
    image = Image.fromarray(np.concatenate(rows, axis=0))
    image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)
    common.report("rollout_strip", {"out": args.out, "data": args.data, "at": at, "episodes": episodes,
                                    "rows": ["real"] + [label for label, _ in models], "psnr": table}, args)


if __name__ == "__main__":
    main()
