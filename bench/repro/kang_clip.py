"""Kang et al. 2024 the way the paper asked it: a video model conditioned on the first frames of each 32-frame
clip, on physics/uniform, collision and parabola, in and out of distribution; the frame-autoregressive
diffusion family beside it on the same data, clips and CPU budget. Printed as JSON.

    python bench/repro/kang_clip.py --out bench_runs/kang_clip [--worlds uniform,collision,parabola] [--cpu-minutes 10]

"How Far is Video Generation from World Model: A Physical Law Perspective" trains a video diffusion
model on simulated clips and conditions it on a clip's first frames; the rest of the clip is generated
and parsed (colour-mask centroids) into velocities. In distribution the error sits near the parsing
floor; out of distribution (radius and speed outside the training ranges) it is an order of
magnitude larger (their Fig. 3, DiT-S on uniform motion: 0.015-0.022 ID, 0.29-0.44 OOD).

Here, per world: collect ID clips (train/val/test splits) and OOD clips; train `clip` and `diffusion`
on the ID train split for the same CPU-minutes (train.budget_clock=cpu, the `small` preset); score
both with the physics group of the evaluation suite (playworld/eval/physical.py: Kang's parser,
velocity = delta-position / 0.1 s, the parse floor = the same parser on the real frames) on the ID and
the OOD test splits. The clip model generates the whole rest of the clip as ONE chunk (chunk = 32 - K,
denoised jointly, as the paper's model does); the diffusion model generates it frame by frame. Each
family's ID and OOD errors, OOD/ID ratio and floors are printed with the paper's figures beside them.
Datasets and finished runs in --out are reused when the bench runs again.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import playworld
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.eval.physical import PAPER_DIT_S, PAPER_FLOORS
from playworld.eval.suite import run_suite
from playworld.runs.checkpoints import list_checkpoints
from playworld.runs.presets import load_preset, resolve_context
from playworld.train.loop import train
from playworld.worlds.physics import CLIP_FRAMES

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

WORLDS = ("uniform", "collision", "parabola")
FAMILIES = ("clip", "diffusion")
CLIP_SETS = ("model.patch=8", "train.batch_size=8")
"""the clip model's settings beyond `small`: 8-px patches (64 tokens per 64-px frame, so a whole 32-frame
clip is 2048 tokens) and 8 clips per step (each clip trains 28 frames at once)"""


def dataset(path: Path, world: str, episodes: int, ood: bool, seed: int, resolution: int) -> Dataset:
    """`episodes` clips of physics/`world` in `path`, topped up if an earlier run collected fewer."""
    have = len(Dataset(path)) if (path / "manifest.json").exists() else 0
    if have >= episodes:
        return Dataset(path)
    return collect(f"physics/{world}", path, episodes - have, seed=seed, resolution=resolution,
                   world_options={"ood": True} if ood else None, progress=False)


def train_family(run: Path, family: str, data: Dataset, args: argparse.Namespace, stages: common.Stages, name: str) -> dict:
    """Train (or reuse) one family's run on the ID train split at the shared budget; what happened, as JSON."""
    if list_checkpoints(run):
        return {"reused": str(run)}
    sets = ["train.budget_clock=cpu"]
    if family == "clip":
        k = resolve_context(load_preset(args.preset))
        sets += [*CLIP_SETS, f"model.chunk={args.clip_chunk or CLIP_FRAMES - k}"]
    sets += args.sets  # last, so they override the bench's own
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON
        result = stages.run(name, lambda: train(run, data=data.path, model=family, preset=args.preset, sets=sets,
                                                minutes=args.cpu_minutes, steps=args.steps, progress=False))
    return {"steps": result.step, "stopped_by": result.reason, "val_psnr": result.val_psnr, "sets": sets}


def velocity(model, ds: Dataset, out: Path, args: argparse.Namespace) -> dict:
    """The physics group on the test split of `ds`: the model's velocity error, the parse floor, clips scored."""
    res = run_suite(model, ds, groups=["physics"], episodes=args.eval_clips, seed=args.seed, baselines=False,
                    out_dir=out, progress=False)
    g = res["groups"]["physics"]
    v = g["metrics"].get("velocity_error")
    extra = g["extra"]["model"]
    return {"velocity_error": v["values"]["model"] if v else None, "floor": v["floor"] if v else None,
            "ball_missing_fraction": g["metrics"].get("ball_missing_fraction", {}).get("values", {}).get("model"),
            "clips": extra.get("clips"), "horizon": extra.get("horizon"),
            "by_step": g["curves"].get("velocity_error_by_step", {}).get("model")}


