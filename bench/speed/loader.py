"""Loader throughput next to what a training step of the diffusion model consumes; prints JSON.

    python bench/speed/loader.py [--data DATA] [--seconds 3] [--preset small] [--workers 0,2]

The loader is `playworld.data.windows.make_loader`, the one training uses. Without --data it
collects a temporary explorer dataset (40 episodes x 200 steps, 64x64 by default, the default
compressed store). The consumer is the registered `diffusion` family with the preset's model
options and context K; its rate is windows/s = batch / (forward + backward + optimiser step) on
this CPU (`common.training_step_rate`). The loader should deliver at least 10x that (`headroom` >= 10).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.data.windows import make_loader

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

HORIZON = 1  # frames predicted per window (teacher forcing)


def loader_rate(ds: Dataset, context: int, batch: int, num_workers: int, seconds: float) -> dict:
    """Batches and windows per second the loader delivers with `num_workers` worker processes."""
    loader = make_loader(ds, context, HORIZON, batch, split="train", seed=0, num_workers=num_workers)
    for _ in range(5):  # warm-up: worker start, page cache, episode cache
        next(loader)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(loader)
        n += 1
    dt = time.perf_counter() - t0
    del loader  # stops the workers
    return {"num_workers": num_workers, "batches": n, "batches_per_s": round(n / dt, 1),
            "windows_per_s": round(n * batch / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(seed=0)])
    ap.add_argument("--data", type=Path, help="dataset to read (default: collect a temporary explorer dataset)")
    ap.add_argument("--episodes", type=int, default=40, help="episodes of the temporary dataset")
    ap.add_argument("--steps-per-episode", type=int, default=200, help="steps per episode of the temporary dataset")
    ap.add_argument("--resolution", type=int, default=64, help="frame size of the temporary dataset")
    ap.add_argument("--preset", default="small", help="preset whose diffusion model and context K are used")
    ap.add_argument("--batch", type=int, default=32, help="windows per batch")
    ap.add_argument("--workers", default="0,2", help="comma-separated loader worker counts to time")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds to time each loader setting")
    args = ap.parse_args()
    common.start(args)
    with tempfile.TemporaryDirectory() as tmp:
        ds = Dataset(args.data) if args.data else collect(
            "explorer", Path(tmp) / "explorer", args.episodes, policy="random", seed=args.seed, resolution=args.resolution,
            steps=args.steps_per_episode, progress=False)
        consumer = common.training_step_rate(ds, args.preset, args.batch, HORIZON)
        loaders = [loader_rate(ds, consumer["context"], args.batch, int(w), args.seconds) for w in args.workers.split(",")]
        best = max(r["windows_per_s"] for r in loaders)
        common.report("loader", {
            "dataset": {"world": ds.world, "episodes": len(ds), "frames": ds.num_frames, "resolution": ds.resolution},
            "batch": args.batch, "context": consumer["context"], "horizon": HORIZON,
            "loader": loaders, "training_step": consumer,
            "headroom": round(best / consumer["windows_per_s"], 1),
            "headroom_single_process": round(loaders[0]["windows_per_s"] / consumer["windows_per_s"], 1),
        }, args)


if __name__ == "__main__":
    main()
