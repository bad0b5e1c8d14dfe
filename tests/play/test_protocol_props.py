"""Property tests of the websocket protocol (issue 22): random and mutated client messages, through the parser and
through the real server (uvicorn, so every reply is really encoded and sent). A message is either used or answered
with an error; the session never ends, nothing is logged as a failure, and nothing is recorded unasked."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from playworld.play.protocol import MESSAGE_TYPES, Message, ProtocolError, parse_message
from playworld.play.server import PlayServer, ServerThread

from .conftest import DotModel, FakeContexts, free_port

SETTINGS = settings(deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# text with everything JSON can carry, lone surrogates (escaped as \udXXX) included
TEXT = st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=40).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(), TEXT,
                    st.sampled_from(["ArrowUp", "KeyD", "random", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(TEXT, inner, max_size=4)), max_leaves=10)
FIELDS = st.sampled_from(["down", "seq", "seed", "on", "name", "value", "type"])
SHAPED = st.builds(lambda kind, fields: {**fields, "type": kind}, st.sampled_from(MESSAGE_TYPES),
                   st.dictionaries(FIELDS, VALUES, max_size=3))
MAYBE_INT = st.one_of(st.integers(0, 2**31 - 1), VALUES)
NEAR_VALID = st.one_of(  # each type with its fields, most of them right
    st.builds(lambda down, seq: {"type": "keys", "down": down, "seq": seq},
              st.lists(st.one_of(TEXT, st.sampled_from(["KeyD", "ArrowUp"])), max_size=4), MAYBE_INT),
    st.builds(lambda seed: {"type": "reset", "seed": seed}, MAYBE_INT),
    st.builds(lambda on: {"type": "pause", "on": on}, st.one_of(st.booleans(), VALUES)),
    st.builds(lambda name: {"type": "agent", "name": name}, st.one_of(st.sampled_from(["random", None]), TEXT)),
    st.builds(lambda v: {"type": "sampling_steps", "value": v}, MAYBE_INT),
    st.builds(lambda on: {"type": "record", "on": on}, st.booleans()),
    st.sampled_from([{"type": "step"}, {"type": "status"}]),
)
MESSAGES = st.one_of(
    NEAR_VALID.map(json.dumps),
    SHAPED.map(json.dumps),
    VALUES.map(json.dumps),
    st.builds(lambda text, cut: text[:cut], SHAPED.map(json.dumps), st.integers(0, 60)),  # cut short
    st.text(max_size=40),  # (a text frame is UTF-8: lone surrogates arrive only escaped inside JSON)
    st.binary(max_size=64),
)


@settings(SETTINGS, max_examples=300)
@given(st.one_of(MESSAGES.map(lambda m: {"bytes": m} if isinstance(m, bytes) else {"text": m}),
                 st.fixed_dictionaries({"text": st.text(min_size=4000, max_size=5000)})))
def test_the_parser_returns_a_message_or_a_protocol_error(raw):
    try:
        msg = parse_message({"type": "websocket.receive", **raw})
    except ProtocolError:
        return
    assert isinstance(msg, Message) and msg.type in MESSAGE_TYPES
    json.dumps(msg.fields, ensure_ascii=False).encode("utf-8")  # what status echoes back must be sendable


def _kind(message) -> str | None:
    try:
        obj = json.loads(message)
    except (ValueError, TypeError):
        return None
    return obj.get("type") if isinstance(obj, dict) else None


class _Failures(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(scope="module")
def live():
    server = PlayServer(DotModel(), FakeContexts(), fps=30, max_sessions=2)
    failures = _Failures()
    for name in ("uvicorn.error", "uvicorn", "playworld.play", "asyncio"):
        logging.getLogger(name).addHandler(failures)
    with ServerThread(server.app, free_port()) as url:
        yield server, url.replace("http", "ws") + "/ws", failures
    for name in ("uvicorn.error", "uvicorn", "playworld.play", "asyncio"):
        logging.getLogger(name).removeHandler(failures)
    server.close()


def test_random_message_sequences_leave_every_session_going(live):
    server, ws_url, failures = live

    @settings(SETTINGS, max_examples=40)
    @given(st.lists(MESSAGES, min_size=1, max_size=12))
    def check(messages):
        before = len(server.recordings)
        records = any(_kind(m) == "record" for m in messages)
        with connect(ws_url, max_size=None, open_timeout=20) as ws:
            assert json.loads(ws.recv(timeout=20))["type"] == "hello"
            for m in messages:
                ws.send(m)
            ws.send(json.dumps({"type": "pause", "on": False}))
            ws.send(json.dumps({"type": "status"}))  # answered: the session outlived everything above
            while True:
                reply = ws.recv(timeout=20)
                if isinstance(reply, str) and json.loads(reply)["type"] == "status" and not json.loads(reply)["paused"]:
                    break
        assert not failures.records, [r.getMessage() for r in failures.records]
        assert records or len(server.recordings) == before  # nothing recorded unasked

    check()
