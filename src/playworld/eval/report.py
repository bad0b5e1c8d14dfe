"""The evaluation report: ONE self-contained HTML file, readable offline.

Everything is inline: the CSS, the figures (matplotlib PNGs as base64 data URIs) and the videos
(the real world left, the model right, labelled; H.264 mp4 as base64 data URIs in <video> tags).
Sections, top to bottom:

- the verdict (eval/verdict.py): how the model compares with copy-last and the oracle over the
  horizon, in words and one picture; which groups pass their baselines; what to try next;
- the summary table: metric, direction, best possible (what a perfect model scores: a floor for
  errors, a ceiling for PSNR), model, baselines, and how the model compares; KID x1000;
- closed-loop goals (eval/goals.py), when evaluated: per task, the success, steps and planning seconds of
  the planner in the model, in the real world and of the random policy; across families (the goals
  bench's page, whose columns are families), and how each pixel metric ranks the families against
  their success (Spearman);
- sanity checks of the instruments (e.g. the frame-shuffle check), apart from the model's metrics;
- training curves (loss and validation PSNR from the run's metrics.jsonl);
- per-step curves, with values capped at metrics.PSNR_CAP (the oracle's exact frames) kept off the
  axis range and named in the legend, so the model and the baselines stay apart;
- videos, skipped metrics with their reasons, and the settings.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import tempfile
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from playworld.eval import verdict as V
from playworld.media import write_video

BASELINE_ORDER = ("oracle", "copy-last", "ignore-actions")
COLORS = {"model": "#1f5fbf", "oracle": "#888888", "copy-last": "#e07b00", "ignore-actions": "#2a9d4b"}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem auto;max-width:1200px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .2rem} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.meta{color:#555;font-size:.9rem} table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.35rem .5rem;text-align:right;vertical-align:top}
th{background:#f5f5f7;position:sticky;top:0} td.name,th.name{text-align:left} td.desc{font-size:.75rem;color:#666;text-align:left}
tr.group td{background:#fafafa;font-weight:600;text-align:left} td.model{font-weight:600} td.skip{color:#aaa}
td.win{background:#e6f4ea} td.lose{background:#fde8e8} td.vs{text-align:left;font-size:.8rem;color:#444}
.figs{display:flex;flex-wrap:wrap;gap:1rem} .figs figure{margin:0} .figs img{max-width:560px;width:100%}
video{image-rendering:pixelated;width:100%;max-width:560px;background:#000} figcaption{font-size:.85rem;color:#444}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem .8rem} code,pre{font-size:.8rem}
#verdict{display:flex;gap:1.2rem;align-items:flex-start;margin-top:.8rem} #verdict .words{flex:1 1 0;min-width:300px}
#verdict h2{margin-top:0} #verdict img{width:520px;max-width:45vw}
#verdict-headline{font-size:1.15rem;line-height:1.4;padding:.6rem .8rem;border-left:6px solid #888;background:#f7f7f9}
.level-beats{border-color:#2a9d4b!important} .level-mixed{border-color:#e0a800!important} .level-loses{border-color:#d03030!important}
ul.groups,ul.next{margin:.4rem 0;padding-left:1.2rem;font-size:.92rem} .pill{display:inline-block;min-width:4.2rem;text-align:center;
border-radius:.6rem;padding:0 .4rem;font-size:.78rem;color:#fff;background:#999;margin-right:.3rem}
.pill.pass{background:#2a9d4b} .pill.partial{background:#e0a800} .pill.fail{background:#d03030}
"""


