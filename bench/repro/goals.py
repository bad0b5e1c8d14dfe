"""Benchmark: closed-loop goal reaching on explorer for every model family, against the real world and random.

    python bench/repro/goals.py --out bench_out/goals --threads 1                   # every family (hours on 2 cores)
    python bench/repro/goals.py --out bench_out/goals --families jepa,rssm --episodes 24   # the jepa / rssm figures
    python bench/repro/goals.py --tiny                                            # seconds: the pipeline end to end

One explorer dataset at 32 x 32 (150 `explore` + 50 `random` episodes of 200 steps); every registered
family (or --families) trains on it with the `small` preset for --train-minutes CPU-minutes (a run already
in OUT/runs/<family> is reused unless --retrain), then each plays the eval group `goals` (eval/goals.py:
reach-3, reach-6, reach-12 and coin-4, CEM toward the goal view, replanning at every real step, acted
and scored in the real world) and the `fidelity` group (its pixel metrics). The real world as the
planner's model is the upper bound, random actions the lower bound. Every row plans with the same
settings (--population, --horizon, --iterations). Prints the table on stderr and JSON on stdout, and
writes OUT/report.html: the families side by side, pixel metrics beside closed-loop success, and the
Spearman rank correlation across families of each pixel metric with the mean success over the tasks.

Targets (issue 25): jepa's reach-6 success >= 3x random's, and jepa's planning seconds per real step
<= 1.5x rssm's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

from playworld.agents.goals import GoalObjective, WorldAsModel
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.eval.api import DatasetOracle, EvalContext, GroupResult, Metric, Skip
from playworld.eval.features import EncoderConfig
from playworld.eval.fidelity import fidelity
from playworld.eval.goals import GoalsConfig, as_result, goals, plan_tasks
from playworld.eval.report import write_report
from playworld.eval.suite import _merge  # the suite's own merge, so the page reads like a suite's results
from playworld.models import list_families
from playworld.models.baselines import CopyLast
from playworld.models.interface import LatentState, WorldSpec
from playworld.runs.checkpoints import list_checkpoints, resolve_checkpoint
from playworld.runs.load import load_world_model
from playworld.train.loop import train

REAL, RANDOM = "oracle", "copy-last"  # the suite's names for the real world and for what acts at random
REAL_JEPA = "real world, jepa latent"
NAMES = {REAL: "real world", RANDOM: "random"}


def real_world_through(model, ctx: EvalContext, cfg: GoalsConfig):
    """The goals played by the planner in the real world, comparing frames through `model`'s latent (its encoder):
    the upper bound of that representation, so the gap to `model`'s own row is its predictor's."""
    represent = GoalObjective(model, np.zeros(model.spec.frame_shape[1:] + (3,), np.uint8), "latent").represent
    real = WorldAsModel("explorer", ctx.spec.resolution, ctx.spec.context, ctx.dataset.manifest.get("world_options"))
    return as_result(plan_tasks(real, ctx, cfg, encoder=represent, sync=real.sync), cfg)


def dataset(out: Path, resolution: int, tiny: bool) -> Dataset:
    data = out / "data"
    if not (data / "manifest.json").is_file():
        explore, rand, steps = (6, 4, 40) if tiny else (150, 50, 200)
        collect("explorer", data, episodes=explore, policy="explore", resolution=resolution, steps=steps, seed=0, progress=False)
        collect("explorer", data, episodes=rand, policy="random", resolution=resolution, steps=steps, seed=1, progress=False)
    return Dataset(data)


def trained(out: Path, family: str, minutes: float, tiny: bool, retrain: bool) -> tuple[Path, dict]:
    run = out / "runs" / family
    if list_checkpoints(run) and not retrain:
        return run, {"reused": True}
    t0 = time.process_time()
    result = train(run, data=out / "data", model=family, preset="debug" if tiny else "small",
                   sets=["train.budget_clock=cpu"], minutes=None if tiny else minutes, steps=4 if tiny else None,
                   progress=False)
    return run, {"steps": result.step, "val_psnr": result.val_psnr, "cpu_minutes": round((time.process_time() - t0) / 60, 2)}


def evaluate(who: str, model, ctx: EvalContext, results: dict, pixel: bool, key: str, play=None) -> None:
    """The goals (and, with `pixel`, the fidelity) group for `who`, merged into the suite-shaped `results`;
    `play()` instead of the goals group when given.

    Each group's result is kept in OUT/results/, named by `key` (what was evaluated and every setting), so a
    later run of the bench with more families plays only the new ones."""
    play = play or (lambda: goals(model, ctx))
    for group, fn in (("goals", play), ("fidelity", lambda: fidelity(model, ctx))) if pixel else (("goals", play),):
        entry = results["groups"].setdefault(group, {"skipped": None, "metrics": {}, "skipped_metrics": {}, "curves": {},
                                                     "extra": {}, "seconds": {}})
        kept = Path(ctx.cache_dir).parent / "results" / f"{who}-{group}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
        reused = kept.is_file()
        if reused:
            saved = json.loads(kept.read_text())
            res = GroupResult(metrics={k: Metric(**m) for k, m in saved["metrics"].items()}, curves=saved["curves"],
                              skipped=saved["skipped"], extra=saved["extra"])
            entry["seconds"][who] = saved["seconds"]
        else:
            t0 = time.process_time()
            try:
                res = fn()
            except Skip as e:
                entry["skipped_metrics"].setdefault("*", {})[who] = str(e)
                continue
            entry["seconds"][who] = round(time.process_time() - t0, 1)
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(json.dumps({"key": key, "seconds": entry["seconds"][who], "curves": res.curves, "skipped": res.skipped,
                                        "extra": res.extra, "metrics": {k: asdict(m) for k, m in res.metrics.items()}},
                                       default=str))
        _merge(entry, who, res)
        print(f"  {who} {group}: {entry['seconds'][who]} CPU-s" + (" (kept from an earlier run)" if reused else ""),
              file=sys.stderr, flush=True)


def table(results: dict, rows: list[str], tasks: list[str]) -> list[dict]:
    extra = results["groups"]["goals"]["extra"]
    out = []
    for who in rows:
        got = extra.get(who, {}).get("tasks", {})
        out.append({"row": NAMES.get(who, who), **{t: {k: got[t][k] for k in ("success", "steps", "plan_seconds", "episodes")}
                                                     for t in tasks if t in got}})
    return out


def correlation(results: dict, families: list[str], tasks: list[str]) -> dict:
    """Spearman across families of each pixel metric (oriented: higher is better) with the mean success."""
    extra = results["groups"]["goals"]["extra"]
    fams = [f for f in families if f in extra]
    success = {f: float(np.mean([extra[f]["tasks"][t]["success"] for t in tasks])) for f in fams}
    out = {}
    for name, row in results["groups"].get("fidelity", {}).get("metrics", {}).items():
        have = [f for f in fams if row["values"].get(f) is not None]
        if len(have) < 3:
            out[f"fidelity/{name}"] = {"spearman": None, "note": f"{len(have)} families have it (needs 3)"}
            continue
        sign = 1.0 if row["higher_is_better"] else -1.0
        x, y = [sign * row["values"][f] for f in have], [success[f] for f in have]
        rho = stats.spearmanr(x, y)[0] if np.ptp(x) > 0 and np.ptp(y) > 0 else None
        out[f"fidelity/{name}"] = {"spearman": None if rho is None or np.isnan(rho) else float(rho),
                                   "note": f"{len(have)} families" + ("" if rho is not None else ": no spread")}
    return out


def _cell(c: dict | None) -> str:
    """success, mean steps to the first success, planning CPU-s per real step"""
    if c is None:
        return "-"
    steps = "-" if c["steps"] is None else f"{c['steps']:.1f}"
    return f"{c['success']:.2f} {steps:>4} {c['plan_seconds']:.3f}s"


def print_table(rows: list[dict], tasks: list[str]) -> None:
    print("success rate, steps to the first success, planning CPU-s per real step", file=sys.stderr)
    print(f"{'':<24}" + "".join(f"{t:>20}" for t in tasks), file=sys.stderr)
    for r in rows:
        print(f"{r['row']:<24}" + "".join(f"{_cell(r.get(t)):>20}" for t in tasks), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=1, seed=0, out="bench_out/goals")])
    ap.add_argument("--tiny", action="store_true", help="seconds: a tiny dataset, debug models, one short task")
    ap.add_argument("--families", default=None, help="comma-separated families (default: every registered one)")
    ap.add_argument("--train-minutes", type=float, default=10.0, help="CPU minutes of training per family")
    ap.add_argument("--retrain", action="store_true", help="train again even when OUT/runs/<family> has a checkpoint")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=8, help="episodes per task for each planner")
    ap.add_argument("--random-episodes", type=int, default=200, help="episodes per task of the random policy")
    ap.add_argument("--tasks", default="reach-3,reach-6,reach-12,coin-4")
    ap.add_argument("--population", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--no-fidelity", action="store_true", help="skip the pixel metrics (and the correlation)")
    args = ap.parse_args()
    common.start(args)
    tasks = ["reach-2"] if args.tiny else args.tasks.split(",")
    families = args.families.split(",") if args.families else list_families()
    stages = common.Stages()
    data = stages.run("collect", lambda: dataset(args.out, args.resolution, args.tiny))
    planner = {"population": 8, "horizon": 2, "iterations": 1, "elites": 2} if args.tiny else {
        "population": args.population, "horizon": args.horizon, "iterations": args.iterations,
        "elites": max(args.population // 8, 1)}
    tiny_encoder = {"clip": 2, "steps": 20, "width": 8, "batch": 16, "min_train_clips": 16}
    cfg = GoalsConfig(tasks=tuple(tasks), episodes=1 if args.tiny else args.episodes,
                      random_episodes=4 if args.tiny else args.random_episodes, **planner,
                      **({"encoder": EncoderConfig(**tiny_encoder)} if args.tiny else {}))
    options = {"goals": cfg, "fidelity": {"teacher_forced_windows": 4, "encoder": tiny_encoder, "reference_clips": 16,
                                          "min_clips": 2, "kid_subset_size": 8}} if args.tiny else {"goals": cfg}
    spec = WorldSpec(resolution=data.resolution, action_space=data.action_space, context=4, world="explorer")
    ctx = EvalContext(dataset=data, spec=spec, episodes=4 if args.tiny else 16, horizon=8 if args.tiny else 32,
                      seed=args.seed, cache_dir=args.out / "cache", options=options, full=False)
    results = {"run": str(args.out), "label": "goals across families", "step": 0, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "dataset": {"path": str(data.path), "world": data.world, "resolution": data.resolution,
                           "test_episodes": len(data.episode_ids("test"))},
               "settings": {"tasks": tasks, "planner": planner, "episodes": cfg.episodes, "random_episodes": cfg.random_episodes},
               "models": [], "warnings": [], "groups": {}, "training": None}
    settings = json.dumps({"goals": asdict(cfg), "fidelity": options.get("fidelity"), "data": data.fingerprint,
                           "seed": args.seed, "episodes": ctx.episodes, "horizon": ctx.horizon}, sort_keys=True, default=str)
    runs = {}
    for fam in families:
        try:
            run, info = stages.run(f"train_{fam}", lambda fam=fam: trained(args.out, fam, args.train_minutes, args.tiny, args.retrain))
            runs[fam] = info
            model = load_world_model(run)
            ctx.spec = model.spec
            key = f"{settings}|{resolve_checkpoint(run).resolve()}"
            stages.run(f"eval_{fam}", lambda fam=fam, model=model, key=key: evaluate(fam, model, ctx, results,
                                                                                    not args.no_fidelity, key))
            if isinstance(model, LatentState) and fam == "jepa":  # the real world, compared through jepa's latent
                stages.run("eval_real_world_jepa", lambda model=model, key=key: evaluate(
                    REAL_JEPA, None, ctx, results, False, key, play=lambda: real_world_through(model, ctx, cfg)))
            results["models"].append(fam)
        except Exception as e:  # noqa: BLE001  one family that fails to train or plan must not lose the others' figures
            runs[fam] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
            results["warnings"].append(f"{fam}: {type(e).__name__}: {e}")
            print(f"{fam} failed: {e}", file=sys.stderr)
    ctx.spec = spec
    stages.run("eval_real_world", lambda: evaluate(REAL, DatasetOracle(data, spec), ctx, results, not args.no_fidelity, settings))
    stages.run("eval_random", lambda: evaluate(RANDOM, CopyLast(spec), ctx, results, not args.no_fidelity, settings))
    results["models"] += [REAL, RANDOM]
    if REAL_JEPA in results["groups"]["goals"]["extra"]:
        results["models"].append(REAL_JEPA)
    rows = table(results, [f for f in families if f in results["models"]] + [m for m in (REAL, REAL_JEPA, RANDOM)
                                                                               if m in results["models"]], tasks)
    corr = correlation(results, families, tasks) if not args.no_fidelity else {}
    results["goals_correlation"] = corr
    write_report(results, {}, args.out / "report.html")
    print_table(rows, tasks)
    by = {r["row"]: r for r in rows}
    target_task = "reach-2" if args.tiny else "reach-6"
    met = {}
    if "jepa" in by and target_task in by["jepa"]:
        rnd = by["random"][target_task]["success"]
        met["jepa_vs_random"] = {"jepa": by["jepa"][target_task]["success"], "random": rnd,
                                 "ratio": by["jepa"][target_task]["success"] / rnd if rnd > 0 else None}
        met["jepa_vs_random"]["met"] = by["jepa"][target_task]["success"] >= 3 * rnd
        if "rssm" in by:
            js = float(np.mean([by["jepa"][t]["plan_seconds"] for t in tasks]))
            rs = float(np.mean([by["rssm"][t]["plan_seconds"] for t in tasks]))
            met["jepa_vs_rssm_plan_seconds"] = {"jepa": js, "rssm": rs, "ratio": js / rs, "met": js <= 1.5 * rs}
    common.report("goals", {"tiny": args.tiny, "tasks": tasks, "planner": planner, "episodes": cfg.episodes,
                            "random_episodes": cfg.random_episodes, "table": rows, "correlation": corr, "targets": met,
                            "runs": runs, "report": str(args.out / "report.html"), "seconds": stages.seconds,
                            "cpu_seconds": stages.cpu_seconds}, args)


if __name__ == "__main__":
    main()
