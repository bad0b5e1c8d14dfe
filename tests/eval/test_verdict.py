"""The report's verdict: how good the model is, against copy-last and the oracle, in the report and at the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from eval_fixtures import HORIZON, LookupOracle, make_ctx, spec_of, tiny_explorer
from rich.console import Console

from playworld.cli.evaluate import _print_summary
from playworld.eval import verdict as V
from playworld.eval.api import DatasetOracle, get_groups
from playworld.eval.report import build_report, plot_range, write_report
from playworld.eval.suite import _merge
from playworld.metrics import PSNR_CAP
from playworld.models.baselines import CopyLast

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
H = 16


def _metric(values: dict, higher: bool = True, floor=None, unit: str = "dB") -> dict:
    return {"description": "", "unit": unit, "higher_is_better": higher, "floor": floor, "values": values}


def _results(model_curve: list[float], tf_model: float, auc_ignore: float, delta_model: float = 3.0, training=None) -> dict:
    """Suite results with fidelity and controllability; copy-last's PSNR falls from 24 to 9 dB over H steps."""
    copy = [24.0 - 1.0 * s for s in range(H)]
    fidelity = {
        "skipped": None, "seconds": {}, "skipped_metrics": {},
        "metrics": {
            "psnr_teacher_forced": _metric({"model": tf_model, "oracle": PSNR_CAP, "copy-last": 25.0, "ignore-actions": tf_model - 1},
                                           floor=PSNR_CAP),
            "psnr_auc": _metric({"model": float(np.mean(model_curve)), "oracle": PSNR_CAP, "copy-last": float(np.mean(copy)),
                                 "ignore-actions": auc_ignore}, floor=PSNR_CAP),
            "kid": _metric({"model": 0.0094, "oracle": 0.0001, "copy-last": 0.02, "ignore-actions": 0.011}, False, 0.0001, ""),
            "fd_frame_shuffled_real": _metric({"oracle": 9.0, "copy-last": 9.0, "model": 9.0}, False, 1.5, ""),
        },
        "curves": {"psnr_by_step": {"model": model_curve, "oracle": [PSNR_CAP] * H, "copy-last": copy,
                                    "ignore-actions": [v - 2 for v in model_curve]}},
        "extra": {"model": {"frame_shuffle_check": {"fd_real_vs_real": 1.5, "fd_shuffled_real": 9.0, "ratio": 6.0,
                                                    "required_ratio": 2.0, "passed": True},
                            "encoder": {"order_accuracy": 0.93}}},
    }
    controllability = {
        "skipped": None, "seconds": {}, "skipped_metrics": {}, "curves": {},
        "metrics": {"delta_psnr": _metric({"model": delta_model, "oracle": 70.0, "copy-last": 0.0, "ignore-actions": 0.02})},
        "extra": {"model": {"inverse_dynamics": {"score": "accuracy", "chance": 0.3, "real_score": 0.95}}},
    }
    return {"run": "runs/x", "label": "model", "step": 100, "created": "2025-01-01T00:00:00",
            "dataset": {"path": "data/explorer", "world": "explorer", "distribution": "id", "test_episodes": 8},
            "settings": {}, "spec": {}, "warnings": [], "models": ["model", "oracle", "copy-last", "ignore-actions"],
            "groups": {"fidelity": fidelity, "controllability": controllability}, "training": training}


RISING = {"loss": [[s, 1.0 / s] for s in range(1, 200)], "val_psnr": [[50, 18.0], [100, 19.0], [150, 20.0], [200, 21.5]],
          "regime": "teacher_forcing", "context_noise": True, "family": "diffusion"}


def loses() -> dict:
    return _results([18.0 - 0.8 * s for s in range(H)], tf_model=19.0, auc_ignore=10.0, training=RISING)


def drifts() -> dict:
    return _results([27.0 - 2.0 * s for s in range(H)], tf_model=28.0, auc_ignore=14.0, training=RISING)  # crosses at step 4


def beats() -> dict:
    return _results([30.0 - 0.3 * s for s in range(H)], tf_model=31.0, auc_ignore=20.0, training=RISING)


# -- the verdict's logic ------------------------------------------------------------------------------
def test_a_model_that_loses_to_copy_last():
    v = V.verdict(loses())
    assert v.level == "loses to copy-last" and v.horizon.beats_until == 0
    assert v.headline.startswith("Worse than copying the last frame") and f"worse than copy-last at every step of {H}" in v.headline
    fidelity = v.groups["fidelity"]  # worse than copy-last on both PSNRs, better on KID and than ignore-actions
    assert fidelity.status == "partial" and "beats copy-last on 1 of 3" in fidelity.summary
    assert any(t.startswith("Loses to copy-last from the first step") and "still rising" in t and "--resume" in t
               for t in v.next_steps)
    assert not any(t.startswith("Drifts") for t in v.next_steps)


