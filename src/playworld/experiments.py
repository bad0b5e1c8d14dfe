"""The regimes experiment: does self forcing or diffusion forcing drift less than teacher forcing?

    result = regimes_experiment("runs/regimes", minutes=10)   # or `playworld experiment regimes`

For each world (explorer and physics/parabola) it collects one dataset, trains the same diffusion
model (one preset, one seed, `model.frame_noise_levels=true` for every variant so the networks are
identical) under each regime for the same budget of CPU time (`train.budget_clock=cpu`, so a run that
shares a busy machine is not cut short), then measures on the test split:

- autoregressive PSNR per step 1..H from real contexts with the real actions (eval/fidelity.py),
  its area under the curve (the mean over steps) and the steps before it first drops below a
  threshold;
- on physics worlds, Kang et al.'s velocity error of the generated frames (eval/physics.py).

It writes OUT/regimes.json (everything), OUT/regimes.md (one table) and OUT/regimes.png (PSNR
against horizon, one panel per world). Runs already trained in OUT are evaluated again, not retrained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.errors import PlayworldError
from playworld.eval.api import EvalContext, GroupResult, Skip
from playworld.eval.fidelity import FidelityConfig, autoregressive
from playworld.eval.physical import physics_group
from playworld.runs.checkpoints import list_checkpoints
from playworld.runs.load import load_world_model
from playworld.train.loop import OPEN_ENDED_STEPS, train

ONE_REGIME = ["train.regime_from=null", "train.regime_switch_step=0", "train.regime_ramp_steps=0"]
"""`--set`s that train one regime throughout, whatever schedule the preset gives (`small` ramps self forcing in)"""
VARIANTS: dict[str, list[str]] = {
    "teacher_forcing": ["train.regime=teacher_forcing", "train.context_noise=false", *ONE_REGIME],
    "context_noise": ["train.regime=teacher_forcing", "train.context_noise=true", *ONE_REGIME],
    "self_forcing": ["train.regime=self_forcing", "train.context_noise=false", *ONE_REGIME],
    "diffusion_forcing": ["train.regime=diffusion_forcing", *ONE_REGIME],
    "teacher_then_self": ["train.regime=self_forcing", "train.regime_from=teacher_forcing", "train.context_noise=false",
                          "train.regime_ramp_steps=0"],
}
"""regime variant -> the `--set` overrides that make it (on top of the shared ones); each names its whole
schedule, so a preset's own (the `small` preset ramps self forcing in) does not leak into it"""
WORLDS = ("explorer", "physics/parabola")


