"""Play server under load: 4 normal players beside N abusive clients, on loopback; prints JSON.

    python bench/speed/play_load.py oracle:explorer --abusers 4 --seconds 60
    python bench/speed/play_load.py runs/explorer-small --abusers 4 --kinds keys,status,steps,slow

It starts `playworld play RUN` as its own process on a free loopback port (the bench's clients do not
share its interpreter), connects the normal players, and measures them twice: alone for
`--baseline-seconds`, then for `--seconds` while the abusive clients run, each in a process of its own.
A normal player holds a key and changes it every 0.2-0.8 s, like a person; it reports its frames per
second and its key->frame latency (from sending a key state to the first frame whose action used it:
the frame header echoes the key sequence number). Abusive kinds, cycled over `--abusers`:

    keys     key states as fast as the socket takes them (reading every frame)
    garbage  malformed JSON as fast as it goes
    status   status requests as fast as they go (each asks the model thread for a status)
    reset    new contexts as fast as they go (model work)
    steps    the most sampling steps the server allows, then plays on (a greedy player)
    slow     connects and never reads a frame
    origin   connects from a foreign web page again and again (each is refused)
    churn    connects and leaves again and again

A dropped abuser connects again (a persistent one). The abusive processes are started, and their
imports done, before anything is measured, and get going for SETTLE_S before the abused phase starts.

It also reads the server's RSS (from /proc) when the abuse starts and ends (and every 5 s), the
server's CPU seconds per second and its model time per call of the players in each phase, the model
time each session had (/api/info), the connections the server refused (by the clients' own count and
by the server's) and the messages it dropped or coalesced. Loopback only; every client and the
server stop by themselves after the run.

On a machine with few cores a flooding client's own busy loop competes with the server for them,
which a remote attacker's does not: when the players lose frames while the server's CPU per second
falls and its model time per call rises, it is the OS starving the server, not the server spending
itself on the flood. `--abuser-nice 19` takes the abusers' own CPU out of the measurement.
Target (issue 22): with 4 flooding clients every normal player keeps >= 50% of its baseline FPS, and
the server's RSS grows < 10% over the abuse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from playworld.play.protocol import unpack_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

KINDS = ("keys", "garbage", "status", "reset", "steps", "slow", "origin", "churn")
NORMAL_PLAYERS = 4
SETTLE_S = 3.0
"""the abusive clients connect and get going for this long before the abused phase is measured"""
KEYS = ["ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantiles(xs: list[float]) -> dict:
    a = np.asarray(xs, float)
    if not len(a):
        return {"n": 0}
    return {"median": round(float(np.median(a)), 1), "p90": round(float(np.quantile(a, 0.9)), 1), "n": len(a)}


# -- the server ----------------------------------------------------------------------------------


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "playworld.cli", "play", args.run, "--port", str(port), "--host", "127.0.0.1",
           "--max-sessions", str(NORMAL_PLAYERS + args.abusers), "--fps", str(args.fps), "--device", "cpu",
           "--threads", str(args.threads or 1), "--seed", str(args.seed)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or 1)}
    log = tempfile.TemporaryFile("w+")  # (a pipe nobody reads could fill and stall the server)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"the server exited: {log.read()}")
        try:
            info(port)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the server did not start within 300 s")


def info(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=10) as r:
        return json.loads(r.read())


# -- a normal player -----------------------------------------------------------------------------


class Player:
    """Holds a key, changes it now and then, counts frames and key->frame latencies per phase."""

    def __init__(self, url: str, seed: int):
        self.url, self.rng = url, random.Random(seed)
        self.phase = "warmup"
        self.frames: dict[str, int] = {}
        self.latencies: dict[str, list[float]] = {}
        self.pending: dict[int, float] = {}  # key seq -> when it was sent
        self.seq = 0
        self.errors: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        async with connect(self.url, max_size=None, open_timeout=60) as ws:
            json.loads(await ws.recv())  # hello
            keys = asyncio.create_task(self.press(ws, stop))
            try:
                while not stop.is_set():
                    try:
                        msg = await asyncio.wait_for(ws.recv(), timeout=1.0)
                    except asyncio.TimeoutError:
                        continue
                    if isinstance(msg, bytes):
                        self.on_frame(unpack_frame(msg)["seq"])
                    elif json.loads(msg)["type"] == "error":
                        self.errors.append(json.loads(msg)["message"])
            finally:
                keys.cancel()

    def on_frame(self, seq: int) -> None:
        now = time.perf_counter()
        self.frames[self.phase] = self.frames.get(self.phase, 0) + 1
        for s in [s for s in self.pending if s <= seq]:
            self.latencies.setdefault(self.phase, []).append((now - self.pending.pop(s)) * 1000)

    async def press(self, ws, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.seq += 1
            self.pending[self.seq] = time.perf_counter()
            await ws.send(json.dumps({"type": "keys", "down": [KEYS[self.seq % len(KEYS)]], "seq": self.seq}))
            await asyncio.sleep(self.rng.uniform(0.2, 0.8))


async def play_phases(url: str, phases: list[tuple[str, float]], on_phase, sample=None) -> list[Player]:
    """The players through each (name, seconds) phase; `sample()` is called every 5 s meanwhile."""
    players = [Player(url, seed) for seed in range(NORMAL_PLAYERS)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in players]
    if sample is not None:
        tasks.append(asyncio.create_task(_every(5.0, sample, stop)))
    await asyncio.sleep(3.0)  # connected and warmed up
    for name, seconds in phases:
        on_phase(name)
        for p in players:
            p.phase = name
        started = time.monotonic()
        await asyncio.sleep(seconds)
        for p in players:
            p.frames[name + "_seconds"] = time.monotonic() - started
    on_phase("end")
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return players


async def _every(seconds: float, fn, stop: asyncio.Event) -> None:
    while not stop.is_set():
        fn()
        await asyncio.sleep(seconds)


# -- abusive clients (one process each) ----------------------------------------------------------


def abuse(kind: str, url: str, seconds: float, out: mp.Queue, go, nice: int = 0) -> None:
    """One abusive client: ready (imports done) long before the abuse starts, then `seconds` of `kind` from `go`."""
    if nice:
        os.nice(nice)
    out.put("ready")
    go.wait()
    counts = asyncio.run(_abuse(kind, url, seconds))
    out.put({"kind": kind, **counts})


async def _abuse(kind: str, url: str, seconds: float) -> dict:
    end = time.monotonic() + seconds
    counts = {"sent": 0, "refused": 0, "connections": 0}
    if kind in ("origin", "churn"):
        while time.monotonic() < end:
            try:
                async with connect(url, origin="http://evil.example" if kind == "origin" else None, open_timeout=10) as ws:
                    counts["connections"] += 1
                    await ws.recv()
            except InvalidStatus:
                counts["refused"] += 1
            except (OSError, WebSocketException, asyncio.TimeoutError):
                counts["refused"] += 1
            await asyncio.sleep(0.01)
        return counts
    counts["closed_by_server"] = 0
    while time.monotonic() < end:  # a persistent abuser: dropped, it connects again
        try:
            await _one_connection(kind, url, end, counts)
        except InvalidStatus:
            counts["refused"] += 1
        except (OSError, WebSocketException, asyncio.TimeoutError):
            if time.monotonic() < end - 0.5:
                counts["closed_by_server"] += 1
        await asyncio.sleep(0.05)
    return counts


async def _one_connection(kind: str, url: str, end: float, counts: dict) -> None:
    async with connect(url, max_size=None, open_timeout=60) as ws:
        counts["connections"] += 1
        hello = json.loads(await ws.recv())
        if hello.get("type") == "busy":
            counts["refused"] += 1
            await asyncio.sleep(1.0)
            return
        reader = asyncio.create_task(_drain(ws)) if kind != "slow" else None
        message = {
            "keys": lambda i: json.dumps({"type": "keys", "down": ["KeyD"] if i % 2 else [], "seq": i}),
            "garbage": lambda i: "{not json" + "x" * (i % 64),
            "status": lambda i: '{"type": "status"}',
            "reset": lambda i: '{"type": "reset"}',
        }.get(kind)
        if kind == "steps" and hello.get("max_sampling_steps"):
            await ws.send(json.dumps({"type": "sampling_steps", "value": hello["max_sampling_steps"]}))
        i = 0
        try:
            while time.monotonic() < end:
                i += 1
                if message is None:  # steps: plays on; slow: a key now and then, never reading
                    await ws.send(json.dumps({"type": "keys", "down": [KEYS[i % 4]], "seq": i}))
                    await asyncio.sleep(0.5)
                else:
                    await asyncio.wait_for(ws.send(message(i)), timeout=max(0.01, end - time.monotonic()))
                counts["sent"] += 1
        finally:
            if reader is not None:
                reader.cancel()


async def _drain(ws) -> None:
    try:
        async for _ in ws:
            pass
    except WebSocketException:
        pass


# -- the run -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("run", nargs="?", default="oracle:explorer", help="what to serve: a run folder, or oracle:<world> / "
                    "copy-last:<world> (default: oracle:explorer, the real world behind the model interface)")
    ap.add_argument("--abusers", type=int, default=4, help="abusive clients beside the 4 normal players")
    ap.add_argument("--kinds", default="keys,garbage,status,reset", help=f"abusive kinds, cycled: {', '.join(KINDS)}")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the abuse")
    ap.add_argument("--baseline-seconds", type=float, default=20.0, help="the normal players alone, first")
    ap.add_argument("--fps", type=float, default=15.0, help="the server's tick")
    ap.add_argument("--abuser-nice", type=int, default=0, help="run the abusive clients at this niceness: on a machine "
                    "with few cores their own CPU use (a flood is a busy loop) otherwise competes with the server's, "
                    "which a remote attacker's does not")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        ap.error(f"--kinds takes {', '.join(KINDS)}")
    common.start(args)

    port = free_port()
    server = start_server(args, port)
    url = f"ws://127.0.0.1:{port}/ws"
    rss = {"ready": rss_mib(server.pid)}
    series: list[float] = []  # RSS every 5 s, to tell a step (sessions made) from a leak
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    abusers: list = []

    during: dict = {}
    marks: list[tuple[str, float, float, dict]] = []  # (phase, wall, server CPU s, model time per session)

    go = ctx.Event()
    for i in range(args.abusers):  # started (and their imports done) before anything is measured
        p = ctx.Process(target=abuse, args=(kinds[i % len(kinds)], url, SETTLE_S + args.seconds + 2, results, go,
                                            args.abuser_nice), daemon=True)
        p.start()
        abusers.append(p)
    for _ in abusers:
        assert results.get(timeout=300) == "ready"

    def on_phase(name: str) -> None:
        marks.append((name, time.monotonic(), cpu_seconds(server.pid), info(port).get("model", {})))
        if name == "end":  # before the players leave
            rss["abuse_end"] = rss_mib(server.pid)
            during.update(info(port))
        if name == "settle":  # the abuse starts; what it does is measured from the next phase on
            rss["abuse_start"] = rss_mib(server.pid)
            go.set()

    try:
        phases = [("baseline", args.baseline_seconds), ("settle", SETTLE_S), ("abused", args.seconds)]
        players = asyncio.run(play_phases(url, phases, on_phase, lambda: series.append(round(rss_mib(server.pid), 1))))
        abused = [results.get(timeout=60) for _ in abusers]
        for p in abusers:
            p.join(timeout=10)
        served = info(port)
    finally:
        for p in abusers:
            if p.is_alive():
                p.kill()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

    sessions = []
    for i, p in enumerate(players):
        fps = {ph: p.frames.get(ph, 0) / max(p.frames.get(ph + "_seconds", 1e-9), 1e-9) for ph in ("baseline", "abused")}
        sessions.append({"player": i, "fps_baseline": round(fps["baseline"], 2), "fps_abused": round(fps["abused"], 2),
                         "kept": round(fps["abused"] / max(fps["baseline"], 1e-9), 3),
                         "latency_ms_baseline": quantiles(p.latencies.get("baseline", [])),
                         "latency_ms_abused": quantiles(p.latencies.get("abused", [])), "errors": len(p.errors)})
    growth = (rss["abuse_end"] - rss["abuse_start"]) / rss["abuse_start"] * 100
    server_phases = {}
    for (name, t0, c0, m0), (_, t1, c1, m1) in zip(marks, marks[1:]):
        normal = [str(i) for i in sorted(int(k) for k in m0)[:NORMAL_PLAYERS]]  # the first sessions are the players
        calls = sum(m1.get(k, {}).get("calls", 0) - m0[k]["calls"] for k in normal)
        secs = sum(m1.get(k, {}).get("seconds", 0) - m0[k]["seconds"] for k in normal)
        server_phases[name] = {"server_cpu_per_s": round((c1 - c0) / (t1 - t0), 3),
                               "players_model_ms_per_call": round(1000 * secs / max(calls, 1), 1)}
    common.report("play_load", {
        "run": args.run, "tick_fps": args.fps, "abusers": [a["kind"] for a in abused], "abuser_nice": args.abuser_nice,
        "seconds": args.seconds,
        "baseline_seconds": args.baseline_seconds, "sessions": sessions,
        "rss_mib": {k: round(v, 1) for k, v in rss.items()}, "rss_growth_pct": round(growth, 2), "rss_mib_every_5s": series,
        "abusive_clients": abused,
        "refused": {"by_clients": sum(a["refused"] for a in abused), "by_server": served.get("refused")},
        "messages": served.get("messages"), "model_time_by_session": during.get("model"), "server": server_phases,
        "targets": {"kept_fps": 0.5, "rss_growth_pct": 10},
        "meets_targets": bool(min(s["kept"] for s in sessions) >= 0.5 and growth < 10),
    }, args)


if __name__ == "__main__":
    main()
