"""The evaluation report: ONE self-contained HTML file, readable offline.

Everything is inline: the CSS, the per-step curves (matplotlib PNGs as base64 data URIs) and the
videos (real | generated side by side, H.264 mp4 as base64 data URIs in <video> tags). Sections:
summary table (metric, direction, floor, model, baselines), curves, videos, skipped metrics with
their reasons, and the settings.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from playworld.media import write_video

BASELINE_ORDER = ("oracle", "copy-last", "ignore-actions")
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.meta{color:#555;font-size:.9rem} table{border-collapse:collapse;width:100%;font-size:.88rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.35rem .5rem;text-align:right;vertical-align:top}
th{background:#f5f5f7;position:sticky;top:0} td.name,th.name{text-align:left} td.desc{font-size:.75rem;color:#666;text-align:left}
tr.group td{background:#fafafa;font-weight:600;text-align:left} td.model{font-weight:600} td.skip{color:#aaa}
.figs{display:flex;flex-wrap:wrap;gap:1rem} .figs figure{margin:0} .figs img{max-width:560px;width:100%}
video{image-rendering:pixelated;width:100%;max-width:560px;background:#000} figcaption{font-size:.85rem;color:#444}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5rem .8rem} code,pre{font-size:.8rem}
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
    models = list(results.get("models", ["model"]))
    columns = ["model"] + [b for b in BASELINE_ORDER if b in models] + [m for m in models if m not in BASELINE_ORDER and m != "model"]
    ds = results.get("dataset", {})
    title = f"playworld eval: {results.get('label') or results.get('run') or 'model'} on {ds.get('world', '?')}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width'><title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='meta'>run <code>{_e(results.get('run'))}</code> · step {_e(results.get('step'))} · dataset "
        f"<code>{_e(ds.get('path'))}</code> ({_e(ds.get('world'))}, {_e(ds.get('distribution', ''))}, "
        f"{_e(ds.get('test_episodes'))} test episodes) · {_e(results.get('created'))}</p>",
    ]
    parts += [f"<p class='warn'>{_e(w)}</p>" for w in results.get("warnings", [])]
    parts += _summary(results, columns)
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
def _summary(results: dict, columns: list[str]) -> list[str]:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    out = ["<h2 id='summary'>Summary</h2>",
           "<p class='meta'>&uarr; higher is better, &darr; lower is better. <b>floor</b>: the best value a perfect "
           "model can reach here (e.g. the ground-truth parsing floor, or the real world's own value). Baselines: "
           "<b>oracle</b> replays the real world, <b>copy-last</b> repeats the last context frame, "
           "<b>ignore-actions</b> is the model fed random actions.</p>",
           f"<table id='summary-table'><thead><tr><th class='name'>metric</th><th></th><th>floor</th>{head}"
           "<th class='name'>unit</th></tr></thead><tbody>"]
    for g, entry in results.get("groups", {}).items():
        out.append(f"<tr class='group'><td colspan='{len(columns) + 4}'>{_e(g)}"
                   + (f" <span class='skip'>(skipped: {_e(entry['skipped'])})</span>" if entry.get("skipped") else "")
                   + "</td></tr>")
        for name, row in entry.get("metrics", {}).items():
            arrow = "&uarr;" if row.get("higher_is_better") else "&darr;"
            skips = entry.get("skipped_metrics", {}).get(name, {})
            cells = []
            for c in columns:
                v = row["values"].get(c)
                cls = "model" if c == "model" else ""
                if v is None:
                    why = skips.get(c) or entry.get("skipped_metrics", {}).get("*", {}).get(c) or "not computed"
                    cells.append(f"<td class='skip {cls}' title='{_e(why)}'>skipped</td>")
                else:
                    cells.append(f"<td class='{cls}'>{_fmt(v)}</td>")
            out.append(f"<tr class='metric'><td class='name'>{_e(name)}<div class='desc'>{_e(row.get('description', ''))}</div></td>"
                       f"<td>{arrow}</td><td>{_fmt(row.get('floor'))}</td>{''.join(cells)}<td class='name'>{_e(row.get('unit', ''))}</td></tr>")
    out.append("</tbody></table>")
    return out


def _curves(results: dict, columns: list[str]) -> list[str]:
    figs = []
    for g, entry in results.get("groups", {}).items():
        for name, by_model in entry.get("curves", {}).items():
            png = _curve_png(f"{g}: {name}", {c: by_model[c] for c in columns if c in by_model})
            figs.append(f"<figure><img alt='{_e(g)} {_e(name)}' src='data:image/png;base64,{png}'>"
                        f"<figcaption>{_e(g)}: {_e(name)}</figcaption></figure>")
    if not figs:
        return ["<h2 id='curves'>Curves</h2><p class='meta'>no per-step curves in this evaluation</p>"]
    return ["<h2 id='curves'>Curves</h2><div class='figs'>", *figs, "</div>"]


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


# -- media ---------------------------------------------------------------------------------------
def _curve_png(title: str, by_model: dict[str, list]) -> str:
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(5.6, 3.2), dpi=100)
    for who, ys in by_model.items():
        y = np.array([np.nan if v is None else v for v in ys], np.float64)
        ax.plot(np.arange(1, len(y) + 1), y, label=who, linewidth=2.2 if who == "model" else 1.3)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _mp4_base64(frames: np.ndarray, fps: float) -> str:
    with tempfile.TemporaryDirectory() as d:
        path = write_video(Path(d) / "clip.mp4", np.ascontiguousarray(frames, np.uint8), fps=fps)
        return base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(v) -> str:
    if v is None:
        return "&ndash;"
    v = float(v)
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def _e(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)
