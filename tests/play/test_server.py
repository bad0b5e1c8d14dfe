"""The websocket session protocol, driven through FastAPI's TestClient against a fake model."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from playworld.play.protocol import FLAG_AGENT, FLAG_PAUSED, unpack_frame
from playworld.play.server import PlayServer, is_loopback

from .conftest import DotModel, FakeContexts, TunableDotModel, dot_position


def recv(ws) -> dict | bytes:
    msg = ws.receive()
    if msg.get("type") == "websocket.close":
        raise WebSocketDisconnect(msg.get("code", 1000))
    return msg["bytes"] if msg.get("bytes") is not None else json.loads(msg["text"])


def until(ws, pred, limit=400):
    """Read messages until pred(msg) is true; return that message."""
    for _ in range(limit):
        m = recv(ws)
        if pred(m):
            return m
    raise AssertionError("message never came")


def next_frame(ws, pred=lambda f: True) -> dict:
    while True:
        m = recv(ws)
        if isinstance(m, bytes):
            f = unpack_frame(m)
            if pred(f):
                return f


def json_of(ws, kind: str, pred=lambda m: True) -> dict:
    return until(ws, lambda m: isinstance(m, dict) and m["type"] == kind and pred(m))


def test_hello_frames_and_held_keys_move_the_dot(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        hello = recv(ws)
        assert hello["type"] == "hello" and hello["spec"]["resolution"] == 16 and not hello["has_real"]
        assert {"keys": ["→", "D"], "codes": ["ArrowRight", "KeyD"], "does": "right"} in hello["legend"]
        first = next_frame(ws)
        assert first["step"] == 0 and first["views"][0].shape == (16, 16, 3)  # the context's newest frame
        f = next_frame(ws)
        x0, y0 = dot_position(f["views"][0])
        ws.send_text(json.dumps({"type": "keys", "down": ["ArrowRight"], "seq": 1}))
        f1 = next_frame(ws, lambda f: f["seq"] == 1)  # the first frame whose action saw the key
        x1, _ = dot_position(f1["views"][0])
        f2 = next_frame(ws)  # held: it keeps acting
        x2, y2 = dot_position(f2["views"][0])
        assert (x2 - x1) % 16 == 1 and y2 == y0 and x1 != x0
        ws.send_text(json.dumps({"type": "keys", "down": [], "seq": 2}))
        f3 = next_frame(ws, lambda f: f["seq"] == 2)
        f4 = next_frame(ws)
        assert dot_position(f3["views"][0]) == dot_position(f4["views"][0])  # released: no-op
        assert 4 in dot_server.model.actions and dot_server.model.actions[-1] == 0
        ws.send_text(json.dumps({"type": "status"}))  # the model's own state, for debugging and tests
        status = json_of(ws, "status")
        assert status["model_state"]["pos"] == list(dot_position(f4["views"][0])) and status["keys"] == []


def test_reset_pause_and_single_step(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        recv(ws)
        next_frame(ws, lambda f: f["step"] >= 3)
        ws.send_text(json.dumps({"type": "reset", "seed": 77}))
        st = json_of(ws, "status", lambda m: m.get("event") == "reset")
        assert st["source"]["seed"] == 77 and 77 in dot_server.contexts.seeds
        ws.send_text(json.dumps({"type": "pause", "on": True}))
        json_of(ws, "status", lambda m: m["paused"])
        ws.send_text(json.dumps({"type": "status"}))
        st1 = json_of(ws, "status", lambda m: m["paused"])
        n = len(dot_server.model.actions)
        ws.send_text(json.dumps({"type": "status"}))
        st2 = json_of(ws, "status")
        assert st2["step"] == st1["step"] and len(dot_server.model.actions) == n  # paused: no steps
        ws.send_text(json.dumps({"type": "step"}))
        f = next_frame(ws)
        assert f["step"] == st1["step"] + 1 and f["flags"] & FLAG_PAUSED
        ws.send_text(json.dumps({"type": "pause", "on": False}))
        next_frame(ws, lambda f: f["step"] > st1["step"] + 2)


def test_bad_messages_get_errors_and_the_session_goes_on(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        recv(ws)
        for bad, says in [
            ("{oops", "not JSON"), (json.dumps({"type": "fly"}), "unknown message type"),
            (json.dumps({"type": "keys", "down": ["a"] * 2000, "seq": 1}), "too large"),
            (json.dumps({"type": "keys", "down": 5, "seq": 1}), "list"), ("null", "malformed"),
            (json.dumps({"type": "step"}), "pause first"), (json.dumps({"type": "agent", "name": "ghost"}), "unknown agent"),
            (json.dumps({"type": "sampling_steps", "value": 2}), "no sampling steps"),
            (json.dumps({"type": "record", "on": False}), "not recording"),
        ]:
            ws.send_text(bad)
            assert says in json_of(ws, "error")["message"]
        ws.send_bytes(b"\x00" * 10)
        assert "binary" in json_of(ws, "error")["message"]
        f = next_frame(ws)
        next_frame(ws, lambda g: g["step"] > f["step"])  # still stepping


def test_busy_beyond_max_sessions_and_freed_on_disconnect(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client:
        a = client.websocket_connect("ws://127.0.0.1/ws").__enter__()
        b = client.websocket_connect("ws://127.0.0.1/ws").__enter__()
        assert recv(a)["type"] == "hello" and recv(b)["type"] == "hello"
        with client.websocket_connect("ws://127.0.0.1/ws") as c:
            msg = recv(c)
            assert msg["type"] == "busy" and "2" in msg["message"]
            with pytest.raises(WebSocketDisconnect) as e:
                recv(c)
            assert e.value.code == 1013
        assert client.get("/api/info").json()["sessions"] == 2
        a.__exit__(None, None, None)
        for _ in range(200):  # the server notices the close on its own loop
            if client.get("/api/info").json()["sessions"] == 1:
                break
        assert client.get("/api/info").json()["sessions"] == 1
        with client.websocket_connect("ws://127.0.0.1/ws") as d:
            assert recv(d)["type"] == "hello"
            next_frame(d)
        b.__exit__(None, None, None)


def test_agent_mode_and_recording_download(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        recv(ws)
        ws.send_text(json.dumps({"type": "record", "on": True}))
        json_of(ws, "status", lambda m: m["recording"] is not None)
        ws.send_text(json.dumps({"type": "agent", "name": "random"}))
        json_of(ws, "status", lambda m: m["agent"] == "random")
        next_frame(ws, lambda f: f["flags"] & FLAG_AGENT)
        seen = {tuple(dot_position(next_frame(ws)["views"][0])) for _ in range(20)}
        assert len(seen) > 3  # the agent moves the dot about
        ws.send_text(json.dumps({"type": "record", "on": False}))
        rec = json_of(ws, "recording")
        mp4 = client.get(rec["mp4"])
        assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp" and len(mp4.content) == rec["bytes"]
        meta = client.get(rec["json"]).json()
        assert meta["frames"] == rec["frames"] == len(meta["actions"]) + 1 and any(meta["by_agent"])
        assert all(a in range(5) for a in meta["actions"])
        assert client.get("/recordings/nope.mp4").status_code == 404


def test_sampling_steps_when_the_model_has_them():
    server = PlayServer(TunableDotModel(sampling_steps=2), FakeContexts(), fps=30)
    with TestClient(server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        assert recv(ws)["sampling_steps"] == 2
        ws.send_text(json.dumps({"type": "sampling_steps", "value": 4}))
        assert json_of(ws, "status", lambda m: m["sampling_steps"] == 4)
        ws.send_text(json.dumps({"type": "sampling_steps", "value": 500}))
        assert "over the maximum" in json_of(ws, "error")["message"]
    server.close()


def test_a_failing_model_pauses_the_session_and_the_server_stays_up():
    server = PlayServer(DotModel(fail_after=3), FakeContexts(), fps=60)
    with TestClient(server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        recv(ws)
        assert "model exploded" in json_of(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "status"}))
        assert json_of(ws, "status")["paused"]
        assert client.get("/").status_code == 200
    server.close()


def test_page_and_static_files_are_served(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client:
        page = client.get("/")
        assert page.status_code == 200 and "/static/play.js" in page.text
        assert "image-rendering: pixelated" in client.get("/static/play.css").text
        assert client.get("/static/play.js").status_code == 200


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


def test_a_tap_between_two_ticks_still_acts_once(dot_server):
    with TestClient(dot_server.app, base_url="http://127.0.0.1") as client, client.websocket_connect("ws://127.0.0.1/ws") as ws:
        recv(ws)
        ws.send_text(json.dumps({"type": "pause", "on": True}))
        json_of(ws, "status", lambda m: m["paused"])
        n = len(dot_server.model.actions)
        ws.send_text(json.dumps({"type": "keys", "down": ["KeyD"], "seq": 1}))
        ws.send_text(json.dumps({"type": "keys", "down": [], "seq": 2}))
        for _ in range(2):
            ws.send_text(json.dumps({"type": "step"}))
            next_frame(ws)
        assert dot_server.model.actions[n:] == [4, 0]  # right once, then nothing