def regimes_experiment(
    out: str | Path, minutes: float = 10.0, steps: int | None = None, preset: str = "small",
    worlds: tuple[str, ...] = WORLDS, variants: tuple[str, ...] = tuple(VARIANTS), episodes: int = 200,
    episode_steps: int = 200, resolution: int = 64, horizon: int = 64, eval_episodes: int = 16,
    rollout: int = 4, switch_fraction: float = 0.5, threshold: float = 20.0, seed: int = 0,
    sets: list[str] | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Train every variant on every world for `minutes` (and at most `steps`), evaluate, write the report."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise PlayworldError(f"unknown regime variant(s): {', '.join(unknown)}", f"choose from {', '.join(VARIANTS)}")
    if minutes <= 0 and steps is None:
        raise PlayworldError("the experiment needs a budget", "pass --minutes M (the same for every variant) and/or --steps N")
    out = Path(out)
    results: dict[str, Any] = {"config": {
        "minutes": minutes, "steps": steps, "preset": preset, "episodes": episodes, "episode_steps": episode_steps,
        "resolution": resolution, "horizon": horizon, "eval_episodes": eval_episodes, "rollout": rollout,
        "switch_fraction": switch_fraction, "threshold_db": threshold, "seed": seed, "sets": list(sets or []),
        "variants": {v: VARIANTS[v] for v in variants},
    }, "worlds": {}}
    for world in worlds:
        data = _dataset(out / "data" / world.replace("/", "_"), world, episodes, episode_steps, resolution, seed, progress)
        per_variant = {}
        for variant in variants:
            run = out / "runs" / world.replace("/", "_") / variant
            trained = _train(run, data, variant, minutes, steps, preset, rollout, switch_fraction, seed, sets, progress)
            per_variant[variant] = {**trained, **evaluate_drift(run, data, horizon, eval_episodes, threshold, seed)}
        results["worlds"][world] = per_variant
    out.mkdir(parents=True, exist_ok=True)
    (out / "regimes.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "regimes.md").write_text(markdown_table(results))
    plot(results, out / "regimes.png")
    return results


def _dataset(path: Path, world: str, episodes: int, steps: int, resolution: int, seed: int, progress: bool):
    if (path / "manifest.json").is_file():
        return Dataset(path)
    return collect(world, path, episodes=episodes, steps=steps, resolution=resolution, seed=seed, progress=progress)


def _train(run: Path, data, variant: str, minutes: float, steps: int | None, preset: str, rollout: int,
           switch_fraction: float, seed: int, sets: list[str] | None, progress: bool) -> dict[str, Any]:
    """Train one variant (a run in `run` that used its whole budget is reused; one cut short, e.g. by
    Ctrl-C, is resumed for the rest of it); returns its step count and training minutes."""

    if not list_checkpoints(run):
        overrides = ["model.frame_noise_levels=true", f"train.rollout={rollout}", f"train.seed={seed}",
                     "train.media_every=0", "train.budget_clock=cpu", *VARIANTS[variant], *(sets or [])]
        if variant == "teacher_then_self":
            # the switch is a step number: under a time budget, place it from the teacher-forcing speed
            # of a run of the same preset (the first variant trained), else from --steps
            overrides.append(f"train.regime_switch_step={_switch_step(run.parent, steps, switch_fraction)}")
        train(run, data=data.path, model="diffusion", preset=preset, sets=overrides, steps=steps or OPEN_ENDED_STEPS,
              minutes=minutes if minutes > 0 else None, progress=progress)  # no time budget: --steps alone
    else:
        ends = [x for x in _metrics(run) if x.get("kind") == "end"]
        if not any(x.get("reason") in ("time", "steps") for x in ends):  # cut short: train the rest
            used = sum(float(x.get("minutes", 0.0)) for x in ends)
            train(run, resume=True, steps=steps or OPEN_ENDED_STEPS, minutes=max(minutes - used, 0.01) if minutes > 0 else 0.0,
                  progress=progress)
    lines = _metrics(run)
    return {"train_steps": max((x["step"] for x in lines), default=0),
            "train_minutes": sum(float(x.get("minutes", 0.0)) for x in lines if x.get("kind") == "end")}


def _metrics(run: Path) -> list[dict]:
    """The lines of the run's metrics.jsonl ([] when it has none, e.g. a folder left by a crash)."""
    path = run / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _switch_step(world_runs: Path, steps: int | None, fraction: float) -> int:
    for name in ("teacher_forcing", "context_noise"):
        lines = _metrics(world_runs / name)
        if lines:
            return int(max(x["step"] for x in lines) * fraction)
    return int((steps or 0) * fraction)


def evaluate_drift(run: Path, data, horizon: int, episodes: int, threshold: float, seed: int) -> dict[str, Any]:
    """Autoregressive PSNR by step, its AUC and steps above `threshold`; velocity error on physics worlds."""
    wm = load_world_model(run)
    ctx = EvalContext(dataset=data, spec=wm.spec, split="test", episodes=episodes, horizon=horizon, seed=seed)
    res = GroupResult()
    autoregressive(wm, ctx, FidelityConfig(psnr_threshold=threshold), res)
    out = {"psnr_by_step": res.curves["psnr_by_step"], "psnr_auc": res.metrics["psnr_auc"].value,
           "steps_above_threshold": res.metrics["psnr_steps_above_threshold"].value,
           "horizon": res.extra["rollout"]["horizon"], "rollouts": res.extra["rollout"]["windows"]}
    if data.world.startswith("physics/"):
        try:
            phys = physics_group(wm, ctx)
        except Skip as e:
            out["velocity_error_skipped"] = str(e)
        else:
            v = phys.metrics.get("velocity_error")
            out["velocity_error"] = v.value if v is not None else None
            out["velocity_error_floor"] = phys.extra.get("velocity_error_floor")
    return out


def markdown_table(results: dict[str, Any]) -> str:
    cfg = results["config"]
    lines = [f"# Training regimes against drift ({cfg['minutes']:g} CPU-min each, preset {cfg['preset']}, seed {cfg['seed']})", "",
             "drop@8: PSNR@1 minus the mean PSNR over steps 6-10, the early fall that compounding error causes (a model",
             "can start lower and fall less: compare both). On physics worlds PSNR rises again late, as balls leave the frame.", "",
             "| world | regime | train steps | PSNR@1 dB | drop@8 dB | PSNR@H dB | H | drift AUC dB | steps >= "
             f"{cfg['threshold_db']:g} dB | velocity error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for world, per in results["worlds"].items():
        for variant, r in per.items():
            curve = r["psnr_by_step"]
            vel = r.get("velocity_error")
            drop = curve[0] - float(np.mean(curve[5:10])) if len(curve) >= 10 else float("nan")
            lines.append(f"| {world} | {variant} | {r['train_steps']} | {curve[0]:.2f} | {drop:.2f} | {curve[-1]:.2f} | {r['horizon']} | "
                         f"{r['psnr_auc']:.2f} | {r['steps_above_threshold']:.0f} | {'-' if vel is None else f'{vel:.4f}'} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    matplotlib.use("Agg")

    worlds = list(results["worlds"])
    fig, axes = plt.subplots(1, len(worlds), figsize=(5.5 * len(worlds), 4), squeeze=False)
    for ax, world in zip(axes[0], worlds):
        for variant, r in results["worlds"][world].items():
            curve = np.asarray(r["psnr_by_step"])
            ax.plot(np.arange(1, len(curve) + 1), curve, label=f"{variant} (AUC {r['psnr_auc']:.1f})")
        ax.axhline(results["config"]["threshold_db"], color="grey", lw=0.8, ls="--")
        ax.set(title=world, xlabel="autoregressive step", ylabel="PSNR (dB)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
