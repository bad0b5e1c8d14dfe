"""The HTML report is one self-contained file that renders in headless Chromium."""

from __future__ import annotations

import re

import numpy as np
import pytest

from playworld.eval.report import write_report

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _results() -> dict:
    steps = list(range(1, 33))
    return {
        "run": "runs/demo", "label": "model", "step": 1200, "created": "2025-01-01T00:00:00",
        "dataset": {"path": "data/explorer", "world": "explorer", "distribution": "id", "test_episodes": 5},
        "settings": {"episodes": 4}, "spec": {}, "warnings": ["a <warning> & an ampersand"],
        "models": ["model", "oracle", "copy-last", "ignore-actions"],
        "groups": {
            "fidelity": {
                "skipped": None, "seconds": {},
                "metrics": {
                    "psnr_auc": {"description": "mean PSNR over 1..H", "unit": "dB", "higher_is_better": True, "floor": 100.0,
                                 "values": {"model": 27.5, "oracle": 100.0, "copy-last": 18.2, "ignore-actions": 21.0}},
                    "fd": {"description": "Frechet distance", "unit": "", "higher_is_better": False, "floor": 0.1,
                           "values": {"model": 3.2, "oracle": 0.1, "copy-last": None, "ignore-actions": 4.0}},
                },
                "skipped_metrics": {"fd": {"copy-last": "too few clips"}},
                "curves": {"psnr_by_step": {"model": [30 - 0.2 * s for s in steps], "oracle": [100.0] * 32,
                                            "copy-last": [25 - 0.5 * s for s in steps]}},
                "extra": {},
            },
            "physics": {"skipped": "needs a physics/* dataset (this one is 'explorer')", "metrics": {},
                        "skipped_metrics": {}, "curves": {}, "extra": {}, "seconds": {}},
        },
    }


def _video(T=12, res=32) -> np.ndarray:
    frames = np.zeros((T, res, 2 * res + 2, 3), np.uint8)
    for t in range(T):
        frames[t, :, :, 0] = 40 + 10 * t
        frames[t, 8:16, t:t + 8] = 255
    return frames


def test_report_is_self_contained(tmp_path):
    path = write_report(_results(), {"fidelity: real | generated": _video()}, tmp_path / "report.html")
    text = path.read_text()
    assert text.count("<tr class='metric'>") == 2
    assert "data:image/png;base64," in text and "data:video/mp4;base64," in text
    assert not re.search(r"(src|href)=['\"](https?:|//)", text)  # nothing fetched from the network
    assert "&lt;warning&gt; &amp;" in text  # text is escaped
    assert "needs a physics/* dataset" in text and "too few clips" in text


@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path, chromium):
    from playwright.sync_api import sync_playwright  # only once `chromium` found Playwright installed

    path = write_report(_results(), {"fidelity: real | generated": _video()}, tmp_path / "report.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            for section in ("summary", "curves", "videos", "skipped", "settings"):
                assert page.locator(f"h2#{section}").is_visible()
            assert page.locator("#summary-table tr.metric").count() == 2
            assert page.locator("#summary-table tr.group").count() == 2
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)
            page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2 || v.error)",
                                   timeout=15000)
            videos = page.eval_on_selector_all("video", "els => els.map(e => [e.videoWidth, e.error && e.error.code])")
            assert videos == [[66, None]], videos  # the mp4 decodes (66 = 2 x 32 + 2 px wide)
            assert page.locator("#skipped-list li").count() == 2
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            assert (tmp_path / "report.png").stat().st_size > 10_000
            assert not errors
        finally:
            browser.close()
