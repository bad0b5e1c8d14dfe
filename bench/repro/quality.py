"""Quality per CPU-minute of the default diffusion world model beside a DIAMOND-recipe one, printed as JSON.

    python bench/repro/quality.py --out bench_runs/quality                          # 10, 30, 60 CPU-min, both worlds
    python bench/repro/quality.py --out bench_runs/quality --minutes 10 --jobs 2    # the 10 CPU-minute figures
    python bench/repro/quality.py --out Q --minutes 10 --worlds explorer --row "bf16=train.precision=bf16"
    python bench/repro/quality.py --tiny                                            # seconds: the pipeline end to end

Every row trains the `diffusion` family with the `small` preset plus the row's `--set`s on the same data,
the budget counted in CPU time of the training process (`train.budget_clock=cpu`), so rows trained side
by side (`--jobs N`, one thread each) get the same compute whatever else runs. At each mark of --minutes
(cumulative CPU-minutes: 10,30,60 trains 10, evaluates, resumes for 20 more, evaluates, ...) the row's
newest checkpoint (EMA weights) is measured on data it never trained on:

- explorer: training data as `make demo` collects it (100 `explore` episodes x 200 steps, seed 0); the
  measurements on a second collection (seed 1, 200 episodes): teacher-forced PSNR over up to 64 test
  windows; autoregressive PSNR at steps 1..64 with the real actions (MSE pooled over up to 32 test
  windows; both take at most 2 non-overlapping windows per episode: 26 from its 13 test episodes) beside
  copy-last-frame on the same windows; FD at step 64 (the last 8 generated frames of every rollout, in
  the features of the suite's domain encoder trained on that collection's train split) against held-out
  real clips of its val split, beside the real-vs-real floor (the real frames at the same steps);
  delta-PSNR_4 (PSNR at step 4 with the real actions minus with random ones);
- physics/uniform: 1000 in-distribution clips (train split) and the eval suite's physics group on 32
  test clips: Kang et al.'s velocity error over the generated steps (32-frame clips: K context frames,
  32 - K generated) beside the parse floor (the parser on the real frames).

Rows: `default` (the shipped preset) and `diamond` (DIAMOND's Atari denoiser: 4 levels of 64 channels,
2 blocks each, attention only in the bottleneck, a full-resolution stem, frames not residuals, sigma_data
0.5, LogNormal(-0.4, 1.2) noise levels, 3 Euler steps, teacher forcing throughout; same optimiser, batch,
precision and data). `--row NAME=SETS`
adds one (SETS: `;`-separated `--set`s). Runs are kept in OUT/runs/<world>/<row> and a mark already
measured is read back, so a second invocation only adds what is new (rows, marks).
`--seeds 0,1,2` trains every row once per training seed (--seed's run keeps the row's name, the others are kept
as `<row>-seed<S>`; the measurements keep their own fixed seed) and reports the `spread` over seeds: on
physics/uniform one run's velocity error moves by about 1x its parse floor from seed to seed (docs/results.md),
so a single run decides nothing there.
Targets (issue 20) are checked in `targets` against the default row at the first mark (the median over seeds
where there are several).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import contextlib
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

from playworld import metrics as M
from playworld.compute import set_threads
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.eval.api import EvalContext, Windows
from playworld.eval.controllability import random_actions
from playworld.eval.features import EncoderConfig, domain_encoder, embed
from playworld.eval.physical import physics_group
from playworld.experiments import ONE_REGIME
from playworld.models.interface import WorldSpec
from playworld.runs.checkpoints import list_checkpoints
from playworld.runs.load import load_world_model
from playworld.train.loop import train

DIAMOND = [  # DIAMOND's Atari denoiser and sampler (Alonso et al. 2024), as playworld.benchmarks.REFERENCE
    "model.channels=[64,64,64,64]", "model.depths=[2,2,2,2]", "model.attention=[false,false,false,false]",
    "model.mid_attention=true", "model.patch=1", "model.cond_dim=256", "model.action_dim=64", "model.groups=32",
    "model.residual=false", "model.sigma_data=0.5", "model.p_mean=-0.4", "model.p_std=1.2",
    "model.sampler=euler", "model.steps=3", "model.context=4",
    # no transport: DIAMOND denoises the frame itself (residual=false), and a transport moves a residual's origin
    "model.transport=0", "model.transport_global=false", "model.transport_keys_only=false", "model.transport_gate=false",
    "model.transport_hard_train=false", "model.transport_score=mixture",
    # teacher forcing throughout, as DIAMOND trains (the small preset ramps self forcing in for diffusion)
    "train.regime=teacher_forcing", *ONE_REGIME,
]
ROWS = {"default": [], "diamond": DIAMOND}
STEPS_REPORTED = (1, 4, 8, 16, 32, 64)
FD_CLIP = 8


def encoder_config(tiny: bool) -> EncoderConfig:
    """The FD features: the suite's domain encoder on clips of FD_CLIP frames (fewer steps under --tiny)."""
    return EncoderConfig(clip=FD_CLIP, steps=40 if tiny else EncoderConfig.steps)