def summary(row: dict) -> dict:
    """ID and OOD errors, their ratio, floors."""
    vid, vood = row["id"]["velocity_error"], row["ood"]["velocity_error"]
    return {"id": _r(vid), "ood": _r(vood), "ood_over_id": _r(vood / vid) if vid and vood is not None else None,
            "floor_id": _r(row["id"]["floor"]), "floor_ood": _r(row["ood"]["floor"])}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 parents=[common.options(threads=1, seed=0, out="bench_runs/kang_clip")])
    ap.add_argument("--worlds", default=",".join(WORLDS), help="physics worlds, comma-separated (uniform, collision, parabola)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="families to train, comma-separated (clip, diffusion)")
    ap.add_argument("--cpu-minutes", type=float, default=10.0, help="CPU-minutes of training per family and world")
    ap.add_argument("--steps", type=int, default=None, help="also stop each run after this many optimiser steps")
    ap.add_argument("--train-episodes", type=int, default=1000, help="ID clips per world (80%% train, 10%% val, 10%% test)")
    ap.add_argument("--ood-episodes", type=int, default=400, help="OOD clips per world (their test split is scored)")
    ap.add_argument("--eval-clips", type=int, default=32, help="test clips scored per distribution")
    ap.add_argument("--resolution", type=int, default=64, help="frame size (the paper's is 128)")
    ap.add_argument("--preset", default="small", help="preset of both families")
    ap.add_argument("--clip-chunk", type=int, default=0, help="clip chunk length (0: the whole clip after the context)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for every run")
    args = ap.parse_args()
    common.start(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stages = common.Stages()
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    families = [f.strip() for f in args.families.split(",") if f.strip()]

    results, training = {}, {}
    for i, world in enumerate(worlds):
        root = args.out / world
        data = {"id": stages.run(f"collect_{world}", lambda r=root, w=world, s=args.seed + 2 * i: dataset(
                    r / "id", w, args.train_episodes, False, s, args.resolution)),
                "ood": stages.run(f"collect_{world}_ood", lambda r=root, w=world, s=args.seed + 2 * i + 1: dataset(
                    r / "ood", w, args.ood_episodes, True, s, args.resolution))}
        for family in families:
            run = root / family
            training[f"{world}/{family}"] = train_family(run, family, data["id"], args, stages, f"train_{world}_{family}")
            model = playworld.load(run)
            row = {d: stages.run(f"eval_{world}_{family}_{d}", lambda d=d, m=model, ds=data[d], o=root / f"eval-{family}-{d}":
                                 velocity(m, ds, o, args)) for d in ("id", "ood")}
            results.setdefault(world, {})[family] = summary(row) | {"detail": row}

    table = {w: {f: {k: v for k, v in r.items() if k != "detail"} for f, r in fams.items()} for w, fams in results.items()}
    common.report("kang_clip", {
        "table": table,
        "paper": {"source": "Kang et al. 2024: Fig. 3 (DiT-S, uniform motion) and the parsing floors",
                  "uniform_dit_s": {"id": list(PAPER_DIT_S["id"]), "ood": list(PAPER_DIT_S["ood"]),
                                    "ood_over_id": [round(PAPER_DIT_S["ood"][0] / PAPER_DIT_S["id"][1], 1),
                                                    round(PAPER_DIT_S["ood"][1] / PAPER_DIT_S["id"][0], 1)]},
                  "parsing_floor": {w: PAPER_FLOORS.get(f"physics/{w}") for w in worlds}, "resolution": 128},
        "results": results, "train": training,
        "cpu_time": {name: {"wall_s": stages.seconds[name], "cpu_s": stages.cpu_seconds[name]} for name in stages.seconds},
        "settings": {"worlds": worlds, "families": families, "cpu_minutes": args.cpu_minutes, "steps": args.steps,
                     "resolution": args.resolution, "preset": args.preset, "train_episodes": args.train_episodes,
                     "ood_episodes": args.ood_episodes, "eval_clips": args.eval_clips, "seed": args.seed},
    }, args)


if __name__ == "__main__":
    main()