def test_a_model_that_beats_copy_last_then_drifts():
    v = V.verdict(drifts())
    assert v.level == "mixed" and v.horizon.beats_until == 4
    assert f"beats copy-last up to step 4 of {H}; worse after" in v.headline
    tip = next(t for t in v.next_steps if t.startswith("Drifts after step 4"))
    assert "--regime self_forcing" in tip and "teacher forcing" in tip  # says what this run trained with


def test_a_run_that_trained_on_its_own_rollouts_is_told_to_roll_out_further_not_to_self_force():
    v = V.verdict(_results([27.0 - 2.0 * s for s in range(H)], tf_model=28.0, auc_ignore=14.0,
                           training={**RISING, "regime": "self_forcing"}))
    tip = next(t for t in v.next_steps if t.startswith("Drifts after step 4"))
    assert "self forcing" in tip and "train.rollout" in tip and "--regime self_forcing" not in tip


def test_a_model_that_beats_copy_last_everywhere():
    v = V.verdict(beats())
    assert v.level == "beats copy-last" and v.horizon.beats_until == H
    assert f"beats copy-last at every step of {H}" in v.headline and "the oracle is exact" in v.headline
    assert v.groups["fidelity"].status == "pass" and v.groups["controllability"].status == "pass"
    assert v.next_steps[0].startswith("Beats the baselines")


def test_ignoring_actions_is_named_a_controllability_problem():
    v = V.verdict(_results([30.0 - 0.3 * s for s in range(H)], tf_model=31.0, auc_ignore=25.4, delta_model=0.1))
    assert any(t.startswith("Ignores its actions (delta-PSNR 0.10 dB") for t in v.next_steps)


def test_sanity_checks_are_kept_apart_and_fail_loudly():
    r = beats()
    r["groups"]["fidelity"]["extra"]["model"]["frame_shuffle_check"].update(passed=False, ratio=1.1)
    v = V.verdict(r)
    names = {s.name: s.passed for s in v.sanity}
    assert names == {"frame-shuffle check": False, "domain encoder sees frame order": True,
                     "inverse-dynamics judge reads real actions": True, "delta-PSNR is 0 for a model that ignores actions": True}
    assert "fd_frame_shuffled_real" not in {c.name for c in v.groups["fidelity"].checks}  # not a model metric
    assert "1 sanity check failed" in v.headline and any(t.startswith("Sanity check failed (fidelity") for t in v.next_steps)


