"""The evaluation suite: every metric group on a model and on the calibration baselines.

    results = run_suite(model, dataset, run_dir="runs/x")   # writes runs/x/eval/<step>.json, runs/x/report.html

Each registered group (fidelity, controllability, physics, coherence, ...) is called on the model
under test, then on the oracle, copy-last and ignore-actions baselines with the same evaluation
context (same windows, same seed, shared caches), so every metric's row reads: floor, model,
baselines. A metric that cannot be computed is reported as skipped with its reason, never as 0.

The JSON (also returned) looks like:

    {"run": ..., "step": 1200, "dataset": {...}, "settings": {...}, "models": ["model", "oracle", ...],
     "groups": {"physics": {"skipped": null | "reason",
                            "metrics": {"velocity_error": {"values": {"model": 0.21, "oracle": 0.13, ...},
                                                           "floor": 0.13, "higher_is_better": false, ...}},
                            "skipped_metrics": {"velocity_error": {"copy-last": "reason"}},
                            "curves": {"drift_psnr_by_step": {"model": [...], ...}},
                            "extra": {"model": {...}, ...}, "seconds": {"model": 1.2, ...}}}}
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from playworld.data.store import Dataset
from playworld.errors import PlayworldError
from playworld.eval.api import (
    DatasetOracle,
    EvalContext,
    GroupResult,
    NotApplicable,
    Skip,
    TooFewEpisodes,
    calibration_baselines,
    get_groups,
)
from playworld.eval.report import write_report
from playworld.eval.verdict import read_training
from playworld.models.interface import WorldSpec
from playworld.runs.checkpoints import list_checkpoints, resolve_checkpoint
from playworld.runs.load import check_dataset_matches

MODEL = "model"
"""the name of the model under test in the results"""


def run_suite(
    model: Any, dataset: Any, run_dir: str | Path | None = None, groups: list[str] | None = None,
    episodes: int = 16, horizon: int = 64, seed: int = 0, device: str = "cpu", baselines: bool = True,
    progress: bool = True, step: int | None = None, out_dir: str | Path | None = None, label: str | None = None,
    strict: bool | None = None, full: bool = False,
) -> dict:
    """Evaluate `model` (a WorldModel, or a DatasetOracle) on `dataset` (a Dataset or its path).

    groups: names of metric groups (default: all registered). strict (default: True when `groups`
    is given) turns a group's "not applicable here" and "too few episodes" into a PlayworldError
    instead of a skipped entry: asking for physics on explorer by name is a user error.
    Writes <out>/eval/<step>.json and <out>/report.html when `run_dir` or `out_dir` is given (out
    defaults to the run; step defaults to the run's newest checkpoint). Each group's results are written
    as soon as it finishes, so an interrupted evaluation keeps them (the JSON says `"complete": false`).
    full: the groups' long settings (`playworld eval --full`) instead of the quick defaults.
    """

    dataset = dataset if hasattr(dataset, "episode_ids") else Dataset(dataset)
    spec: WorldSpec = model.spec
    _check_match(spec, dataset)
    if episodes < 1 or horizon < 1:
        raise PlayworldError(f"--episodes ({episodes}) and --horizon ({horizon}) must be at least 1", "pass e.g. --episodes 16 --horizon 64")
    test_eps = dataset.episode_ids("test")
    if not test_eps:
        raise PlayworldError(
            f"dataset {dataset.path} has no test episodes (it has {len(dataset)} in all); every metric needs at least 1",
            "collect more episodes (3 or more give every split one), e.g. `playworld collect ... --episodes 20`",
        )
    registry = get_groups()
    explicit = (groups is not None) if strict is None else bool(strict)
    names = list(registry) if groups is None else [g.strip() for g in groups if g.strip()]
    unknown = [g for g in names if g not in registry]
    if unknown or not names:
        raise PlayworldError(f"unknown metric group(s) {unknown or names}", f"choose from {', '.join(sorted(registry))}")

    # Groups may say up front why they cannot run here (fn.requires(dataset) -> reason or None):
    # a group asked for by name fails at once, before the others spend minutes.
    not_here = {g: why for g in names if (why := getattr(registry[g], "requires", lambda d: None)(dataset))}
    if explicit and not_here:
        g, why = next(iter(not_here.items()))
        raise _as_user_error(g, NotApplicable(why), dataset)

    ctx = EvalContext(dataset=dataset, spec=spec, split="test", episodes=int(episodes), horizon=int(horizon),
                      seed=int(seed), device=device, full=bool(full),
                      cache_dir=Path(run_dir) / "eval" / "cache" if run_dir is not None else None)
    models: dict[str, Any] = {MODEL: model}
    if baselines:
        pseudo = label is not None or isinstance(model, DatasetOracle)  # ignore-actions needs a trained model
        for name, b in calibration_baselines(None if pseudo else model, ctx).items():
            if name != label and not (isinstance(model, DatasetOracle) and name == "oracle"):
                models[name] = b

    results: dict[str, Any] = {
        "run": str(run_dir) if run_dir is not None else label, "label": label or MODEL,
        "step": _step(run_dir) if step is None else int(step),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "dataset": {"path": str(dataset.path), "world": dataset.world, "resolution": dataset.resolution,
                    "world_options": dataset.manifest.get("world_options") or {},
                    "distribution": "ood" if (dataset.manifest.get("world_options") or {}).get("ood") else "id",
                    "fingerprint": getattr(dataset, "fingerprint", None), "test_episodes": len(test_eps)},
        "settings": {"groups": names, "episodes": episodes, "horizon": horizon, "seed": seed, "device": device,
                     "context": spec.context, "full": bool(full)},
        "complete": False,
        "spec": spec.to_dict(), "models": list(models), "warnings": [], "groups": {},
        "training": read_training(run_dir),  # loss and val PSNR by step, for the report and the verdict
    }
    if spec.world and spec.world != dataset.world:
        results["warnings"].append(f"the model was trained on {spec.world!r}, the dataset holds {dataset.world!r}")
    videos: dict[str, np.ndarray] = {}
    out = Path(out_dir) if out_dir is not None else (Path(run_dir) if run_dir is not None else None)
    with _progress(progress) as bar:
        task = bar.add_task("evaluating", total=len(names) * len(models), what="")
        rollouts = bar.add_task("  rollout", total=None, what="")
        ctx.on_step = lambda what, done, total: bar.update(rollouts, completed=done, total=total, what=what)
        try:
            for g in names:
                _run_group(g, registry, not_here, models, ctx, explicit, dataset, results, videos, bar, task)
                if out is not None:  # a finished group is kept, even if a later one is interrupted
                    write_json(results, out)
        except KeyboardInterrupt:
            if out is not None:
                results["warnings"].append(f"interrupted: only {', '.join(results['groups']) or 'no group'} evaluated")
                results["paths"] = write_results(results, videos, out, fps=spec.fps)
            raise
    results["complete"] = True
    if out is not None:
        results["paths"] = write_results(results, videos, out, fps=spec.fps)
    return results


def _run_group(g, registry, not_here, models, ctx, explicit, dataset, results, videos, bar, task) -> None:
    """Group `g` on the model, then on each baseline, into results["groups"][g]."""
    entry = results["groups"][g] = {"skipped": None, "metrics": {}, "skipped_metrics": {}, "curves": {},
                                    "extra": {}, "seconds": {}}
    if g in not_here:
        entry["skipped"] = not_here[g]
        bar.advance(task, len(models))
        return
    for i, (who, m) in enumerate(models.items()):
        bar.update(task, description=f"{g} · {who}")
        t0 = time.perf_counter()
        try:
            res = registry[g](m, ctx)
        except Skip as e:
            if explicit and isinstance(e, (NotApplicable, TooFewEpisodes)):
                raise _as_user_error(g, e, dataset) from None
            if who == MODEL:  # the whole group cannot run here: no baseline can either
                entry["skipped"] = str(e)
                bar.advance(task, len(models))
                return
            res = GroupResult(skipped={"*": str(e)})
        entry["seconds"][who] = round(time.perf_counter() - t0, 3)
        _merge(entry, who, res)
        if who == MODEL:
            videos.update({f"{g}: {k}": v for k, v in res.videos.items()})
        bar.advance(task)


def write_json(results: dict, out: Path) -> Path:
    """out/eval/<step>.json, atomically."""
    (Path(out) / "eval").mkdir(parents=True, exist_ok=True)
    json_path = Path(out) / "eval" / f"{results['step']}.json"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=_json_default, allow_nan=False))
    tmp.replace(json_path)
    return json_path


def write_results(results: dict, videos: dict[str, np.ndarray], out: Path, fps: float = 10.0) -> dict[str, str]:
    """Write out/eval/<step>.json and out/report.html; returns their paths."""
    json_path = write_json(results, out)
    html_path = write_report(results, videos, out / "report.html", fps=fps)
    return {"json": str(json_path), "report": str(html_path)}


# -- helpers -------------------------------------------------------------------------------------
def _merge(entry: dict, who: str, res: GroupResult) -> None:
    for name, m in res.metrics.items():
        row = entry["metrics"].setdefault(name, {
            "description": m.description, "unit": m.unit, "higher_is_better": m.higher_is_better,
            "floor": _finite(m.floor), "values": {},
        })
        if row["floor"] is None and m.floor is not None and who == "oracle":
            row["floor"] = _finite(m.floor)
        row["values"][who] = _finite(m.value)
        if row["values"][who] is None:
            entry["skipped_metrics"].setdefault(name, {})[who] = f"not finite ({m.value})"
    for name, why in res.skipped.items():
        entry["skipped_metrics"].setdefault(name, {})[who] = str(why)
    for name, curve in res.curves.items():
        entry["curves"].setdefault(name, {})[who] = [_finite(x) for x in curve]
    if res.extra:
        entry["extra"][who] = res.extra


def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serialisable")


def _check_match(spec: WorldSpec, dataset) -> None:
    check_dataset_matches(spec, dataset, what="the model")


def _step(run_dir) -> int:
    """The step of the run's newest checkpoint (0 when the run has none, e.g. a pseudo-run)."""
    if run_dir is None:
        return 0

    if not list_checkpoints(run_dir):
        return 0
    name = resolve_checkpoint(run_dir).name
    return int(name) if name.isdigit() else 0


def _as_user_error(group: str, e: Skip, dataset) -> PlayworldError:
    if isinstance(e, TooFewEpisodes):
        return PlayworldError(f"{group}/{e.metric} needs {e.needed}; dataset {dataset.path} has {e.have}",
                              "collect more or longer test episodes, or leave the group out of --suite")
    return PlayworldError(f"the {group} metrics cannot run on {dataset.path}: {e}",
                          f"evaluate on a dataset of the right world, or leave {group} out of --suite")


class _Silent:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def advance(self, *a, **k):
        pass


def _progress(enabled: bool):
    """Two bars: the groups x models done, and the rollout running now (with its ETA)."""
    if not enabled:
        return _Silent()
    return Progress(TextColumn("{task.description:<28}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[what]}"),
                    console=Console(stderr=True), transient=False)
