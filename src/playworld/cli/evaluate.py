"""`playworld eval RUN --data DATA`: the evaluation suite, written to RUN/eval/<step>.json and RUN/report.html."""

from __future__ import annotations

import re
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
    sampling_steps: Optional[int] = typer.Option(
        None, "--sampling-steps", min=1,
        help="Evaluate with this many denoising steps instead of those the run was trained with (models with a "
             "tunable sampler: diffusion, clip), to weigh quality against the cost per frame; the report goes to "
             "RUN/sampling-steps-N unless --out says otherwise."),
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
    if sampling_steps is not None:
        from playworld.errors import PlayworldError
        from playworld.models.interface import TunableSampler

        if not isinstance(model, TunableSampler):
            raise PlayworldError(f"{run} has no tunable sampler, so --sampling-steps has nothing to change",
                                 "drop --sampling-steps (diffusion and clip runs take it)")
        model.set_sampling_steps(sampling_steps)  # a value out of the model's range is its own clear error
        if out is None and run_dir is not None:  # keep the report of the run as trained
            out = run_dir / f"sampling-steps-{sampling_steps}"
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


def _print_summary(results: dict, console=None) -> None:
    """One table per metric group, narrow enough for 80 columns (metric names wrap at '_'), then the
    sanity checks and the verdict (eval/verdict.py) in a few plain lines."""
    from rich.console import Console
    from rich.markup import escape

    from playworld.eval import verdict as V

    console = console or Console()
    console.print(f"{results['label']} on {results['dataset']['world']} (step {results['step']})", highlight=False)
    for g, entry in results["groups"].items():
        if entry["skipped"]:
            console.print(f"{g}: skipped ({entry['skipped']})", style="dim", highlight=False, markup=False)
            continue
        console.print(_group_table(g, entry, results["models"], console.width), highlight=False)
    for w in results.get("warnings", []):
        console.print(f"[yellow]warning:[/] {escape(w)}")
    for line in V.verdict_lines(V.verdict(results), width=console.width):
        console.print(line, highlight=False, markup=False)
    if "paths" in results:
        console.print(f"results: {results['paths']['json']}\nreport:  {results['paths']['report']}", highlight=False, markup=False)


SHORT = {"copy-last": "copy\nlast", "ignore-actions": "ignore\nactions"}


def _group_table(group: str, entry: dict, models: list[str], width: int):
    """The group's metrics as a rich Table: metric, direction, best possible, then one column per model."""
    from rich import box
    from rich.table import Table

    from playworld.eval import verdict as V

    rows = []
    for name, row in entry["metrics"].items():
        if V.is_sanity(group, name):
            continue
        best = row["floor"]
        rows.append((V.display_name(name), "↑" if row["higher_is_better"] else "↓",
                     _fmt(V.display(name, best), "-") + ("*" if V.is_capped(best) else ""),
                     *(_fmt(V.display(name, row["values"].get(m))) for m in models)))
    heads = ["best\npossible", *(SHORT.get(m, m) for m in models)]
    value_widths = [max([len(line) for line in h.split("\n")] + [len(r[2 + i]) for r in rows]) for i, h in enumerate(heads)]
    n = len(heads) + 2  # + the metric and the arrow (1 wide); per column 2 of padding (none at the edges), 1 between
    name_width = max(12, width - sum(value_widths) - 1 - (2 * n - 2) - (n - 1))
    table = Table(title=group, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("metric", justify="left", overflow="fold", max_width=name_width)
    table.add_column("", no_wrap=True)
    for h in heads:
        table.add_column(h, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(_wrap_name(r[0], name_width), *r[1:])
    if any(V.is_capped(entry["metrics"][n]["floor"]) for n in entry["metrics"]):
        table.caption, table.caption_justify = f"* the PSNR cap of exact frames ({V.PSNR_CAP:g} dB): a ceiling no model nears", "left"
    return table


def _wrap_name(name: str, width: int) -> str:
    """Break a metric name after its underscores so each line fits `width` (a part longer than that stays whole)."""
    lines, line = [], ""
    for part in re.split(r"(?<=_)", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


def _fmt(v, missing: str = "skipped") -> str:
    return missing if v is None else f"{v:.4g}"


def register(app: typer.Typer) -> None:
    app.command("eval", help=eval_cmd.__doc__, rich_help_panel="3. Play and evaluate")(eval_cmd)
