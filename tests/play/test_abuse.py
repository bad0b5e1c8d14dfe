"""Hostile and greedy clients of the play server (issue 22): foreign origins and hosts, the token, floods of
messages, and a player who asks for many sampling steps. None of them may take the server from the others."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from playworld.cli import main
from playworld.play.server import PlayServer, ServerThread

from .conftest import DotModel, FakeContexts, TunableDotModel, free_port

WS = "ws://127.0.0.1/ws"
FLOODER = r"""
import json, sys, threading, time
from websockets.sync.client import connect
url, seconds = sys.argv[1], float(sys.argv[2])
with connect(url, max_size=None, open_timeout=20) as ws:
    def drain():
        try:
            while True:
                ws.recv()
        except Exception:
            pass
    threading.Thread(target=drain, daemon=True).start()
    print("ready", flush=True)
    end, seq = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        seq += 1
        ws.send(json.dumps({"type": "keys", "down": ["KeyD"] if seq % 2 else [], "seq": seq}))
"""


class BusyDotModel(DotModel):
    """DotModel whose step costs real compute (a few convolutions), as a small network's would."""

    def __init__(self):
        super().__init__()
        self.x, self.w = torch.randn(1, 32, 64, 64), torch.randn(32, 32, 3, 3)

    def step(self, state, action):
        y = self.x
        for _ in range(3):
            y = torch.nn.functional.conv2d(y, self.w, padding=1)
        return super().step(state, action)


class SlowTunableDotModel(TunableDotModel):
    """A step costs 3 ms per sampling step (slept: model time, not CPU), like a sampler's denoising steps."""

    def step(self, state, action):
        time.sleep(0.003 * self.sampling_steps)
        return super().step(state, action)


def recv(ws) -> dict | bytes:
    msg = ws.receive()
    if msg.get("type") == "websocket.close":
        raise WebSocketDisconnect(msg.get("code", 1000))
    return msg["bytes"] if msg.get("bytes") is not None else json.loads(msg["text"])


def json_of(ws, kind, pred=lambda m: True, limit=2000):
    for _ in range(limit):
        m = recv(ws)
        if isinstance(m, dict) and m["type"] == kind and pred(m):
            return m
    raise AssertionError(f"no {kind} message")


def frames_per_second(url: str, seconds: float, out: dict, sampling_steps: int | None = None) -> None:
    """A normal player: holds a key, changes it twice a second, counts the frames it gets."""
    with connect(url, max_size=None, open_timeout=20) as ws:
        json.loads(ws.recv(timeout=20))  # hello
        if sampling_steps is not None:
            ws.send(json.dumps({"type": "sampling_steps", "value": sampling_steps}))
        frames, seq, start = 0, 0, time.monotonic()
        next_key = start
        while (now := time.monotonic()) < start + seconds:
            if now >= next_key:
                seq += 1
                ws.send(json.dumps({"type": "keys", "down": ["KeyD"] if seq % 2 else ["KeyS"], "seq": seq}))
                next_key = now + 0.5
            msg = ws.recv(timeout=10)
            if isinstance(msg, bytes):
                frames += 1
            elif json.loads(msg)["type"] == "status":
                out["status"] = json.loads(msg)
        out["fps"] = frames / (time.monotonic() - start)


# -- Origin, Host, token ----------------------------------------------------------------------------


def test_a_foreign_origin_is_refused_and_loopback_ones_play():
    server = PlayServer(DotModel(), FakeContexts(), fps=30)
    with TestClient(server.app, base_url="http://127.0.0.1") as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(WS, headers={"origin": "http://evil.example"}) as ws:
                recv(ws)
        for origin in ("http://127.0.0.1:8765", "http://localhost:3000", "http://[::1]:8765"):
            with client.websocket_connect(WS, headers={"origin": origin}) as ws:
                assert recv(ws)["type"] == "hello"
        assert client.get("/api/info").json()["refused"]["origin"] == 1
    server.close()
    allowing = PlayServer(DotModel(), FakeContexts(), fps=30, allowed_origins=["https://lab.example"])
    with TestClient(allowing.app, base_url="http://127.0.0.1") as client:
        with client.websocket_connect(WS, headers={"origin": "https://lab.example"}) as ws:
            assert recv(ws)["type"] == "hello"
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(WS, headers={"origin": "https://other.example"}) as ws:
                recv(ws)
    allowing.close()