# -- data -----------------------------------------------------------------------------------------------
def datasets(out: Path, tiny: bool, seed: int) -> dict[str, dict[str, Path]]:
    """Collect (or reuse) the training and measurement data of each world; their paths."""
    n = (lambda full, small: small if tiny else full)
    specs = {
        "explorer": {"train": dict(world="explorer", episodes=n(100, 12), steps=n(200, 80), policy="explore", seed=seed),
                     "eval": dict(world="explorer", episodes=n(200, 30), steps=n(200, 80), policy="explore", seed=seed + 1)},
        "physics/uniform": {"train": dict(world="physics/uniform", episodes=n(1000, 60), seed=seed)},
    }
    paths: dict[str, dict[str, Path]] = {}
    for world, parts in specs.items():
        for part, kw in parts.items():
            path = out / "data" / world.replace("/", "-") / part
            if not (path / "manifest.json").exists():
                kw = dict(kw)
                with contextlib.redirect_stdout(sys.stderr):
                    collect(kw.pop("world"), path, kw.pop("episodes"), steps=kw.pop("steps", None), progress=False, **kw)
            paths.setdefault(world, {})[part] = path
    return paths


def real_clips(ds: Dataset, split: str, length: int, limit: int, seed: int) -> torch.Tensor:
    """Up to `limit` real clips of `length` frames from `split` (N, length, 3, H, W) uint8."""
    cands = [(ep, s) for ep in ds.episode_ids(split) for s in range(0, ds.episode_length(ep) - length + 1, length)]
    pick = np.random.default_rng(seed).permutation(len(cands))[:limit]
    clips = [np.asarray(ds.load_episode(cands[i][0]).frames[cands[i][1]:cands[i][1] + length]) for i in sorted(pick)]
    return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()


# -- measurements ---------------------------------------------------------------------------------------
def eval_context(ds: Dataset, spec, out: Path, seed: int, split: str = "test", episodes: int = 32, horizon: int = 64):
    return EvalContext(dataset=ds, spec=spec, split=split, episodes=episodes, horizon=horizon, seed=seed,
                       cache_dir=out / "cache", batch_size=32)


