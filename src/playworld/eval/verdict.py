"""The verdict of an evaluation: how good the model is, in words, from the suite's results.

    v = verdict(results)            # results: the suite's JSON (eval/suite.py), with a "training" entry if known
    v.headline                      # "Mixed: beats copy-last up to step 6 of 32; worse after. ..."
    v.groups["fidelity"].status     # "pass" | "partial" | "fail" | "skipped" | "uncalibrated"
    v.next_steps                    # ["Drifts after step 6: train against exposure bias ...", ...]

Pure functions of that dict (and of the run's training log, `read_training`); the HTML report
draws them at its top and `playworld eval` prints them (`verdict_lines`).

- the horizon: per step of the fidelity rollouts (psnr_by_step), is the model better than copy-last?
  "beats copy-last up to step N of H; worse after";
- every metric against copy-last and ignore-actions (better / same / worse) and whether it is near
  its best possible value. That value is `Metric.floor`, the score of a perfect model: a floor for
  errors, a ceiling for PSNR or accuracy. PSNR's is the 100 dB cap for exact frames
  (metrics.PSNR_CAP), which no model comes near, so it is not counted as a target;
- sanity checks: do the measuring instruments work here (the domain encoder sees time, the
  inverse-dynamics judge reads actions from real frames, ...)? Kept apart from the model's metrics;
- what to try next, each a rule on the numbers above.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from playworld.metrics import PSNR_CAP

BASELINES = ("copy-last", "ignore-actions")
SANITY_METRICS = {"fidelity": ("fd_frame_shuffled_real",)}
"""metrics that measure the instruments on real data, not the model: shown among the sanity checks"""
DISPLAY = {"kid": (1000.0, "kid ×1000")}
"""metric -> (factor, name) for display: KID as papers report it, x1000"""
TIE_DB, TIE_REL = 0.1, 0.005
"""two values are 'the same' within 0.1 dB (for dB metrics) or 0.5% of the larger"""
NEAR = 0.1
"""near the best possible: within 10% of the way from copy-last to it"""


# -- the pieces ------------------------------------------------------------------------------------
@dataclass
class Horizon:
    """The model against copy-last at each step of one per-step curve (higher is better)."""

    curve: str  # e.g. "fidelity/psnr_by_step"
    model: list[float]
    copy_last: list[float]
    oracle: list[float] | None
    order: list[int]  # per step: +1 model better than copy-last, 0 the same, -1 worse
    beats_until: int  # the last step N of the first run of steps where the model is not worse (0: worse at step 1)
    summary: str


@dataclass
class MetricCheck:
    group: str
    name: str
    model: float | None
    best: float | None  # Metric.floor: what a perfect model scores
    higher_is_better: bool
    unit: str
    vs: dict[str, int] = field(default_factory=dict)  # baseline -> +1 better, 0 the same, -1 worse
    near_best: bool | None = None  # None: no usable best (unknown, or the PSNR cap)

    def wins(self, baseline: str) -> bool:
        """Better than `baseline`, or level with it at the best possible value (copy-last's flicker is perfect)."""
        o = self.vs.get(baseline)
        at_best = self.best is not None and self.model is not None and order(self.model, self.best, self.higher_is_better, self.unit) >= 0
        return o is not None and (o > 0 or (o == 0 and at_best))


@dataclass
class GroupVerdict:
    status: str  # pass (better than every baseline on every metric, or level at the best) | partial | fail | skipped | uncalibrated
    summary: str
    checks: list[MetricCheck] = field(default_factory=list)


@dataclass
class SanityCheck:
    group: str
    name: str
    passed: bool
    detail: str


@dataclass
class Verdict:
    level: str  # "beats copy-last" | "mixed" | "loses to copy-last" | "unknown"
    headline: str
    horizon: Horizon | None
    groups: dict[str, GroupVerdict]
    sanity: list[SanityCheck]
    next_steps: list[str]


# -- comparing two numbers -------------------------------------------------------------------------
def order(a: float, b: float, higher_is_better: bool, unit: str = "") -> int:
    """+1 when a is better than b, -1 when worse, 0 when the same (within TIE_DB dB or TIE_REL)."""
    tol = max(TIE_REL * max(abs(a), abs(b)), TIE_DB if unit == "dB" else 1e-12)
    if abs(a - b) <= tol:
        return 0
    return 1 if (a > b) == higher_is_better else -1


def is_capped(x: float | None) -> bool:
    return x is not None and x >= PSNR_CAP - 1e-9


def display(name: str, value: float | None) -> float | None:
    """A metric's value as reports show it (KID x1000)."""
    return None if value is None else value * DISPLAY.get(name, (1.0, name))[0]


def display_name(name: str) -> str:
    return DISPLAY.get(name, (1.0, name))[1]


def is_sanity(group: str, metric: str) -> bool:
    return metric in SANITY_METRICS.get(group, ())


# -- the horizon -------------------------------------------------------------------------------------
def horizon(results: dict) -> Horizon | None:
    """The model vs copy-last per step: fidelity's psnr_by_step, else coherence's drift curve."""
    for group, name in (("fidelity", "psnr_by_step"), ("coherence", "drift_psnr_by_step")):
        curves = (results.get("groups", {}).get(group) or {}).get("curves", {}).get(name, {})
        m, c = curves.get("model"), curves.get("copy-last")
        if m and c and all(v is not None for v in m[:len(c)]):
            return _horizon(f"{group}/{name}", m, c, curves.get("oracle"))
    return None


def _horizon(curve: str, model: list, copy: list, oracle: list | None) -> Horizon:
    H = min(len(model), len(copy))
    model, copy = [float(v) for v in model[:H]], [float("nan") if v is None else float(v) for v in copy[:H]]
    steps = [order(m, c, True, "dB") if math.isfinite(c) else 0 for m, c in zip(model, copy)]
    first_worse = next((i for i, o in enumerate(steps) if o < 0), H)
    psnr = f"PSNR {model[0]:.1f} → {model[-1]:.1f} dB, copy-last {copy[0]:.1f} → {copy[-1]:.1f} dB"
    if first_worse == H:
        text = ("matches copy-last at every step" if not any(steps) else "beats copy-last at every step") + f" of {H}"
    elif first_worse == 0:
        first_better = next((i for i, o in enumerate(steps) if o > 0), None)
        text = (f"is worse than copy-last at every step of {H}" if first_better is None
                else f"is worse than copy-last up to step {first_better} of {H}, better at "
                     f"{sum(o > 0 for o in steps)} steps from step {first_better + 1}")
    else:
        after = steps[first_worse:]
        worse = sum(o < 0 for o in after)
        tail = "worse after" if worse == len(after) else f"worse at {worse} of the {len(after)} steps after"
        text = f"beats copy-last up to step {first_worse} of {H}; {tail}"
    if oracle and all(is_capped(v) for v in oracle if v is not None):
        psnr += "; the oracle is exact (the 100 dB cap)"
    return Horizon(curve, model, copy, [None if v is None else float(v) for v in oracle] if oracle else None,
                   steps, first_worse, f"{text} ({psnr})")


# -- metrics against the baselines -------------------------------------------------------------------
def metric_checks(group: str, entry: dict) -> list[MetricCheck]:
    out = []
    for name, row in entry.get("metrics", {}).items():
        if is_sanity(group, name):
            continue
        vals, hib, unit = row.get("values", {}), bool(row.get("higher_is_better")), row.get("unit", "")
        m, best = vals.get("model"), row.get("floor")
        chk = MetricCheck(group, name, m, best, hib, unit)
        if m is not None:
            chk.vs = {b: order(m, vals[b], hib, unit) for b in BASELINES if vals.get(b) is not None}
            ref = vals.get("copy-last")
            if best is not None and not is_capped(best) and ref is not None and order(ref, best, hib, unit) != 0:
                chk.near_best = abs(m - best) <= NEAR * abs(ref - best) or order(m, best, hib, unit) >= 0
        out.append(chk)
    return out


def group_verdict(group: str, entry: dict) -> GroupVerdict:
    if entry.get("skipped"):
        return GroupVerdict("skipped", str(entry["skipped"]))
    checks = metric_checks(group, entry)
    compared = [c for c in checks if c.vs]
    if not compared:
        return GroupVerdict("uncalibrated", "no baseline scored these metrics", checks)
    parts = []
    for b in BASELINES:
        rows = [c for c in compared if b in c.vs]
        if rows:
            parts.append(f"beats {b} on {sum(c.wins(b) for c in rows)} of {len(rows)}")
    near = [c for c in checks if c.near_best is not None]
    if near:
        parts.append(f"near the best possible on {sum(bool(c.near_best) for c in near)} of {len(near)}")
    wins = [c.wins(b) for c in compared for b in c.vs]
    status = "pass" if all(wins) else "fail" if not any(wins) else "partial"
    return GroupVerdict(status, "; ".join(parts), checks)


# -- sanity checks ------------------------------------------------------------------------------------
def sanity_checks(results: dict) -> list[SanityCheck]:
    """Checks that the instruments work on this data, read from the groups' extras and baselines."""
    groups, out = results.get("groups", {}), []

    def extra(group: str, key: str) -> dict | None:
        for who in ("model", "oracle", "copy-last", "ignore-actions"):
            v = ((groups.get(group) or {}).get("extra") or {}).get(who, {}).get(key)
            if v is not None:
                return v
        return None

    def value(group: str, metric: str, who: str) -> float | None:
        return ((groups.get(group) or {}).get("metrics", {}).get(metric) or {}).get("values", {}).get(who)

    if shuffle := extra("fidelity", "frame_shuffle_check"):
        out.append(SanityCheck("fidelity", "frame-shuffle check", bool(shuffle["passed"]),
                               f"FD of real clips with shuffled frames is {shuffle['ratio']:.2f}x the real-vs-real floor "
                               f"(must be at least {shuffle['required_ratio']:g}x: the features see time)"))
    if (enc := extra("fidelity", "encoder")) and enc.get("order_accuracy") is not None:
        acc = float(enc["order_accuracy"])
        out.append(SanityCheck("fidelity", "domain encoder sees frame order", acc >= 0.75,
                               f"it tells ordered from shuffled training clips {acc:.0%} of the time (chance 50%, needs 75%)"))
    if (idm := extra("controllability", "inverse_dynamics")) and idm.get("real_score") is not None:
        real, chance = float(idm["real_score"]), float(idm.get("chance", 0.0))
        out.append(SanityCheck("controllability", "inverse-dynamics judge reads real actions",
                               real >= chance + 0.5 * (1 - chance),
                               f"{idm.get('score', 'score')} {real:.2f} on real pairs (chance {chance:.2f}; needs half "
                               f"the way from chance to 1)"))
    if (d := value("controllability", "delta_psnr", "copy-last")) is not None:
        out.append(SanityCheck("controllability", "delta-PSNR is 0 for a model that ignores actions", abs(d) <= TIE_DB,
                               f"copy-last scores {d:.3g} dB"))
    for name, row in ((groups.get("coherence") or {}).get("metrics") or {}).items():
        if name.startswith("loop_state_error_") and (o := row.get("values", {}).get("oracle")) is not None:
            out.append(SanityCheck("coherence", f"the locator finds the real agent ({name.removeprefix('loop_state_error_').replace('_', ' ')})",
                                   o <= 0.1, f"the oracle's frames are placed {o:.2g} cells from the true cell (needs 0)"))
    phys = (groups.get("physics") or {}).get("metrics") or {}
    if (miss := (phys.get("ball_missing_fraction") or {}).get("floor")) is not None:
        out.append(SanityCheck("physics", "the ball parser finds the balls in real frames", miss <= 0.05,
                               f"it misses {miss:.1%} of the balls in view in real frames (needs 5% or less)"))
    return out


# -- training ---------------------------------------------------------------------------------------
def read_training(run_dir: str | Path | None) -> dict | None:
    """The run's training curves from metrics.jsonl and its regime from config.yaml, or None.

    -> {"loss": [[step, loss], ...] (at most 400 points, means of equal step bins), "val_psnr": [[step, dB], ...],
        "regime": ..., "context_noise": ..., "family": ...}"""
    path = Path(run_dir) / "metrics.jsonl" if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    loss, val = [], []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a half-written last line
        if row.get("kind") == "train" and isinstance(row.get("loss"), (int, float)):
            loss.append([int(row["step"]), float(row["loss"])])
        elif row.get("kind") == "val" and isinstance(row.get("psnr"), (int, float)):
            val.append([int(row["step"]), float(row["psnr"])])
    if len(loss) > 400:
        k = math.ceil(len(loss) / 400)
        loss = [[chunk[-1][0], sum(v for _, v in chunk) / len(chunk)] for chunk in (loss[i:i + k] for i in range(0, len(loss), k))]
    config = {}
    if (Path(run_dir) / "config.yaml").is_file():
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
    train = config.get("train") or {}
    return {"loss": loss, "val_psnr": val, "regime": train.get("regime"), "context_noise": train.get("context_noise"),
            "family": next(iter(config.get("model") or {}), None)}


def val_trend(training: dict | None) -> tuple[str, float] | None:
    """("rising" | "flat" | "falling", dB) of validation PSNR over the second half of training."""
    val = (training or {}).get("val_psnr") or []
    if len(val) < 2:
        return None
    later = [v for s, v in val if s >= val[-1][0] / 2]
    delta = val[-1][1] - (later[0] if len(later) >= 2 else val[-2][1])
    return ("rising" if delta > 0.2 else "falling" if delta < -0.2 else "flat"), delta


# -- what to try next ---------------------------------------------------------------------------------
def next_steps(results: dict, hz: Horizon | None, groups: dict[str, GroupVerdict], sanity: list[SanityCheck]) -> list[str]:
    training = results.get("training")
    tips = []
    checks = {(c.group, c.name): c for g in groups.values() for c in g.checks}
    tf = checks.get(("fidelity", "psnr_teacher_forced"))
    early = (hz is not None and hz.beats_until == 0) or (tf is not None and tf.vs.get("copy-last", 1) < 0)
    if early:
        trend = val_trend(training)
        why = (f"validation PSNR was still rising at the end of training (+{trend[1]:.2f} dB over its second half): "
               "train longer (`playworld train --out RUN --resume --minutes M`)" if trend and trend[0] == "rising"
               else "validation PSNR had flattened: a larger model (--preset base) or more data" if trend
               else "train longer")
        tips.append(f"Loses to copy-last from the first step: the one-step prediction is weaker than repeating the "
                    f"frame. {why[0].upper() + why[1:]}; check the data (`playworld data verify DATA`: do the actions "
                    "line up with the frames they lead into?).")
    if hz is not None and 0 < hz.beats_until < len(hz.order):
        regime = (training or {}).get("regime")
        ran = f" (this run trained with {regime.replace('_', ' ')})" if regime else ""
        noise = " and keep context noise on (train.context_noise=true; it was off)" if (training or {}).get(
            "context_noise") is False else " or stronger context noise (model.context_noise_max)"
        drifts = f"Drifts after step {hz.beats_until}: its own errors compound"
        if regime == "self_forcing":  # it already trains on its own rollouts: roll out further, or train longer
            tips.append(f"{drifts}, though it trained on its own rollouts{ran}. Roll out further in training "
                        f"(--set train.rollout=4), train longer (`playworld train --out RUN --resume --minutes M`){noise}.")
        else:
            tips.append(f"{drifts}. Train against exposure bias{ran}: --regime self_forcing (or diffusion_forcing){noise}.")
    ctrl = _controllability_problem(checks, results)
    if ctrl:
        tips.append(f"Ignores its actions ({ctrl}): a controllability problem. Check that actions reach the network "
                    "(the action embedding), that the data's actions vary (collect with a random or sticky policy), "
                    "and train longer.")
    loop = checks.get(("coherence", "loop_psnr_beyond_context"))
    if loop is not None and loop.vs.get("copy-last", 1) < 0:
        tips.append("Forgets places it can no longer see (loop closure beyond the context is worse than copy-last): "
                    "a longer context (--set model.context=K) or memory.")
    fd = checks.get(("fidelity", "fd"))
    if fd is not None and not early and fd.vs.get("copy-last", 1) < 0:
        tips.append("Its clips look less real than a frozen frame (FD worse than copy-last): more sampling steps "
                    "(model.steps) or longer training.")
    for s in sanity:
        if not s.passed:
            tips.append(f"Sanity check failed ({s.group}: {s.name}): {s.detail}. Do not trust the {s.group} numbers "
                        "here; more or longer episodes give its helper networks more to learn from.")
    if not tips:
        tips.append("Beats the baselines wherever they were measured: try longer horizons (--full), "
                    "out-of-distribution data, or a harder world.")
    return tips


def _controllability_problem(checks: dict, results: dict) -> str | None:
    delta = checks.get(("controllability", "delta_psnr"))
    if delta is not None and delta.model is not None and delta.model < 0.5:
        return f"delta-PSNR {delta.model:.2f} dB: random actions predict the future as well as the true ones"
    idm = next((c for (g, n), c in checks.items() if g == "controllability" and n.startswith("idm_")), None)
    info = (((results.get("groups", {}).get("controllability") or {}).get("extra") or {}).get("model") or {}).get(
        "inverse_dynamics") or {}
    if idm is not None and idm.model is not None and idm.best is not None and "chance" in info:
        chance = float(info["chance"])
        if idm.model - chance < 0.2 * (idm.best - chance):
            return f"the inverse-dynamics judge reads its actions {idm.model:.2f} (chance {chance:.2f}, real {idm.best:.2f})"
    auc = checks.get(("fidelity", "psnr_auc"))
    if auc is not None and auc.vs.get("ignore-actions", 1) <= 0:
        return "ignore-actions scores as well on fidelity's psnr_auc"
    return None


# -- all of it ----------------------------------------------------------------------------------------
def verdict(results: dict) -> Verdict:
    hz = horizon(results)
    groups = {g: group_verdict(g, e) for g, e in results.get("groups", {}).items()}
    sanity = sanity_checks(results)
    vs_copy = [c.wins("copy-last") for g in groups.values() for c in g.checks if "copy-last" in c.vs]
    wins = sum(vs_copy)
    if hz is not None:
        level = ("loses to copy-last" if hz.beats_until == 0 and not any(o > 0 for o in hz.order)
                 else "beats copy-last" if hz.beats_until == len(hz.order) and any(o > 0 for o in hz.order) else "mixed")
    elif vs_copy:
        level = "beats copy-last" if wins >= 0.8 * len(vs_copy) else "loses to copy-last" if wins <= 0.2 * len(vs_copy) else "mixed"
    else:
        level = "unknown"
    words = {"beats copy-last": "Better than copying the last frame", "mixed": "Mixed",
             "loses to copy-last": "Worse than copying the last frame", "unknown": "No verdict"}[level]
    parts = [f"{words}: the model {hz.summary}." if hz else f"{words}."]
    if vs_copy:
        passed = [g for g, v in groups.items() if v.status == "pass"]
        parts.append(f"Over all groups it beats copy-last on {wins} of {len(vs_copy)} metrics"
                     + (f"; {', '.join(passed)} {'passes' if len(passed) == 1 else 'pass'} every baseline." if passed else "."))
    failed = [s for s in sanity if not s.passed]
    if failed:
        parts.append(f"{len(failed)} sanity check{'s' if len(failed) > 1 else ''} failed.")
    return Verdict(level, " ".join(parts), hz, groups, sanity, next_steps(results, hz, groups, sanity))


def verdict_lines(v: Verdict, width: int = 80) -> list[str]:
    """The verdict as a few plain lines for a terminal, wrapped at `width` with hanging indents."""
    def wrap(text: str, indent: str, hang: str) -> list[str]:
        return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=hang, break_on_hyphens=False)

    lines = wrap(f"verdict: {v.headline}", "", "  ")
    for g, gv in v.groups.items():
        lines += wrap(f"{g}: {gv.status} ({gv.summary})", "  ", "    ")
    if v.sanity:
        lines.append(f"  sanity checks: {sum(s.passed for s in v.sanity)} of {len(v.sanity)} passed")
    for s in v.sanity:
        if not s.passed:
            lines += wrap(f"FAILED {s.group}: {s.name} ({s.detail})", "    ", "      ")
    lines.append("next:")
    for t in v.next_steps:
        lines += wrap(t, "  - ", "    ")
    return lines