def test_read_training(tmp_path):
    rows = [{"step": s, "kind": "train", "loss": 2.0 / s} for s in range(1, 1001)]
    rows += [{"step": s, "kind": "val", "psnr": 15.0 + s / 200} for s in (250, 500, 750, 1000)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 10')  # a cut last line
    (tmp_path / "config.yaml").write_text("model:\n  diffusion: {context: 4}\ntrain:\n  regime: self_forcing\n  context_noise: false\n")
    t = V.read_training(tmp_path)
    assert 100 < len(t["loss"]) <= 400 and t["loss"][-1][0] == 1000  # binned, up to the last step
    assert t["val_psnr"][-1] == [1000, 20.0] and (t["regime"], t["context_noise"], t["family"]) == ("self_forcing", False, "diffusion")
    assert V.val_trend(t) == ("rising", pytest.approx(2.5))
    assert V.read_training(tmp_path / "nothing") is None


# -- plots ----------------------------------------------------------------------------------------------
def test_the_capped_oracle_stays_off_the_plot_range():
    r = loses()["groups"]["fidelity"]["curves"]["psnr_by_step"]
    (lo, hi), off = plot_range(r, "psnr_by_step")
    assert 0 < lo < 4 and 24 < hi < 26  # the model (18 -> 6), ignore-actions (16 -> 4), copy-last (24 -> 9): not up to 100
    assert "oracle" in off and "capped" in off["oracle"]
    # a derived curve far from the rest (the oracle's delta-PSNR) is named off the scale too; a near one is drawn
    (lo, hi), off = plot_range({"model": [2.0, 1.5], "oracle": [70.0, 80.0], "copy-last": [0.0, 0.0]}, "delta_psnr_by_step")
    assert hi < 3 and "off the scale" in off["oracle"]
    (lo, hi), off = plot_range({"model": [0.7, 0.5], "oracle": [1.0, 1.0], "copy-last": [0.6, 0.4]}, "ssim_by_step")
    assert hi >= 1.0 and not off


# -- the report -------------------------------------------------------------------------------------------
def test_report_gives_the_verdict_first_and_keeps_sanity_apart(tmp_path):
    text = build_report(loses(), {})
    assert text.index("id='verdict-headline'") < text.index("id='summary'") < text.index("id='sanity'")
    assert "Worse than copying the last frame" in text and "id='verdict-figure'" in text
    summary = text[text.index("id='summary-table'"):text.index("id='sanity'")]
    assert "fd_frame_shuffled_real" not in summary and "<th>best possible</th>" in summary and "floor</th>" not in summary
    assert "100 (cap)" in summary and "kid ×1000" in summary and ">9.4<" in summary  # KID x1000: 0.0094 -> 9.4
    sanity = text[text.index("id='sanity'"):text.index("id='training'")]
    assert "frame-shuffle check" in sanity and "fd_frame_shuffled_real" in sanity and "passed" in sanity
    assert "id='training-figure'" in text and "rising" in text


def test_report_reads_the_runs_training_log(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "kind": "train", "loss": 1.0}\n{"step": 2, "kind": "val", "psnr": 17.0}\n')
    r = {**beats(), "run": str(tmp_path)}
    del r["training"]
    assert "id='training-figure'" in build_report(r, {})
    assert "no training log" in build_report({**beats(), "training": None}, {})


# -- the CLI at 80 columns ----------------------------------------------------------------------------------
def _printed(results: dict) -> str:
    console = Console(width=80, record=True, force_terminal=False)
    _print_summary(results, console)
    return console.export_text()


@pytest.mark.parametrize("make", [loses, beats])
def test_eval_summary_reads_at_80_columns(make):
    r = make()
    r["groups"]["coherence"] = {"skipped": None, "seconds": {}, "skipped_metrics": {}, "curves": {}, "extra": {}, "metrics": {
        "loop_state_error_beyond_context": _metric({"model": 1.234, "oracle": 0.0, "copy-last": 2.523, "ignore-actions": 1.964},
                                                   False, 0.0, "cells")}}
    out = _printed(r)
    assert max(map(len, out.splitlines())) <= 80
    lines = [ln.rstrip() for ln in out.splitlines()]  # a long name wraps after an underscore, not mid-word
    i = next(i for i, ln in enumerate(lines) if ln.startswith("loop_state_error_beyond_ "))
    assert lines[i + 1] == "context"
    for g, entry in r["groups"].items():
        for name, row in entry["metrics"].items():
            if V.is_sanity(g, name):
                assert name not in out
                continue
            for v in row["values"].values():
                assert f"{V.display(name, v):.4g}" in out, (name, v)  # every value, whole
    assert "kid ×1000" in out and "│││" not in out
    assert re.search(r"verdict: (Worse than|Better than) copying the last frame", out) and "next:" in out


# -- with real groups: the fidelity group on models that beat and lose to copy-last -------------------------
class Blank:
    """A model that draws grey frames: worse than copy-last at every step."""

    def __init__(self, spec):
        self.spec = spec

    def reset(self, frames, actions, seed=None):
        return frames.shape[0]

    def step(self, state, action):
        return state, torch.full((state, 3, self.spec.resolution, self.spec.resolution), 128, dtype=torch.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["real world", "grey frames"])
def test_verdict_on_fidelity_results(which):
    ds = tiny_explorer()
    ctx = make_ctx(ds, options={"fidelity": {"teacher_forced_windows": 8, "min_clips": 10**6}})  # FD skipped: fast
    models = {"model": LookupOracle(ds) if which == "real world" else Blank(spec_of(ds)),
              "oracle": DatasetOracle(ds, spec_of(ds)), "copy-last": CopyLast(spec_of(ds))}
    entry = {"skipped": None, "metrics": {}, "skipped_metrics": {}, "curves": {}, "extra": {}, "seconds": {}}
    for who, m in models.items():
        _merge(entry, who, get_groups()["fidelity"](m, ctx))
    v = V.verdict({"models": list(models), "groups": {"fidelity": entry}})
    assert len(v.horizon.order) == HORIZON
    if which == "real world":
        assert v.level == "beats copy-last" and v.groups["fidelity"].status == "pass"
    else:
        assert v.level == "loses to copy-last" and v.groups["fidelity"].status == "partial"
        # only flicker: grey frames never flicker, as still frames do not
        assert [c.name for c in v.groups["fidelity"].checks if c.wins("copy-last")] == ["flicker"]
        assert any(t.startswith("Loses to copy-last") for t in v.next_steps)


# -- in the browser ---------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_the_first_screen_says_how_good_the_model_is(tmp_path, chromium):
    from playwright.sync_api import sync_playwright  # only once `chromium` found Playwright installed

    clip = np.zeros((8, 40, 82, 3), np.uint8)
    path = write_report(drifts(), {"fidelity: rollouts: real | model": clip}, tmp_path / "report.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(path.as_uri())
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            headline = page.locator("#verdict-headline")
            assert headline.is_visible() and "beats copy-last up to step 4" in headline.inner_text()
            box = headline.bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 800  # whole, without scrolling
            fig = page.locator("#verdict-figure").bounding_box()
            assert fig["y"] < 800 and page.eval_on_selector("#verdict-figure", "e => e.naturalWidth") > 0
            assert page.locator("#next-steps li").first.bounding_box()["y"] < 800  # what to try next, too
            page.screenshot(path=str(tmp_path / "first-screen.png"))
        finally:
            browser.close()