def measure_explorer(model, eval_path: Path, out: Path, tiny: bool, seed: int) -> dict:
    ds = Dataset(eval_path)
    K, H = model.spec.context, (16 if tiny else 64)
    n = 8 if tiny else 32
    ctx = eval_context(ds, model.spec, out, seed)
    tf = common.non_overlapping(ds, "test", K, 1, 2 * n, seed)
    tf_real = tf.batch().future_frames
    tf_psnr = float(M.pooled_psnr(ctx.generate(model, tf), tf_real))

    w = common.non_overlapping(ds, "test", K, H, n, seed)
    batch = w.batch()
    real, last = batch.future_frames, batch.context_frames[:, -1:]
    gen = ctx.generate(model, w)
    copy = last.expand_as(real)
    model_curve, copy_curve = M.pooled_psnr(gen, real, axis=0), M.pooled_psnr(copy, real, axis=0)
    t4 = min(4, H)
    rand = random_actions(model.spec.action_space, batch.future_actions[:, :t4], seed + 7)
    gen_rand = ctx.generate(model, Windows(ds, w.index, K, t4), actions=rand)
    delta4 = float(model_curve[t4 - 1] - M.pooled_psnr(gen_rand[:, t4 - 1], real[:, t4 - 1]))

    encoder, _ = domain_encoder(eval_context(ds, model.spec, out, seed, split="train"), encoder_config(tiny))
    ref = real_clips(ds, "val", FD_CLIP, 512, seed)
    f_ref = embed(encoder, ref)
    scale = float(np.sqrt(f_ref.var(0).mean())) + 1e-12  # one factor for every feature, as the fidelity group
    fd_gen = M.fd(embed(encoder, gen[:, -FD_CLIP:]) / scale, f_ref / scale)
    fd_floor = M.fd(embed(encoder, real[:, -FD_CLIP:]) / scale, f_ref / scale)
    steps = [s for s in STEPS_REPORTED if s <= H]
    return {
        "psnr_teacher_forced": round(tf_psnr, 2), "teacher_forced_windows": len(tf),
        "psnr_by_step": {str(s): round(float(model_curve[s - 1]), 2) for s in steps},  # str keys: as JSON reads back
        "copy_last_by_step": {str(s): round(float(copy_curve[s - 1]), 2) for s in steps},
        "steps_below_copy_last": [int(s + 1) for s in np.flatnonzero(model_curve <= copy_curve)],
        "psnr_curve": [round(float(v), 2) for v in model_curve], "copy_last_curve": [round(float(v), 2) for v in copy_curve],
        f"fd_step{H}": round(fd_gen, 3), f"fd_step{H}_floor": round(fd_floor, 3), "fd_over_floor": round(fd_gen / max(fd_floor, 1e-9), 2),
        "delta_psnr_4": round(delta4, 2), "rollouts": len(w), "horizon": H,
    }


def measure_physics(model, path: Path, out: Path, tiny: bool, seed: int) -> dict:
    ds = Dataset(path)
    res = physics_group(model, eval_context(ds, model.spec, out, seed, episodes=8 if tiny else 32, horizon=32))
    v = res.metrics.get("velocity_error")
    return {
        "velocity_error": None if v is None else round(v.value, 4), "velocity_error_floor": round(res.extra["velocity_error_floor"], 4),
        "over_floor": None if v is None else round(v.value / max(res.extra["velocity_error_floor"], 1e-9), 2),
        "ball_missing_fraction": round(res.metrics["ball_missing_fraction"].value, 3) if "ball_missing_fraction" in res.metrics else None,
        "clips": res.extra["clips"], "generated_steps": res.extra["horizon"], "skipped": res.skipped or None,
    }


# -- one row: train to each mark, measure ----------------------------------------------------------------
def run_row(world: str, row: str, sets: list[str], marks: list[float], paths: dict, out: Path, tiny: bool, seed: int,
            threads: int | None) -> dict:
    """Train `row` on `world` to every mark (cumulative CPU-minutes) and measure it there; results by mark."""
    if threads:
        set_threads(threads)
    run = out / "runs" / world.replace("/", "-") / row
    results: dict[str, dict] = {}
    spent = 0.0
    for mark in marks:
        saved = run / f"quality-{mark:g}.json"
        if saved.exists():
            results[f"{mark:g}"], spent = json.loads(saved.read_text()), mark
            continue
        started = time.process_time()
        all_sets = ["train.budget_clock=cpu", f"train.seed={seed}", "train.media_every=0"] + sets  # a row may set its own seed
        with contextlib.redirect_stdout(sys.stderr):
            if not list_checkpoints(run):
                res = train(run, data=paths["train"], model="diffusion", preset="debug" if tiny else "small", sets=all_sets,
                            minutes=mark, steps=None, progress=False, device="cpu")
            else:
                res = train(run, minutes=mark - spent, steps=10**9, resume=True, progress=False, device="cpu")
        trained = time.process_time() - started
        model = load_world_model(run)
        t0 = time.process_time()
        with torch.no_grad():
            measured = (measure_explorer(model, paths["eval"], out, tiny, seed) if world == "explorer"
                        else measure_physics(model, paths["train"], out, tiny, seed))
        entry = {"cpu_minutes": mark, "steps": res.step, "val_psnr": res.val_psnr, "train_cpu_s": round(trained, 1),
                 "eval_cpu_s": round(time.process_time() - t0, 1), "sets": sets, **measured}
        saved.write_text(json.dumps(entry, indent=1) + "\n")
        results[f"{mark:g}"], spent = entry, mark
        print(f"quality: {world} {row} @ {mark:g} CPU-min: {summary_line(entry)}", file=sys.stderr, flush=True)
    return results


