"""Where a clip run has learned and where it samples from, as JSON: the clean-chunk MSE at fixed timesteps,
and teacher-forced PSNR by sampler steps beside copy-last.

    python bench/diagnose/clip_timesteps.py RUN DATA [--steps 1,2,4,10] [--timesteps 0,250,500,750,900,999]

Every DDIM sampler starts a chunk at the last timestep (pure noise under zero terminal SNR), where the chunk
must come from the context alone. A run whose clean-chunk MSE is low at t <= 900 and high at the last
timestep has learned to denoise, not to predict: what `model.pure_noise` trains for. The val windows are
`playworld train`'s (evenly spaced one-chunk windows of DATA's val split); the MSE is on one fixed val batch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import playworld
from playworld.data.store import Dataset
from playworld.data.windows import make_loader
from playworld.metrics import pooled_psnr
from playworld.models.clip.loss import chunk_loss
from playworld.models.clip.sampler import training_schedule
from playworld.models.clip.world import ClipWorldModel
from playworld.train.validation import teacher_forced_psnr, validation_windows

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("run", help="a clip run folder written by `playworld train`")
    ap.add_argument("data", help="the dataset it trained on (its val split is read)")
    ap.add_argument("--steps", default="1,2,4,10", help="sampler steps to score, comma-separated")
    ap.add_argument("--timesteps", default="0,250,500,750,900,999", help="timesteps for the clean-chunk MSE")
    ap.add_argument("--windows", type=int, default=32, help="val windows for the PSNR")
    args = ap.parse_args()
    common.start(args)
    model = playworld.load(args.run)
    if not isinstance(model, ClipWorldModel):
        raise SystemExit(f"{args.run} is not a clip run")
    ds, k, cfg = Dataset(args.data), model.spec.context, model.config
    win = validation_windows(ds, k, args.windows)
    if win is None:
        raise SystemExit(f"{args.data} has no val window of {k + 1} frames")
    psnr = {}
    for s in (int(v) for v in args.steps.split(",")):
        model.set_sampling_steps(s)
        psnr[str(s)] = round(teacher_forced_psnr(model, win, 8, seed=args.seed), 2)
    batch = next(make_loader(ds, k, int(cfg.chunk), 8, "val", args.seed))
    noise = training_schedule(cfg)
    mse = {}
    with torch.no_grad():
        for t in (int(v) for v in args.timesteps.split(",")):
            _, logs = chunk_loss(model.net, batch, cfg, noise, torch.Generator().manual_seed(args.seed), context_noise=False, timestep=t)
            mse[str(t)] = round(logs["x0_mse"], 4)
    common.report("clip_timesteps", {
        "run": args.run, "data": args.data, "context": k, "windows": win.size,
        "copy_last_psnr": round(float(pooled_psnr(win.context_frames[:, -1].numpy(), win.future_frames[:, 0].numpy())), 2),
        "psnr_by_sampler_steps": psnr, "x0_mse_by_timestep": mse,
    }, args)


if __name__ == "__main__":
    main()
