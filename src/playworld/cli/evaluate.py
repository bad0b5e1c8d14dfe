"""`playworld eval RUN --data DATA`: the evaluation suite, written to RUN/eval/<step>.json and RUN/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from playworld.cli.common import threads_option, use_threads

PSEUDO_RUNS = ("oracle", "copy-last")


def eval_cmd(
    run: str = typer.Argument(..., help="Run directory written by `playworld train`, or the pseudo-run `oracle` (the real world) or `copy-last` (repeats the last frame) to calibrate the metrics."),
    data: Path = typer.Option(..., "--data", help="Dataset to evaluate on (its test split), e.g. data/explorer. Must match the run's resolution and action space."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Comma-separated metric groups, e.g. fidelity,controllability,physics,coherence (default: all; a group asked for by name that cannot run here is an error)."),
    episodes: int = typer.Option(16, "--episodes", help="Evaluation windows drawn per metric from the test split (one per episode first)."),
    horizon: int = typer.Option(64, "--horizon", help="Autoregressive rollout length H in steps for the per-step curves."),
    seed: int = typer.Option(0, "--seed", help="Seeds the windows, random actions and sampling; the same seed gives the same report."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Also score the oracle, copy-last and ignore-actions baselines (slower, but every metric then shows its calibration)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write eval/<step>.json and report.html (default: the run directory; for a pseudo-run runs/<name>-<dataset>)."),
    context: int = typer.Option(4, "--context", help="Pseudo-runs only: context length K the oracle/copy-last are given."),
    device: str = typer.Option("cpu", "--device", help="Torch device for the model, e.g. cpu or cuda."),
    full: bool = typer.Option(False, "--full", help="The long evaluation: every group at its full size (more windows, "
                              "longer loops, the planner among the ranked policies); tens of minutes on a laptop CPU."),
    threads: Optional[int] = threads_option(),
) -> None:
    """Evaluate a trained world model against the calibration baselines and write an HTML report.

    Example: playworld eval runs/quickstart --data data/explorer --suite fidelity,coherence
    """
    from playworld.data.store import Dataset
    from playworld.eval.suite import run_suite

    use_threads(threads)
    dataset = Dataset(data)
    model, run_dir, label = _load(run, dataset, context, device)
    if out is None and run_dir is None:
        out = Path("runs") / f"{run}-{Path(data).resolve().name}"
    groups = [g for g in suite.split(",")] if suite else None
    results = run_suite(model, dataset, run_dir=run_dir, groups=groups, episodes=episodes, horizon=horizon, seed=seed,
                        device=device, baselines=baselines, out_dir=out, label=label, full=full)
    _print_summary(results)


def _load(run: str, dataset, context: int, device: str):
    """-> (model, run_dir or None, label or None). A missing run is a PlayworldError."""
    from playworld.errors import PlayworldError
    from playworld.models.interface import WorldSpec

    if run in PSEUDO_RUNS and not Path(run).exists():
        if context < 1:
            raise PlayworldError(f"--context must be at least 1, got {context}", "pass e.g. --context 4")
        spec = WorldSpec(resolution=dataset.resolution, action_space=dataset.action_space, context=context,
                         fps=dataset.fps, world=dataset.world)
        if run == "oracle":
            from playworld.eval.api import DatasetOracle

            return DatasetOracle(dataset, spec), None, run
        from playworld.models.baselines import CopyLast

        return CopyLast(spec, device=device), None, run
    if not Path(run).is_dir():
        raise PlayworldError(f"run directory {run} does not exist",
                             f"pass the --out folder of a `playworld train` run, or one of the pseudo-runs {', '.join(PSEUDO_RUNS)}")
    import playworld

    return playworld.load(run, device=device), Path(run), None


def _print_summary(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    models = results["models"]
    table = Table(title=f"{results['label']} on {results['dataset']['world']} (step {results['step']})")
    table.add_column("metric", justify="left", no_wrap=True)
    for col in ("", "floor", *models):
        table.add_column(col, justify="right")
    for g, entry in results["groups"].items():
        if entry["skipped"]:
            table.add_row(f"[dim]{g}: skipped ({entry['skipped']})[/]")
            continue
        for name, row in entry["metrics"].items():
            vals = [_fmt(row["values"].get(m)) for m in models]
            table.add_row(f"{g}/{name}", "↑" if row["higher_is_better"] else "↓", _fmt(row["floor"], "-"), *vals)
    console.print(table)
    for w in results.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    if "paths" in results:
        console.print(f"results: {results['paths']['json']}\nreport:  {results['paths']['report']}")


def _fmt(v, missing: str = "skipped") -> str:
    return missing if v is None else f"{v:.4g}"


def register(app: typer.Typer) -> None:
    app.command("eval", help=eval_cmd.__doc__, rich_help_panel="3. Play and evaluate")(eval_cmd)
