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
from PIL import Image

import playworld
from playworld.data.store import Dataset
from playworld.data.windows import collate_windows, cut_window
from playworld.metrics import psnr
from playworld.models.interface import TunableSampler
from playworld.models.rollout import rollout

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def load(spec: str):
    """RUN or RUN:STEPS -> (label, WorldModel), the sampler set to STEPS when given."""
    run, sep, steps = spec.rpartition(":")
    if not (sep and steps.isdigit()):
        run, steps = spec, ""
    model = playworld.load(run)
    if steps:
        if not isinstance(model, TunableSampler):
            raise SystemExit(f"{run} has no tunable sampler: drop ':{steps}'")
        model.set_sampling_steps(int(steps))
    return spec, model


def strip(frames, at: list[int]) -> np.ndarray:
    """(T, 3, H, W) uint8 -> (H, W * len(at), 3): the frames at steps `at` (1-based) side by side."""
    return np.concatenate([frames[t - 1].permute(1, 2, 0).numpy() for t in at], axis=1)


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
    k, horizon = max(m.spec.context for _, m in models), max(at)
    episodes = [e for e in data.episode_ids("test") if data.episode_length(e) >= k + horizon][: args.episodes]
    if not episodes:
        raise SystemExit(f"{args.data} has no test episode of {k + horizon} frames (K + the last step shown)")
    loaded = [data.load_episode(e) for e in episodes]
    real = collate_windows([cut_window(ep, k, k, horizon) for ep in loaded], k).future_frames  # (E, T, 3, H, W)
    generated = []  # each model from its own K newest frames before the same step, on the recorded actions
    for label, model in models:
        own = model.spec.context
        batch = collate_windows([cut_window(ep, k, own, horizon) for ep in loaded], own)
        generated.append((label, rollout(model, batch, horizon, seed=0)))  # (E, T, 3, H, W) uint8
    rows, table = [], []
    for i, e in enumerate(episodes):
        rows.append(strip(real[i], at))
        for label, gen in generated:
            rows.append(strip(gen[i], at))
            table.append({"episode": int(e), "run": label, "psnr": {
                str(t): round(float(psnr(gen[i, t - 1], real[i, t - 1])), 2) for t in at}})
    image = Image.fromarray(np.concatenate(rows, axis=0))
    image = image.resize((image.width * args.scale, image.height * args.scale), Image.NEAREST)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out)
    common.report("rollout_strip", {"out": args.out, "data": args.data, "at": at, "episodes": episodes,
                                    "rows": ["real"] + [label for label, _ in models], "psnr": table}, args)


if __name__ == "__main__":
    main()