def write_report(results: dict, videos: dict[str, np.ndarray], path: str | Path, fps: float = 10.0) -> Path:
    """Render `results` (the suite's JSON) and `videos` (name -> (T, H, W, 3) u8) into one HTML file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(build_report(results, videos, fps), encoding="utf-8")
    tmp.replace(path)
    return path


def build_report(results: dict, videos: dict[str, np.ndarray], fps: float = 10.0) -> str:
    if "training" not in results:  # the run's own log, when the results came from a run directory
        results = {**results, "training": V.read_training(results["run"]) if _is_dir(results.get("run")) else None}
    models = list(results.get("models", ["model"]))
    columns = (["model"] if "model" in models else []) + [b for b in BASELINE_ORDER if b in models] + [
        m for m in models if m not in BASELINE_ORDER and m != "model"]  # a page of many models (the goals bench) has no "model"
    ds = results.get("dataset", {})
    title = f"playworld eval: {results.get('label') or results.get('run') or 'model'} on {ds.get('world', '?')}"
    verdict = V.verdict(results)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>run <code>{_e(results.get('run'))}</code> · step {_e(results.get('step'))} · dataset "
        f"<code>{_e(ds.get('path'))}</code> ({_e(ds.get('world'))}, {_e(ds.get('distribution', ''))}, "
        f"{_e(ds.get('test_episodes'))} test episodes) · {_e(results.get('created'))}</p>",
    ]
    if results.get("complete") is False:
        parts.append("<p class='warn'>This evaluation is incomplete (interrupted, or still running): the groups that finished are shown.</p>")
    parts += [f"<p class='warn'>{_e(w)}</p>" for w in results.get("warnings", [])]
    parts += _verdict(verdict, results)
    parts += _summary(results, columns, verdict)
    parts += _goals(results, columns)
    parts += _sanity(results, verdict)
    parts += _training(results.get("training"))
    parts += _curves(results, columns)
    parts += _videos(videos, fps)
    parts += _skipped(results)
    settings = {k: results.get(k) for k in ("settings", "spec", "dataset")}
    parts.append("<h2 id='settings'>Settings</h2><details><summary>settings and per-model details (JSON)</summary><pre>"
                 + _e(json.dumps({**settings, "extra": {g: v.get("extra") for g, v in results.get("groups", {}).items()}},
                                 indent=1, default=str)) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


# -- sections ------------------------------------------------------------------------------------
def _verdict(v: V.Verdict, results: dict) -> list[str]:
    level = {"beats copy-last": "beats", "mixed": "mixed", "loses to copy-last": "loses"}.get(v.level, "unknown")
    groups = "".join(f"<li><span class='pill {_e(g.status)}'>{_e(g.status)}</span><b>{_e(name)}</b>: {_e(g.summary)}</li>"
                     for name, g in v.groups.items())
    tips = "".join(f"<li>{_e(t)}</li>" for t in v.next_steps)
    out = ["<section id='verdict'><div class='words'><h2 id='verdict-title'>Verdict</h2>",
           f"<p id='verdict-headline' class='level-{level}'>{_e(v.headline)}</p>",
           "<p class='meta'>Groups, against the baselines (pass: better than every baseline on every metric):</p>",
           f"<ul class='groups' id='verdict-groups'>{groups}</ul>",
           f"<p class='meta'><b>What to try next</b></p><ul class='next' id='next-steps'>{tips}</ul></div>"]
    if v.horizon is not None:
        curves = _group_curves(results, *v.horizon.curve.split("/"))
        out.append(f"<figure><img id='verdict-figure' alt='model vs copy-last per step' "
                   f"src='data:image/png;base64,{_horizon_png(v.horizon, curves)}'>"
                   f"<figcaption>{_e(v.horizon.curve)}: green where the model beats copy-last, red where it is worse"
                   "</figcaption></figure>")
    out.append("</section>")
    return out


def _summary(results: dict, columns: list[str], verdict: V.Verdict) -> list[str]:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    out = ["<h2 id='summary'>Summary</h2>",
           "<p class='meta'>&uarr; higher is better, &darr; lower is better. <b>best possible</b>: what a perfect model "
           "scores here (the real world's own value, or the ground-truth parsing floor): a floor for errors, a ceiling "
           f"for PSNR and accuracies; for PSNR it is the {V.PSNR_CAP:g} dB cap of exact frames, which no model nears. "
           "Baselines: <b>oracle</b> replays the real world, <b>copy-last</b> repeats the last context frame, "
           "<b>ignore-actions</b> is the model fed random actions. KID is shown &times;1000, as papers report it. "
           "Green: better than every baseline; red: worse than copy-last.</p>",
           f"<table id='summary-table'><thead><tr><th class='name'>metric</th><th></th><th>best possible</th>{head}"
           "<th class='name'>unit</th><th class='name'>the model vs the baselines</th></tr></thead><tbody>"]
    for g, entry in results.get("groups", {}).items():
        out.append(f"<tr class='group'><td colspan='{len(columns) + 5}'>{_e(g)}"
                   + (f" <span class='skip'>(skipped: {_e(entry['skipped'])})</span>" if entry.get("skipped") else "")
                   + "</td></tr>")
        checks = {c.name: c for c in verdict.groups[g].checks}
        for name, row in entry.get("metrics", {}).items():
            if V.is_sanity(g, name):
                continue
            chk = checks.get(name)
            won = "win" if chk and chk.vs and all(chk.wins(b) for b in chk.vs) else (
                "lose" if chk and chk.vs.get("copy-last", 0) < 0 else "")
            arrow = "&uarr;" if row.get("higher_is_better") else "&darr;"
            cells = [_value_cell(g, entry, name, row, c, f"model {won}" if c == "model" else "") for c in columns]
            best = row.get("floor")
            best_text = f"{_fmt(V.display(name, best))} (cap)" if V.is_capped(best) else _fmt(V.display(name, best))
            out.append(f"<tr class='metric'><td class='name'>{_e(V.display_name(name))}<div class='desc'>"
                       f"{_e(row.get('description', ''))}</div></td><td>{arrow}</td><td>{best_text}</td>{''.join(cells)}"
                       f"<td class='name'>{_e(row.get('unit', ''))}</td><td class='vs'>{_e(_vs_text(chk))}</td></tr>")
    out.append("</tbody></table>")
    return out


def _goals(results: dict, columns: list[str]) -> list[str]:
    """Closed-loop goals: a row per (task, who); random is the copy-last row (planning in it acts at random)."""
    entry = results.get("groups", {}).get("goals")
    if not entry or entry.get("skipped"):
        return []
    names = {"oracle": "real world (upper bound)", "copy-last": "random (lower bound)"}
    order = [c for c in columns if c not in names] + [c for c in columns if c in names]  # models first, then the bounds
    who = [c for c in order if c != "ignore-actions" and (entry.get("extra") or {}).get(c)]
    tasks = list(entry["extra"][who[0]]["tasks"]) if who else []
    head = "".join(f"<th>{_e(t)}</th>" for t in tasks)
    rows = []
    for w in who:
        got = entry["extra"][w]["tasks"]
        cells = "".join("<td>{}</td>".format(
            f"{got[t]['success']:.2f} &middot; {_fmt(got[t]['steps'])} steps &middot; {got[t]['plan_seconds']:.3f} s"
            if t in got else "&ndash;") for t in tasks)
        rows.append(f"<tr><td class='name'>{_e(names.get(w, w))}</td>{cells}</tr>")
    out = ["<h2 id='goals'>Closed-loop goals</h2>",
           "<p class='meta'>Planning toward a goal view inside each model (CEM, replanning every real step), acting in "
           "the real world. Each cell: success rate &middot; mean steps to the first success &middot; planning CPU "
           "seconds per real step. <b>real world</b>: the same planner with the real world as its model; "
           "<b>random</b>: random actions.</p>",
           f"<table id='goals-table'><thead><tr><th class='name'></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"]
    corr = results.get("goals_correlation")
    if corr:  # the goals bench: how well each pixel metric orders the families by closed-loop success
        body = "".join(f"<tr><td class='name'>{_e(m)}</td><td>{_fmt(c.get('spearman'))}</td><td class='name'>{_e(c.get('note', ''))}"
                       "</td></tr>" for m, c in corr.items())
        out.append("<p class='meta'>Do pixel metrics predict closed-loop success? Spearman rank correlation across the "
                   "families of each metric (oriented so that better is higher) with their mean success over the tasks.</p>"
                   f"<table id='goals-correlation'><thead><tr><th class='name'>pixel metric</th><th>Spearman</th>"
                   f"<th class='name'></th></tr></thead><tbody>{body}</tbody></table>")
    return out


def _sanity(results: dict, verdict: V.Verdict) -> list[str]:
    out = ["<h2 id='sanity'>Sanity checks</h2>",
           "<p class='meta'>Do the instruments work on this data? These measure real data and the helper networks, "
           "not the model; a failed check means the numbers it names cannot be trusted here.</p>"]
    rows = "".join(f"<tr class='check'><td class='name'>{_e(s.group)}</td><td class='name'>{_e(s.name)}</td>"
                   f"<td class='{'win' if s.passed else 'lose'}'>{'passed' if s.passed else 'FAILED'}</td>"
                   f"<td class='name'>{_e(s.detail)}</td></tr>" for s in verdict.sanity)
    out.append("<table id='sanity-table'><thead><tr><th class='name'>group</th><th class='name'>check</th><th>result</th>"
               f"<th class='name'>detail</th></tr></thead><tbody>{rows}</tbody></table>" if rows
               else "<p class='meta'>no sanity check ran in this evaluation</p>")
    metrics = [(g, n, r) for g, e in results.get("groups", {}).items() for n, r in e.get("metrics", {}).items() if V.is_sanity(g, n)]
    if metrics:  # computed on real clips only: the same for every model, so shown once
        body = "".join(f"<tr class='sanity-metric'><td class='name'>{_e(g)}/{_e(n)}<div class='desc'>{_e(r.get('description', ''))}"
                       f"</div></td><td>{_fmt(r.get('floor'))}</td>"
                       f"<td>{_fmt(next((v for v in r['values'].values() if v is not None), None))}</td></tr>"
                       for g, n, r in metrics)
        out.append("<table id='sanity-metrics'><thead><tr><th class='name'>measured on real clips</th><th>real vs real</th>"
                   f"<th>this check</th></tr></thead><tbody>{body}</tbody></table>")
    return out


def _training(training: dict | None) -> list[str]:
    out = ["<h2 id='training'>Training</h2>"]
    if not training or not (training.get("loss") or training.get("val_psnr")):
        return out + ["<p class='meta'>no training log (metrics.jsonl) beside these results</p>"]
    trend = V.val_trend(training)
    said = [f"{training.get('family') or 'model'} trained with {str(training.get('regime') or '?').replace('_', ' ')}"
            + ("" if training.get("context_noise") is None else f", context noise {'on' if training['context_noise'] else 'off'}")]
    if trend:
        said.append(f"validation PSNR {trend[0]} over the second half ({trend[1]:+.2f} dB)")
    return out + [f"<p class='meta'>{_e('; '.join(said))}</p>",
                  f"<figure><img id='training-figure' alt='training loss and validation PSNR' "
                  f"src='data:image/png;base64,{_training_png(training)}'></figure>"]


def _curves(results: dict, columns: list[str]) -> list[str]:
    figs = []
    for g, entry in results.get("groups", {}).items():
        for name, by_model in entry.get("curves", {}).items():
            png = _curve_png(f"{g}: {name}", {c: by_model[c] for c in columns if c in by_model}, name)
            figs.append(f"<figure><img alt='{_e(g)} {_e(name)}' src='data:image/png;base64,{png}'>"
                        f"<figcaption>{_e(g)}: {_e(name)}</figcaption></figure>")
    if not figs:
        return ["<h2 id='curves'>Curves</h2><p class='meta'>no per-step curves in this evaluation</p>"]
    return ["<h2 id='curves'>Curves</h2><p class='meta'>A curve that would squash the others (the oracle's exact "
            f"frames at the {V.PSNR_CAP:g} dB cap) is left off the axis range and named in the legend.</p>"
            "<div class='figs'>", *figs, "</div>"]


def _videos(videos: dict[str, np.ndarray], fps: float) -> list[str]:
    if not videos:
        return ["<h2 id='videos'>Videos</h2><p class='meta'>no videos in this evaluation</p>"]
    out = ["<h2 id='videos'>Videos</h2><p class='meta'>left: the real world, right: the model, driven by the same actions</p>",
           "<div class='figs'>"]
    for name, frames in videos.items():
        data = _mp4_base64(frames, fps)
        out.append(f"<figure><video controls autoplay loop muted playsinline src='data:video/mp4;base64,{data}'></video>"
                   f"<figcaption>{_e(name)} ({len(frames)} frames)</figcaption></figure>")
    out.append("</div>")
    return out


def _skipped(results: dict) -> list[str]:
    items = []
    for g, entry in results.get("groups", {}).items():
        if entry.get("skipped"):
            items.append(f"<li><b>{_e(g)}</b> (all metrics): {_e(entry['skipped'])}</li>")
        for name, by_model in entry.get("skipped_metrics", {}).items():
            if len(set(by_model.values())) == 1:  # the same reason for every model: say it once
                whys = f"{_e(next(iter(by_model.values())))} ({_e(', '.join(by_model))})"
            else:
                whys = "; ".join(f"{_e(m)}: {_e(w)}" for m, w in by_model.items())
            items.append(f"<li><b>{_e(g)}/{_e(name)}</b>: {whys}</li>")
    body = f"<ul id='skipped-list'>{''.join(items)}</ul>" if items else "<p class='meta'>nothing was skipped</p>"
    return ["<h2 id='skipped'>Skipped metrics</h2>", body]


# -- plots ---------------------------------------------------------------------------------------
def plot_range(by_model: dict[str, list], curve: str = "") -> tuple[tuple[float, float] | None, dict[str, str]]:
    """-> (y range, {series: why it is left off the scale}) for a per-step curve.

    For PSNR curves, values at the cap (exact frames: the oracle) never set the range. The range is
    that of the model and the baselines other than the oracle; the oracle joins it when it lies within
    two spans of it, and is otherwise named off the scale (e.g. its delta-PSNR of ~70 dB)."""
    capped = "psnr" in curve

    def finite(ys):
        return [float(v) for v in ys if v is not None and math.isfinite(v) and not (capped and V.is_capped(v))]

    core = [v for who, ys in by_model.items() if who != "oracle" for v in finite(ys)]
    off: dict[str, str] = {}
    for who, ys in by_model.items():
        if capped and ys and all(V.is_capped(v) for v in ys if v is not None):
            off[who] = f"{V.PSNR_CAP:g} dB at every step (exact frames, capped)"
    if not core:
        core = [v for ys in by_model.values() for v in finite(ys)]
        if not core:
            return None, off
    lo, hi = min(core), max(core)
    span = max(hi - lo, 1e-6 + 0.05 * abs(hi))
    for who, ys in by_model.items():
        vals = finite(ys)
        if who in off or not vals or who != "oracle":
            continue
        if min(vals) >= lo - 2 * span and max(vals) <= hi + 2 * span:
            lo, hi = min(lo, min(vals)), max(hi, max(vals))
        else:
            off[who] = f"{min(vals):.3g} to {max(vals):.3g}, off the scale"
    pad = 0.06 * max(hi - lo, 1e-6 + 0.05 * abs(hi))
    return (lo - pad, hi + pad), off


def _plot_series(ax, by_model: dict[str, list], curve: str) -> None:
    yr, off = plot_range(by_model, curve)
    for who, ys in by_model.items():
        y = np.array([np.nan if v is None else v for v in ys], np.float64)
        exact = sum(V.is_capped(v) for v in ys) if "psnr" in curve else 0  # e.g. copy-last on a still scene
        label = f"{who}: {off[who]}" if who in off else f"{who} (exact at {exact} steps: the cap, above the axis)" if exact else who
        style = {"color": COLORS.get(who), "linewidth": 2.4 if who == "model" else 1.4}
        if who in off:  # in the legend only: its values would squash the others
            ax.plot([], [], linestyle=":", label=label, **style)
        else:
            ax.plot(np.arange(1, len(y) + 1), y, label=label, **style)
    if yr is not None:
        ax.set_ylim(*yr)


def _horizon_png(hz: V.Horizon, by_model: dict[str, list]) -> str:
    fig, ax = _figure(figsize=(5.6, 3.4))
    _plot_series(ax, {k: v for k, v in by_model.items() if k in COLORS}, hz.curve)
    x = np.arange(1, len(hz.model) + 1)
    m, c = np.array(hz.model), np.array(hz.copy_last)
    ax.fill_between(x, m, c, where=np.array(hz.order) >= 0, color="#2a9d4b", alpha=0.18, interpolate=True)
    ax.fill_between(x, m, c, where=np.array(hz.order) < 0, color="#d03030", alpha=0.18, interpolate=True)
    if 0 < hz.beats_until < len(hz.order):
        ax.axvline(hz.beats_until + 0.5, color="#555", linestyle="--", linewidth=1)
        ax.annotate(f"step {hz.beats_until}", (hz.beats_until + 0.5, 0.96), xycoords=("data", "axes fraction"),
                    fontsize=8, ha="left", va="top")
    ax.set_title("model vs copy-last per step", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR (dB)")
    return _png(fig, ax)


def _curve_png(title: str, by_model: dict[str, list], curve: str = "") -> str:
    fig, ax = _figure(figsize=(5.6, 3.2))
    _plot_series(ax, by_model, curve)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    return _png(fig, ax)


def _training_png(training: dict) -> str:
    fig, (a, b) = _figure(1, 2, figsize=(9.6, 3.0))
    loss = np.array(training.get("loss") or np.zeros((0, 2)), np.float64).reshape(-1, 2)
    if len(loss):
        a.plot(loss[:, 0], loss[:, 1], color=COLORS["model"], linewidth=1.2)
        if (loss[:, 1] > 0).all() and loss[:, 1].max() > 10 * loss[:, 1].min():
            a.set_yscale("log")
    a.set_title("training loss", fontsize=10)
    a.set_xlabel("step")
    val = np.array(training.get("val_psnr") or np.zeros((0, 2)), np.float64).reshape(-1, 2)
    if len(val):
        b.plot(val[:, 0], val[:, 1], marker="o", color=COLORS["model"], linewidth=1.4)
    b.set_title("validation PSNR (teacher-forced, dB)", fontsize=10)
    b.set_xlabel("step")
    b.grid(alpha=0.3)
    return _png(fig, a, legend=False)


def _figure(*grid, figsize):
    matplotlib.use("Agg")  # no display: render to PNG only
    return plt.subplots(*grid, figsize=figsize, dpi=100)


def _png(fig, ax, legend: bool = True) -> str:
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _mp4_base64(frames: np.ndarray, fps: float) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = write_video(Path(d) / "clip.mp4", np.ascontiguousarray(frames, np.uint8), fps=fps)
        return base64.b64encode(path.read_bytes()).decode("ascii")


# -- small helpers -------------------------------------------------------------------------------
def _group_curves(results: dict, group: str, name: str) -> dict[str, list]:
    return ((results.get("groups", {}).get(group) or {}).get("curves") or {}).get(name) or {}


def _value_cell(g: str, entry: dict, name: str, row: dict, who: str, cls: str) -> str:
    v = row["values"].get(who)
    if v is None:
        skips = entry.get("skipped_metrics", {})
        why = skips.get(name, {}).get(who) or skips.get("*", {}).get(who) or "not computed"
        return f"<td class='skip {cls}' title='{_e(why)}'>skipped</td>"
    cap = " (cap)" if "psnr" in name and V.is_capped(v) else ""
    return f"<td class='{cls}'>{_fmt(V.display(name, v))}{cap}</td>"


def _vs_text(chk: V.MetricCheck | None) -> str:
    if chk is None or not chk.vs:
        return ""
    words = {1: "better than", 0: "same as", -1: "worse than"}
    by = {}
    for b, o in chk.vs.items():
        by.setdefault(o, []).append(b)
    text = "; ".join(f"{words[o]} {', '.join(bs)}" for o, bs in sorted(by.items(), reverse=True))
    return text + ("; near the best possible" if chk.near_best else "")


def _is_dir(p) -> bool:
    return p is not None and Path(str(p)).is_dir()


def _fmt(v) -> str:
    if v is None:
        return "&ndash;"
    v = float(v)
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)
