"""Reproduce the out-of-distribution finding of Kang et al. 2024 on physics/uniform, printed as JSON.

    python bench/repro/kang_repro.py --out bench_runs/kang [--minutes 30 | --steps N] [--preset small]
    python bench/repro/kang_repro.py --out bench_runs/kang --continue-minutes 20 --continue-lr 3e-4

"How Far is Video Generation from World Model: A Physical Law Perspective" trains video models on
uniform motion with radius r in [0.7, 1.5] and speed v in [1, 4] (in distribution) and tests them
on r and v outside those ranges (out of distribution). Its finding (Fig. 3, DiT-S): the velocity
error in distribution is near the parsing floor (about 0.015-0.022), out of distribution it is an
order of magnitude larger (about 0.29-0.44): the models imitate cases, they do not learn the law.

Here: collect ID clips (train/val/test splits) and OOD clips, train the diffusion model on the ID
train split, then run the physics group of the evaluation suite (Kang's colour-mask parser,
velocity = delta-pos / 0.1 s) on the ID test split and on the OOD test split. The JSON gives our
table next to the paper's, the OOD/ID ratio (the finding holds at >= 5x) and the CPU time taken.
Steps already done (datasets, a finished run) are reused when the bench is run again.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch

import playworld
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.eval.suite import run_suite
from playworld.runs.checkpoints import list_checkpoints
from playworld.train.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

PAPER = {
    "source": "Kang et al. 2024, Fig. 3 (DiT-S, uniform motion) and the ground-truth parsing floor",
    "velocity_error_id": [0.015, 0.022], "velocity_error_ood": [0.29, 0.44], "parsing_floor": 0.0099,
    "resolution": 128,
}
FINDING_RATIO = 5.0  # the finding holds when OOD error >= 5x ID error


def dataset(path: Path, episodes: int, ood: bool, seed: int, resolution: int) -> Dataset:
    """physics/uniform clips in `path`, topped up to `episodes` if an earlier run collected fewer."""
    have = len(Dataset(path)) if (path / "manifest.json").exists() else 0
    if have >= episodes:
        return Dataset(path)
    return collect("physics/uniform", path, episodes - have, seed=seed, resolution=resolution,
                   world_options={"ood": True} if ood else None)


def train_run(run: Path, data: Dataset, args: argparse.Namespace, stages: common.Stages) -> dict:
    """Train the run (or continue it with --continue-minutes, or reuse it); what happened, as JSON."""
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
        if not list_checkpoints(run):
            result = stages.run("train", lambda: train(run, data=data.path, model="diffusion", preset=args.preset,
                                                       steps=args.steps, minutes=args.minutes, device=args.device))
            return {"steps": result.step, "stopped_by": result.reason, "val_psnr": result.val_psnr}
        if not args.continue_minutes:
            return {"reused": str(run)}
        sets = [f"train.lr={args.continue_lr}"] if args.continue_lr else None
        # a time budget: the run's own step budget (e.g. from --steps) must not end it at once
        result = stages.run("train_continued", lambda: train(run, sets=sets, minutes=args.continue_minutes, resume=True,
                                                             steps=10**9, device=args.device))
    return {"continued": str(run), "steps": result.step, "stopped_by": result.reason, "val_psnr": result.val_psnr,
            "continue_minutes": args.continue_minutes, "continue_lr": args.continue_lr}


def physics_row(model, ds: Dataset, name: str, run: Path, args: argparse.Namespace, device: str) -> dict:
    """The physics group on the test split of `ds`: metric -> {model, baselines..., floor}, clips, report."""
    res = run_suite(model, ds, run_dir=run, groups=["physics"], episodes=args.eval_clips, seed=args.seed, device=device,
                    out_dir=args.out / f"eval-{name}", progress=True)
    g = res["groups"]["physics"]
    row = {m: dict(r["values"]) | {"floor": r["floor"]} for m, r in g["metrics"].items()}
    row["clips"] = g["extra"].get("model", {}).get("clips")
    row["report"] = res["paths"]["report"]
    return row


def ours(table: dict) -> dict:
    """Our velocity errors in and out of distribution, their ratio, and whether the finding holds."""
    vid = table["id"].get("velocity_error", {}).get("model")
    vood = table["ood"].get("velocity_error", {}).get("model")
    ratio = (vood / vid) if vid and vood is not None else None
    return {"velocity_error_id": vid, "velocity_error_ood": vood,
            "parsing_floor_id": table["id"].get("velocity_error", {}).get("floor"),
            "parsing_floor_ood": table["ood"].get("velocity_error", {}).get("floor"),
            "ood_over_id": round(ratio, 2) if ratio is not None else None,
            "finding_reproduced": bool(ratio is not None and ratio >= FINDING_RATIO), "table": table}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 parents=[common.options(seed=0, out="bench_runs/kang")])
    ap.add_argument("--train-episodes", type=int, default=1000, help="ID clips to collect (80%% train, 10%% val, 10%% test)")
    ap.add_argument("--ood-episodes", type=int, default=400, help="OOD clips to collect (their test split is evaluated)")
    ap.add_argument("--eval-clips", type=int, default=32, help="test clips evaluated per distribution")
    ap.add_argument("--resolution", type=int, default=64, help="frame size (the paper used 128; our parsing floor shrinks with it)")
    ap.add_argument("--preset", default="small", help="diffusion preset: debug, small or base")
    ap.add_argument("--minutes", type=float, default=None, help="training budget in minutes (default: the preset's; none when --steps is given)")
    ap.add_argument("--steps", type=int, default=None, help="training budget in optimiser steps")
    ap.add_argument("--continue-minutes", type=float, default=None,
                    help="resume the finished run in --out for this many more minutes (each time it is passed)")
    ap.add_argument("--continue-lr", type=float, default=None,
                    help="learning rate for the continued training (a lower rate anneals the model toward its floor)")
    ap.add_argument("--eval-steps", type=int, default=None,
                    help="sampling steps of the model when evaluated (default: the run's own, 1 for small)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: what is available)")
    args = ap.parse_args()
    common.start(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = common.Stages()

    data = {
        "id": stages.run("collect_id", lambda: dataset(args.out / "id", args.train_episodes, False, args.seed, args.resolution)),
        "ood": stages.run("collect_ood", lambda: dataset(args.out / "ood", args.ood_episodes, True, args.seed + 1,
                                                         args.resolution)),
    }
    run = args.out / "run"
    trained = train_run(run, data["id"], args, stages)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = playworld.load(run, device=device)
    if args.eval_steps:
        model.set_sampling_steps(args.eval_steps)
    table = {name: stages.run(f"eval_{name}", lambda ds=ds, name=name: physics_row(model, ds, name, run, args, device))
             for name, ds in data.items()}

    common.report("kang_repro", {
        "paper": PAPER | {"ood_over_id": [round(0.29 / 0.022, 1), round(0.44 / 0.015, 1)]},
        "ours": ours(table),
        "train": trained | {"preset": args.preset, "minutes": args.minutes, "max_steps": args.steps,
                            "train_clips": len(data["id"].episode_ids("train"))},
        "cpu_time": {name: {"wall_s": stages.seconds[name], "cpu_s": stages.cpu_seconds[name]} for name in stages.seconds},
        "settings": {"resolution": args.resolution, "eval_clips": args.eval_clips, "eval_sampling_steps": args.eval_steps,
                     "seed": args.seed, "device": device},
    }, args)


if __name__ == "__main__":
    main()
