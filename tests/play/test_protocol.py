"""Client messages are validated; frames round-trip through the binary format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from playworld.play.protocol import MAX_MESSAGE_BYTES, ProtocolError, pack_frame, parse_message, unpack_frame


def text(obj) -> dict:
    return {"type": "websocket.receive", "text": obj if isinstance(obj, str) else json.dumps(obj)}


def test_valid_messages():
    m = parse_message(text({"type": "keys", "down": ["ArrowUp", "ArrowUp", "KeyW"], "seq": 3}))
    assert m.type == "keys" and m.fields == {"down": ["ArrowUp", "KeyW"], "seq": 3}
    assert parse_message(text({"type": "reset"})).fields == {"seed": None}
    assert parse_message(text({"type": "pause", "on": True})).fields == {"on": True}
    assert parse_message(text({"type": "agent", "name": None})).fields == {"name": None}


@pytest.mark.parametrize("raw, says", [
    (text("{not json"), "not JSON"),
    (text("[1, 2]"), "expected an object"),
    (text({"kind": "keys"}), "expected an object with a 'type'"),
    (text({"type": "teleport"}), "unknown message type"),
    (text({"type": "keys", "down": "ArrowUp", "seq": 1}), "list of at most"),
    (text({"type": "keys", "down": ["x" * 33], "seq": 1}), "list of at most"),
    (text({"type": "keys", "down": ["k"] * 17, "seq": 1}), "list of at most"),
    (text({"type": "keys", "down": [], "seq": -1}), "integer from 0"),
    (text({"type": "keys", "down": [], "seq": True}), "integer from 0"),
    (text({"type": "pause", "on": "yes"}), "true or false"),
    (text({"type": "sampling_steps", "value": 0}), "integer from 1"),
    (text({"type": "reset", "seed": 1.5}), "integer from 0"),
    (text({"type": "keys", "down": [], "seq": 1, "pad": "x" * MAX_MESSAGE_BYTES}), "too large"),
    (text("[" * 100_000), "too large"),
    ({"type": "websocket.receive", "bytes": b"\x00\x01"}, "binary"),
])
def test_bad_messages_are_refused_with_a_reason(raw, says):
    with pytest.raises(ProtocolError, match=says):
        parse_message(raw)


def test_deeply_nested_json_under_the_limit_is_refused_not_crashing():
    with pytest.raises(ProtocolError):
        parse_message(text("[" * 4000))


def test_frame_round_trip():
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = 255 - a
    out = unpack_frame(pack_frame([a, b], step=7, seq=42, step_ms=3.5, flags=5))
    assert (out["step"], out["seq"], out["width"], out["height"], out["flags"]) == (7, 42, 16, 16, 5)
    assert out["step_ms"] == pytest.approx(3.5)
    np.testing.assert_array_equal(out["views"][0], a)
    np.testing.assert_array_equal(out["views"][1], b)
