"""Play latency and frame rate, end to end through the browser; prints JSON.

    python bench/speed/play_latency.py runs/explorer-small [--fps 30] [--seconds 10] [--presses 30]
    python bench/speed/play_latency.py oracle:explorer        # the pipeline alone (no network to run)

It serves RUN with `playworld play`'s server in this process, opens the page in headless Chromium
(Playwright) and measures:
- key->frame latency: from the page's keydown event to the drawing of the first frame whose
  action included that key (the server echoes the key-event sequence number in every frame);
  each press is held until that frame, then released, with a random pause between presses so
  presses land at random points of the tick;
- sustained FPS: frames drawn per second over `--seconds` while keys are held and changed;
- the server's model step time (ms) and, for the record, raw RGB vs PNG frame size and PNG
  encode time (the page uses raw RGB).
Targets (issue 5): >= 20 FPS sustained and median latency <= 100 ms at 64x64 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import sync_playwright

from playworld.play import make_server
from playworld.play.server import ServerThread, configure_torch_threads
from playworld.play.session import PlaySession

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
KEYS = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantiles(xs: list[float]) -> dict:
    a = np.asarray(xs, float)
    if not len(a):
        return {"n": 0}
    return {"median": round(float(np.median(a)), 2), "p90": round(float(np.quantile(a, 0.9)), 2),
            "mean": round(float(a.mean()), 2), "n": len(a)}


def frame_encodings(server, n: int = 10) -> dict:
    """Raw RGB vs PNG for frames the model makes (one session, off the server)."""
    session = PlaySession(server.model, server.contexts, seed=123)
    session.reset(None)
    frames = [session.step().views[0] for _ in range(n)]
    out = {"raw_bytes": int(frames[0].nbytes)}
    Image.fromarray(frames[0]).save(io.BytesIO(), format="PNG")  # warm up the encoder before timing
    for level in (1, 6):
        t0, sizes = time.perf_counter(), []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="PNG", compress_level=level)
            sizes.append(buf.tell())
        out[f"png{level}_bytes_mean"] = round(float(np.mean(sizes)), 1)
        out[f"png{level}_encode_ms"] = round((time.perf_counter() - t0) * 1000 / n, 3)
    return out


def measure_latency(page, presses: int, rng: random.Random) -> list[float]:
    """Key->frame latencies (ms): press, hold until the frame that includes the key, release, pause at random."""
    page.evaluate("pw.latencies.length = 0")
    for i in range(presses):
        key = KEYS[i % len(KEYS)]
        page.keyboard.down(key)
        page.wait_for_function("pw.lastFrame.seq >= pw.seq", timeout=30_000)
        page.keyboard.up(key)
        page.wait_for_function("pw.lastFrame.seq >= pw.seq", timeout=30_000)
        page.wait_for_timeout(rng.uniform(40, 160))
    return page.evaluate("pw.latencies.slice()")


def measure_fps(page, seconds: float, rng: random.Random) -> tuple[float, int, list[float]]:
    """Sustained FPS (keys held and changed as in play, frames counted in the page's clock), the frames
    drawn, and the server's step times (ms) over the window."""
    page.evaluate("pw.stepTimes.length = 0")
    f0, t0 = page.evaluate("[pw.frames, performance.now()]")
    end, i = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        key = KEYS[i % len(KEYS)]
        page.keyboard.down(key)
        page.wait_for_timeout(rng.uniform(200, 600))
        page.keyboard.up(key)
        i += 1
    f1, t1 = page.evaluate("[pw.frames, performance.now()]")
    return (f1 - f0) / ((t1 - t0) / 1000), f1 - f0, page.evaluate("pw.stepTimes.slice()")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[common.options(seed=0)])
    ap.add_argument("run", help="a run folder (e.g. a `small` diffusion run), or oracle:<world> / copy-last:<world>")
    ap.add_argument("--fps", type=float, default=30.0, help="server tick (the model's speed caps it)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the sustained-FPS window")
    ap.add_argument("--presses", type=int, default=30, help="key presses timed for latency")
    ap.add_argument("--context-from", default=None, help="env or a dataset (default as `playworld play`)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cores", type=int, default=0, help="pin this process and the browser to the first N cores (0: all)")
    args = ap.parse_args()
    if args.cores:
        os.sched_setaffinity(0, set(range(args.cores)))  # the browser, started below, inherits it
    common.start(args)
    threads = configure_torch_threads()  # as `playworld play` does (it keeps the --threads just set)

    server = make_server(args.run, context_from=args.context_from, fps=args.fps, device=args.device, seed=args.seed)
    encodings = frame_encodings(server)
    rng = random.Random(args.seed)
    with ServerThread(server.app, free_port()) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("window.pw && pw.frames > 10", timeout=120_000)  # warm up
        latencies = measure_latency(page, args.presses, rng)
        fps, frames, step_ms = measure_fps(page, args.seconds, rng)
        browser.close()
    server.close()
    lat = quantiles(latencies)
    common.report("play_latency", {
        "run": args.run, "resolution": server.model.spec.resolution, "device": args.device, "torch_threads": threads,
        "tick_fps": args.fps, "sustained_fps": round(fps, 2), "frames_drawn": frames, "latency_ms": lat,
        "step_ms": quantiles(step_ms), "frame_encoding": encodings,
        "targets": {"sustained_fps": 20, "median_latency_ms": 100},
        "meets_targets": bool(fps >= 20 and lat.get("median", 1e9) <= 100),
    }, args)


if __name__ == "__main__":
    main()