def summary_line(e: dict) -> str:
    if "psnr_by_step" in e:
        ar = " ".join(f"{s}:{v}/{e['copy_last_by_step'][s]}" for s, v in e["psnr_by_step"].items())
        return f"{e['steps']} steps, TF {e['psnr_teacher_forced']} dB, AR model/copy {ar}, FD/floor {e['fd_over_floor']}, dPSNR4 {e['delta_psnr_4']}"
    return f"{e['steps']} steps, velocity error {e['velocity_error']} (floor {e['velocity_error_floor']}, x{e['over_floor']})"


KEY_FIGURES = ("steps", "psnr_teacher_forced", "fd_over_floor", "delta_psnr_4", "over_floor")


def spread(runs: dict[int, dict], mark: str) -> dict:
    """One row's runs by training seed -> its key figures at `mark` per seed, with their median and range."""
    entries = {seed: r[mark] for seed, r in runs.items() if mark in r}
    out: dict = {"seeds": sorted(entries)}
    for key in KEY_FIGURES:
        values = [entries[s][key] for s in out["seeds"] if entries[s].get(key) is not None]
        if values:
            out[key] = {"by_seed": values, "median": round(float(np.median(values)), 3), "min": min(values), "max": max(values)}
    gaps = [e["psnr_by_step"]["8"] - e["copy_last_by_step"]["8"] for e in entries.values() if "8" in e.get("psnr_by_step", {})]
    if gaps:  # explorer rows
        out["gap_over_copy_last_at_8"] = {"by_seed": [round(g, 2) for g in gaps], "median": round(float(np.median(gaps)), 2)}
    return out