def test_a_foreign_origin_is_refused_by_the_real_server_before_any_session():
    server = PlayServer(DotModel(), FakeContexts(), fps=30, max_sessions=1)
    with ServerThread(server.app, free_port()) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        for _ in range(5):  # a foreign page cannot take the session slots
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url, origin="http://evil.example")
            assert refused.value.response.status_code == 403
        with connect(ws_url, origin=url) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    server.close()


def test_a_server_bound_to_an_address_serves_its_own_page_there():
    server = PlayServer(DotModel(), FakeContexts(), fps=30)
    server.guard.bind("192.168.1.5")  # as serve(host="192.168.1.5") does
    with TestClient(server.app, base_url="http://192.168.1.5:8765") as client:
        assert client.get("/").status_code == 200
        with client.websocket_connect("ws://192.168.1.5:8765/ws", headers={"origin": "http://192.168.1.5:8765"}) as ws:
            assert recv(ws)["type"] == "hello"
        with pytest.raises(WebSocketDisconnect):  # another site's page, even naming this host
            with client.websocket_connect("ws://192.168.1.5:8765/ws", headers={"origin": "http://evil.example"}) as ws:
                recv(ws)
    server.close()


def test_a_rebound_host_name_is_refused():
    server = PlayServer(DotModel(), FakeContexts(), fps=30)
    with TestClient(server.app, base_url="http://evil.example:8765") as client:  # DNS rebinding: Host names the attacker
        assert client.get("/").status_code == 400 and client.get("/api/info").status_code == 400
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("ws://evil.example:8765/ws") as ws:
                recv(ws)
    with TestClient(server.app, base_url="http://localhost:8765") as client:
        assert client.get("/").status_code == 200
    server.close()


def test_the_token_guards_everything_but_the_static_files():
    server = PlayServer(DotModel(), FakeContexts(), fps=30, token="s3cret")
    with TestClient(server.app, base_url="http://127.0.0.1") as client:
        assert client.get("/").status_code == 403 and client.get("/api/info").status_code == 403
        assert client.get("/?token=wrong").status_code == 403
        assert client.get("/static/play.js").status_code == 200
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(WS) as ws:
                recv(ws)
        with client.websocket_connect(WS + "?token=s3cret") as ws:
            assert recv(ws)["type"] == "hello"
        page = client.get("/?token=s3cret")  # as the printed URL is opened: the cookie stands in from then on
        assert page.status_code == 200 and "httponly" in page.headers["set-cookie"].lower()
        assert client.get("/api/info").status_code == 200
        with client.websocket_connect(WS) as ws:
            assert recv(ws)["type"] == "hello"
    server.close()


def test_the_cli_prints_the_url_with_its_token_and_warns_of_other_origins(monkeypatch, capsys):
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)
    with pytest.raises(SystemExit) as done:
        main(["play", "copy-last:explorer", "--host", "0.0.0.0", "--port", "9124", "--device", "cpu", "--fps", "5",
              "--token", "auto", "--allow-origin", "https://lab.example"])
    err = capsys.readouterr().err
    assert done.value.code in (0, None), err
    assert "http://127.0.0.1:9124/?token=" in err and "has the token" in err and "lab.example" in err


# -- floods and greed ------------------------------------------------------------------------------


