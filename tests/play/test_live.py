"""The real server (uvicorn on a free port): hostile clients leave it serving; the page plays in Chromium.

The browser tests drive Debian's headless Chromium through Playwright (`make test` installs it).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from playworld.play import make_server
from playworld.play.protocol import unpack_frame
from playworld.play.server import PlayServer, ServerThread

from .conftest import DotModel, FakeContexts, free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def test_malformed_messages_and_many_connections_leave_the_server_serving():
    from websockets.sync.client import connect

    server = PlayServer(DotModel(), FakeContexts(), fps=30, max_sessions=4)
    with ServerThread(server.app, free_port()) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        with connect(ws_url, max_size=None) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            bad = ["{", "[]", "42", '"keys"', json.dumps({"type": "warp"}), json.dumps({"type": "keys"}),
                   json.dumps({"type": "pause", "on": 1}), "x" * 5000, b"\x00\xff", json.dumps({"type": "keys", "down": [1], "seq": 0})]
            for i in range(20):
                ws.send(bad[i % len(bad)])
            errors = 0
            while errors < 20:
                msg = ws.recv(timeout=10)
                errors += isinstance(msg, str) and json.loads(msg)["type"] == "error"
            with contextlib.ExitStack() as stack:
                others = [stack.enter_context(connect(ws_url, max_size=None)) for _ in range(10)]
                firsts = [json.loads(c.recv(timeout=10))["type"] for c in others]
                assert firsts.count("hello") == 3 and firsts.count("busy") == 7  # 4 sessions at most, one is `ws`
            step = unpack_frame(next(m for m in iter(lambda: ws.recv(timeout=10), None) if isinstance(m, bytes)))["step"]
            assert unpack_frame(next(m for m in iter(lambda: ws.recv(timeout=10), None) if isinstance(m, bytes)))["step"] > step
        with connect(ws_url, max_size=None) as again:  # every slot was freed
            assert json.loads(again.recv(timeout=10))["type"] == "hello"
    server.close()


# -- the page in a browser ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(chromium):
    from playwright.sync_api import sync_playwright  # only once `chromium` found Playwright installed

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_a_missing_browser_skips_locally_and_fails_under_ci(browser_check, tmp_path, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium"):
        browser_check(tmp_path / "no-chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        browser_check(tmp_path / "no-chromium")


def status(page) -> dict:
    return page.evaluate("pw.requestStatus()")


def until(page, condition: str, timeout_ms: int = 10_000) -> None:
    """Wait for a JS condition, checked every 100 ms (not per animation frame, which a busy headless
    browser may throttle)."""
    page.wait_for_function(condition, timeout=timeout_ms, polling=100)


def hold(page, key: str, ms: int) -> None:
    """Hold `key` for `ms`, release it, and wait until the frames reflect the release."""
    page.keyboard.down(key)
    page.wait_for_timeout(ms)
    page.keyboard.up(key)
    until(page, "pw.lastFrame && pw.lastFrame.seq >= pw.seq")


@pytest.mark.slow
@pytest.mark.browser
def test_play_the_explorer_oracle_in_chromium(browser, tmp_path):
    server = make_server("oracle:explorer", fps=15, seed=0)
    with ServerThread(server.app, free_port()) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        until(page, "window.pw && pw.frames > 3", 30_000)
        assert "right" in page.inner_text("#legend") and not page.is_hidden("#real-fig")
        scaled = page.evaluate("(() => { const c = document.getElementById('model'); "
                               "return [c.width, c.clientWidth, getComputedStyle(c).imageRendering]; })()")
        assert scaled[0] == 64 and scaled[1] >= 4 * 64 and scaled[2] == "pixelated"

        x0, y0 = status(page)["model_state"]["world"]["agent"]
        hold(page, "ArrowRight", 700)  # ~10 ticks at 15 fps
        st = status(page)
        x1, y1 = st["model_state"]["world"]["agent"]
        assert x1 > x0 and y1 == y0 and st["model_state"]["world"]["facing"] == 3  # moved right, as pressed
        hold(page, "KeyS", 500)  # WASD: down
        x2, y2 = status(page)["model_state"]["world"]["agent"]
        assert y2 > y1 and x2 == x1
        frames = page.evaluate("pw.frames")
        lat = page.evaluate("pw.latencies")
        assert frames > 15 and len(lat) >= 2 and all(0 < v < 2000 for v in lat)
        # the oracle is the real world, so the two canvases show the same pixels
        same = page.evaluate("""(() => { const a = document.getElementById('model').getContext('2d').getImageData(0,0,64,64).data;
            const b = document.getElementById('real').getContext('2d').getImageData(0,0,64,64).data;
            let s = 0; for (let i = 0; i < a.length; i++) s += a[i]; return [s > 0, a.join() === b.join()]; })()""")
        assert same == [True, True]
        page.screenshot(path=str(tmp_path / "play-oracle.png"))
        assert (tmp_path / "play-oracle.png").stat().st_size > 10_000

        page.click("#reset")  # a new real context
        until(page, "pw.events.reset >= 1")
        page.select_option("#agent", "random")
        until(page, "pw.lastFrame && (pw.lastFrame.flags & 1)")
        page.close()
    server.close()


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    """A diffusion run trained for a few steps on a tiny explorer dataset (the CLI, as a user would)."""
    root = tmp_path_factory.mktemp("play-run")
    cli = [str(Path(sys.executable).with_name("playworld"))]
    subprocess.run(cli + ["collect", "--env", "explorer", "--episodes", "3", "--steps", "12", "--out", str(root / "data")],
                   check=True, capture_output=True)
    subprocess.run(cli + ["train", "--data", str(root / "data"), "--model", "diffusion", "--preset", "debug",
                          "--steps", "2", "--out", str(root / "run")], check=True, capture_output=True)
    return root / "run"


@pytest.mark.slow
@pytest.mark.browser
def test_play_a_debug_diffusion_run_in_chromium(browser, debug_run, tmp_path):
    from playworld.play.loading import load_target

    target = load_target(str(debug_run), context_from=None)
    model, received, denoiser_calls = target.model, [], []
    real_step, real_denoise = model.step, model.net.denoise
    calls = [0]

    def denoise(*args):  # a spy on the network: how many evaluations the sampler really makes
        calls[0] += 1
        return real_denoise(*args)

    def step(state, action):  # a spy on the real model: keeps the actions that reached it
        received.append(int(action[0]))
        calls[0] = 0
        out = real_step(state, action)
        denoiser_calls.append(calls[0])
        return out

    model.step, model.net.denoise = step, denoise
    server = PlayServer(model, target.contexts, fps=15, title=target.title)
    with ServerThread(server.app, free_port()) as url:
        page = browser.new_page()
        page.goto(url)
        until(page, "window.pw && pw.frames > 2", 30_000)
        hello = page.evaluate("pw.hello")
        assert hello["spec"]["world"] == "explorer" and hello["has_real"] and hello["sampling_steps"] == model.sampling_steps
        hold(page, "ArrowLeft", 500)
        assert 3 in received  # 'left' reached the model
        wanted = model.sampling_steps + 2  # the debug preset samples with 1 step; the page asks for 3
        page.fill("#sampling-steps", str(wanted))
        page.dispatch_event("#sampling-steps", "change")
        until(page, f"pw.lastStatus && pw.lastStatus.sampling_steps === {wanted}")
        # what the model uses, not only what the server reports: its dial, its schedule (the levels and
        # the final 0) and the network evaluations of the next frame it generates
        assert model.sampling_steps == wanted and len(model.sigmas) == wanted + 1
        calls_per_frame = wanted if model.config.sampler == "euler" else 2 * wanted - 1  # heun: one call on the last level
        generated = len(denoiser_calls)
        for _ in range(100):  # the page plays on: wait for a frame generated after the change
            if len(denoiser_calls) > generated:
                break
            page.wait_for_timeout(100)
        assert len(denoiser_calls) > generated and denoiser_calls[-1] == calls_per_frame
        page.screenshot(path=str(tmp_path / "play-diffusion.png"))
        page.close()
    server.close()