def targets(table: dict, mark: str, spreads: dict | None = None) -> dict:
    """Issue 20's targets on the default row at `mark` (None where a row or world is missing); the physics target
    on the median over training seeds where `spreads` has several."""
    ex = table.get("explorer", {})
    d, r = ex.get("default", {}).get(mark), ex.get("diamond", {}).get(mark)
    out: dict = {"mark_cpu_minutes": float(mark)}
    if d:
        gap = {s: round(v - d["copy_last_by_step"][s], 2) for s, v in d["psnr_by_step"].items()}
        out["teacher_forced_psnr_ge_30"] = d["psnr_teacher_forced"] >= 30.0
        out["above_copy_last_every_step"] = not d["steps_below_copy_last"]
        out["gap_over_copy_last_by_step"] = gap
        out["at_least_4db_at_step_8"] = gap.get("8", -1e9) >= 4.0
        out["fd_within_3x_floor"] = d["fd_over_floor"] <= 3.0
    if d and r:
        out["beats_diamond_ar16"] = d["psnr_by_step"]["16"] > r["psnr_by_step"]["16"] if "16" in d["psnr_by_step"] else None
        key = next(k for k in d if k.startswith("fd_step") and not k.endswith("floor"))
        out["beats_diamond_fd"] = d[key] < r[key]
    p = table.get("physics/uniform", {}).get("default", {}).get(mark)
    many = ((spreads or {}).get("physics/uniform", {}).get("default") or {}).get("over_floor")
    if many and len(many["by_seed"]) > 1:
        out["physics_velocity_within_2.5x_floor"] = many["median"] <= 2.5
        out["physics_over_floor_by_seed"] = many["by_seed"]
    elif p and p["over_floor"] is not None:
        out["physics_velocity_within_2.5x_floor"] = p["over_floor"] <= 2.5
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[common.options(threads=1, seed=0, out="bench_runs/quality")])
    ap.add_argument("--minutes", default="10,30,60", help="cumulative CPU-minute marks at which each row is measured")
    ap.add_argument("--worlds", default="explorer,physics/uniform", help="comma-separated: explorer, physics/uniform")
    ap.add_argument("--rows", default="default,diamond", help="built-in rows to run: default, diamond")
    ap.add_argument("--row", action="append", default=[], metavar="NAME=SETS",
                    help="an extra row: NAME=model.x=1;train.y=2 (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="rows trained at once, each in its own process with --threads threads")
    ap.add_argument("--seeds", default="", help="training seeds, comma-separated (default: --seed alone): each row once per seed")
    ap.add_argument("--tiny", action="store_true", help="seconds: debug preset, a few episodes, marks of 0.1 CPU-min")
    args = ap.parse_args()
    common.start(args)
    if args.tiny:
        args.minutes, args.out = "0.1", args.out if args.out != Path("bench_runs/quality") else Path("bench_runs/quality_tiny")
    marks = sorted(float(m) for m in args.minutes.split(","))
    rows = {name: ROWS[name] for name in args.rows.split(",") if name}
    for item in args.row:
        name, _, sets = item.partition("=")
        if not name or not sets:
            raise SystemExit(f"--row {item!r}: expected NAME=SETS, e.g. bf16=train.precision=bf16")
        rows[name] = [s for s in sets.split(";") if s]
    worlds = [w for w in args.worlds.split(",") if w]
    paths = datasets(args.out, args.tiny, args.seed)

    try:
        seeds = [int(v) for v in args.seeds.split(",") if v.strip()] or [args.seed]
    except ValueError:
        raise SystemExit(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    named = {s: "" if s == args.seed else f"-seed{s}" for s in seeds}  # --seed's runs keep the row's name (and are reused)
    jobs = [(w, name + named[seed], sets + ([f"train.seed={seed}"] if seed != args.seed else []))
            for w in worlds for name, sets in rows.items() for seed in seeds]
    table: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    if "explorer" in worlds:  # the domain encoder, trained once before the rows share its cache
        ds = Dataset(paths["explorer"]["eval"])
        spec = WorldSpec(ds.resolution, ds.action_space, context=4, world=ds.world)
        domain_encoder(eval_context(ds, spec, args.out, args.seed, split="train"), encoder_config(args.tiny))
    call = lambda w, name, sets: run_row(w, name, sets, marks, paths[w], args.out, args.tiny, args.seed, args.threads)  # noqa: E731
    if args.jobs > 1:
        with futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = {pool.submit(run_row, w, n, s, marks, paths[w], args.out, args.tiny, args.seed, args.threads): (w, n)
                    for w, n, s in jobs}
            for f in futures.as_completed(done):
                w, n = done[f]
                table.setdefault(w, {})[n] = f.result()
    else:
        for w, n, s in jobs:
            table.setdefault(w, {})[n] = call(w, n, s)
    first = f"{marks[0]:g}"
    result = {"marks_cpu_minutes": marks, "rows": {n: s for n, s in rows.items()}, "table": table}
    spreads = None
    if len(seeds) > 1:
        spreads = {w: {name: spread({seed: table[w][name + named[seed]] for seed in seeds}, first) for name in rows} for w in worlds}
        result |= {"seeds": seeds, "spread": spreads}
    common.report("quality", result | {"targets": targets(table, first, spreads), "wall_s": round(time.perf_counter() - started, 1)}, args)


if __name__ == "__main__":
    main()