def test_messages_beyond_the_budget_are_dropped_and_the_newest_key_state_wins():
    server = PlayServer(DotModel(), FakeContexts(), fps=30)
    with TestClient(server.app, base_url="http://127.0.0.1") as client, client.websocket_connect(WS) as ws:
        recv(ws)
        ws.send_text(json.dumps({"type": "pause", "on": True}))
        json_of(ws, "status", lambda m: m["paused"])
        for _ in range(150):
            ws.send_text(json.dumps({"type": "status"}))
        error = json_of(ws, "error", lambda m: m.get("about") == "rate", limit=170)  # (150 answers: no budget)
        assert "too many messages" in error["message"]
        for seq in range(1, 101):  # a key flood: only the newest state matters
            ws.send_text(json.dumps({"type": "keys", "down": [] if seq < 100 else ["KeyD"], "seq": seq}))
        for _ in range(100):
            ws.send_text(json.dumps({"type": "status"}))
            st = json_of(ws, "status")
            if st["key_seq"] == 100:
                break
        assert st["key_seq"] == 100 and st["keys"] == ["KeyD"]
        info = client.get("/api/info").json()["messages"]
        assert info["dropped"] > 100 and info["coalesced"] > 20
        time.sleep(2.0)  # the budget refills: the session answers again
        ws.send_text(json.dumps({"type": "reset", "seed": 5}))
        assert json_of(ws, "status", lambda m: m.get("event") == "reset")["source"]["seed"] == 5
    server.close()


def test_one_flooding_client_leaves_a_normal_one_most_of_its_frames_and_the_page_fast():
    server = PlayServer(BusyDotModel(), FakeContexts(), fps=30, max_sessions=4)
    with ServerThread(server.app, free_port()) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        alone: dict = {}
        frames_per_second(ws_url, 4.0, alone)
        flooder = subprocess.Popen([sys.executable, "-c", FLOODER, ws_url, "12"], stdout=subprocess.PIPE, text=True)
        try:
            assert flooder.stdout.readline().strip() == "ready"
            time.sleep(1.0)  # the flood is on
            flooded: dict = {}
            player = threading.Thread(target=frames_per_second, args=(ws_url, 5.0, flooded))
            player.start()
            page_ms = []
            for _ in range(10):
                start = time.perf_counter()
                with urllib.request.urlopen(url + "/", timeout=10) as r:
                    assert r.status == 200
                page_ms.append((time.perf_counter() - start) * 1000)
                time.sleep(0.3)
            player.join(timeout=30)
        finally:
            flooder.kill()
            flooder.wait()
        dropped = json.loads(urllib.request.urlopen(url + "/api/info", timeout=10).read()).get("messages", {})
    server.close()
    print(f"alone {alone['fps']:.1f} fps, flooded {flooded['fps']:.1f} fps; GET / median {statistics.median(page_ms):.1f} "
          f"ms, max {max(page_ms):.1f} ms; {dropped}")
    assert flooded["fps"] >= 0.5 * alone["fps"], (alone, flooded)
    assert statistics.median(page_ms) < 100 and np.quantile(page_ms, 0.8) < 100, page_ms
    assert dropped.get("coalesced", 0) > 0


def test_sampling_steps_are_per_session_capped_and_cost_only_their_session():
    model = SlowTunableDotModel(sampling_steps=1)
    server = PlayServer(model, FakeContexts(), fps=30, max_sessions=4, max_sampling_steps=16)
    with ServerThread(server.app, free_port()) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        alone: dict = {}
        frames_per_second(ws_url, 3.0, alone)
        greedy: dict = {}
        other: dict = {}
        a = threading.Thread(target=frames_per_second, args=(ws_url, 5.0, greedy, 16))
        a.start()
        time.sleep(0.5)
        frames_per_second(ws_url, 4.0, other)
        a.join(timeout=30)
    server.close()
    assert greedy["status"]["sampling_steps"] == 16 and other["status"]["sampling_steps"] == 1  # each its own
    assert other["fps"] >= 0.5 * alone["fps"], (alone, other, greedy)
    capped = PlayServer(TunableDotModel(sampling_steps=2), FakeContexts(), fps=30)  # default cap: 4x the model's own
    with TestClient(capped.app, base_url="http://127.0.0.1") as client, client.websocket_connect(WS) as ws:
        assert recv(ws)["max_sampling_steps"] == 8
        ws.send_text(json.dumps({"type": "sampling_steps", "value": 9}))
        assert "over the maximum 8" in json_of(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "sampling_steps", "value": 8}))
        json_of(ws, "status", lambda m: m["sampling_steps"] == 8)
    capped.close()
