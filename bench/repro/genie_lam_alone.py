"""The genie latent action model trained alone on explorer's random-policy transitions, printed as JSON.

    python bench/repro/genie_lam_alone.py --out bench_runs/lam [--resolution 32 --steps 1000 --channels 32,64,64]

Isolates the LAM from the rest of genie (tokenizer, dynamics, shared gradient clipping): frames t and
t+1 in, a code out, trained only to rebuild frame t+1 (no labels). Every `--every` steps it reports the
majority mapping from codes to the true actions (fitted on train transitions, scored on val) and the
codes in use. Measured (defaults: 32 px, 64 x 100 random-policy transitions, batch 32, one thread,
1000 steps; val accuracy at steps 250 / 500 / 750 / 1000; the majority action is 0.21 of val):
    --channels 32,64,64 (the small preset)   0.49 / 0.92 / 0.96 / 0.96   (473 CPU-s)
    --channels 16,32,32,32                   0.59 / 0.60 / 0.57 / 0.60   (172 CPU-s)
    --channels 32,64,64 --warmup 0           0.21 / 0.22 / 0.19 / 0.17   (492 CPU-s)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.models.genie.lam import LatentActionModel
from playworld.models.interface import frames_to_unit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def transitions(ds: Dataset, split: str, limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frame t, frame t+1) in [-1, 1] and the true action between them, up to `limit` transitions."""
    prev, nxt, act = [], [], []
    for ep in ds.episode_ids(split):
        f = common.episode_frames(ds, ep)
        prev.append(f[:-1]), nxt.append(f[1:]), act.append(torch.from_numpy(np.asarray(ds.load_episode(ep).actions))[1:])
    return frames_to_unit(torch.cat(prev)[:limit]), frames_to_unit(torch.cat(nxt)[:limit]), torch.cat(act)[:limit]


@torch.no_grad()
def codes(lam: LatentActionModel, data, batch: int = 250) -> torch.Tensor:
    lam.eval()
    out = torch.cat([lam.infer(data[0][i:i + batch], data[1][i:i + batch])[1] for i in range(0, len(data[2]), batch)])
    lam.train()
    return out


def mapping_now(lam: LatentActionModel, fit, val, codebook: int, n_actions: int) -> dict:
    """Majority mapping codes -> true actions fitted on `fit`, scored on `val`, and the codes in use on val."""
    zf, zv = codes(lam, fit).numpy(), codes(lam, val).numpy()
    scores = common.score_mapping(common.confusion(zf, fit[2].numpy(), codebook, n_actions),
                                  common.confusion(zv, val[2].numpy(), codebook, n_actions))
    return {"accuracy_val": scores["accuracy_val"], "codes_in_use_val": sum(1 for u in scores["latent_usage_val"] if u)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=1, seed=0, out="bench_runs/lam_alone",
                                                         out_help="folder for the dataset")])
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--steps-per-episode", type=int, default=100)
    ap.add_argument("--channels", default="32,64,64", help="LAM conv stages (model.lam_channels)")
    ap.add_argument("--codebook", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=300, help="unquantized steps first (model.lam_warmup)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--every", type=int, default=250, help="report the mapping every this many steps")
    ap.add_argument("--eval-transitions", type=int, default=1000)
    args = ap.parse_args()
    common.start(args)
    path = args.out / f"explorer{args.resolution}"
    if not (path / "manifest.json").exists():
        collect("explorer", path, episodes=args.episodes, policy="random", seed=0, resolution=args.resolution,
                steps=args.steps_per_episode, progress=False)
    ds = Dataset(path)
    n_actions = ds.action_space.n
    train = transitions(ds, "train", 10**9)
    fit, val = tuple(x[: args.eval_transitions] for x in train), transitions(ds, "val", args.eval_transitions)
    channels = tuple(int(c) for c in args.channels.split(","))
    lam = LatentActionModel(args.codebook, 16, channels, 0.25, 3, warmup=args.warmup)
    opt = torch.optim.AdamW(lam.parameters(), lr=1e-3)
    history, g, t0, c0 = [], torch.Generator().manual_seed(args.seed), time.perf_counter(), time.process_time()
    for step in range(args.steps + 1):
        if step % args.every == 0 or step == args.steps:
            history.append({"step": step, **mapping_now(lam, fit, val, args.codebook, n_actions)})
        if step == args.steps:
            break
        i = torch.randint(len(train[2]), (args.batch,), generator=g)
        loss, _, _ = lam(train[0][i], train[1][i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    common.report("genie_lam_alone", {
        "resolution": args.resolution, "channels": channels, "warmup": args.warmup, "batch": args.batch,
        "train_transitions": len(train[2]), "val_transitions": len(val[2]),
        "chance": float(np.bincount(val[2].numpy()).max() / len(val[2])), "history": history,
        "final_accuracy_val": history[-1]["accuracy_val"], "target": ">= 0.9",
        "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1)}, args)


if __name__ == "__main__":
    main()
