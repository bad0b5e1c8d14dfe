"""The websocket protocol between the play page and the server.

Client -> server: JSON text messages of at most 4 KiB, each an object with a "type":

    {"type": "keys", "down": ["ArrowUp", "KeyW"], "seq": 12}   held keys, oldest first; seq counts key events
    {"type": "reset", "seed": 3}                               a new real context (seed optional)
    {"type": "pause", "on": true}     {"type": "step"}         pause the tick / advance one step while paused
    {"type": "agent", "name": "random"}                        hand control to a policy (null: back to the keys)
    {"type": "sampling_steps", "value": 4}                     for models that expose `sampling_steps`
    {"type": "record", "on": true}                             start / stop (stop answers with download links)
    {"type": "status"}                                         ask for a status message now

Anything else (not JSON, not an object, over 4 KiB, binary, an unknown type or a bad field) is
answered with {"type": "error", "message": ...} and otherwise ignored.

Each session has a budget of messages (play/fair.py: a burst of 60, then 30 a second, of which a
burst of 20 and 5 a second may be other than "keys"). Beyond it a "keys" message still sets the
held keys (the newest key state wins) but anything else is dropped, counted and answered by at most
one {"type": "error", "about": "rate"} a second, and the server reads that client's messages more
slowly and charges its model time more, so a flooding client costs the others little.

Server -> client: JSON text ("hello", "status", "recording", "error", "busy") and binary frames:
a 24-byte little-endian header, then `views` raw RGB images of height x width x 3 bytes (the model
first, then the real world when shown). Raw RGB beats PNG here: 12 KiB per 64x64 view costs nothing
on a local socket, while PNG costs encode time on the server and an async decode in the browser
(bench/speed/play_latency.py measures both).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_MESSAGE_BYTES = 4096
MAX_KEYS, MAX_KEY_LEN = 16, 32
MAX_INT = 2**31 - 1

HEADER = struct.Struct("<4sIIHHBBHf")  # magic, step, applied key seq, width, height, views, flags, reserved, step ms
MAGIC = b"PWF1"
FLAG_AGENT, FLAG_RECORDING, FLAG_REAL_DONE, FLAG_PAUSED = 1, 2, 4, 8


class ProtocolError(ValueError):
    """A client message the server cannot use; its text goes back to the client."""


def _int(msg: dict, name: str, lo: int, hi: int, required: bool = True) -> int | None:
    v = msg.get(name)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolError(f"'{msg['type']}' needs '{name}' as an integer from {lo} to {hi}")
    return v


def _bool(msg: dict, name: str) -> bool:
    v = msg.get(name)
    if not isinstance(v, bool):
        raise ProtocolError(f"'{msg['type']}' needs '{name}' as true or false")
    return v


def _key_code(k: Any) -> bool:
    """A KeyboardEvent.code ('ArrowUp', 'KeyW'): short printable ASCII. (Status messages echo the held keys, so
    a lone surrogate from a JSON escape would make the reply unencodable and end the session.)"""
    return isinstance(k, str) and 0 < len(k) <= MAX_KEY_LEN and k.isascii() and k.isprintable()


def _keys(msg: dict) -> list[str]:
    v = msg.get("down")
    if not isinstance(v, list) or len(v) > MAX_KEYS or not all(_key_code(k) for k in v):
        raise ProtocolError(f"'keys' needs 'down' as a list of at most {MAX_KEYS} key codes")
    return list(dict.fromkeys(v))  # drop repeats, keep press order


def _agent(msg: dict) -> str | None:
    v = msg.get("name")
    if v is not None and (not isinstance(v, str) or len(v) > 64 or not v.isprintable() or not _encodable(v)):
        raise ProtocolError("'agent' needs 'name' as an agent name or null")
    return v


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate (from a JSON escape): it could not be sent back
        return False


# type -> function validating the message and returning its cleaned fields
_FIELDS = {
    "keys": lambda m: {"down": _keys(m), "seq": _int(m, "seq", 0, MAX_INT)},
    "reset": lambda m: {"seed": _int(m, "seed", 0, MAX_INT, required=False)},
    "pause": lambda m: {"on": _bool(m, "on")},
    "step": lambda m: {},
    "agent": lambda m: {"name": _agent(m)},
    "sampling_steps": lambda m: {"value": _int(m, "value", 1, 1000)},
    "record": lambda m: {"on": _bool(m, "on")},
    "status": lambda m: {},
}
MESSAGE_TYPES = tuple(_FIELDS)


@dataclass
class Message:
    type: str
    fields: dict[str, Any]


def parse_message(raw: dict) -> Message:
    """An ASGI websocket.receive event -> a validated Message, or ProtocolError."""
    if raw.get("bytes") is not None:
        raise ProtocolError("binary messages are not accepted; send JSON text")
    text = raw.get("text")
    if text is None:
        raise ProtocolError("empty message")
    if len(text) > MAX_MESSAGE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message too large (over {MAX_MESSAGE_BYTES} bytes)")
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise ProtocolError("malformed message: not JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("malformed message: expected an object with a 'type'")
    kind = msg["type"]
    if kind not in _FIELDS:
        raise ProtocolError(f"unknown message type {kind[:40]!r}; known: {', '.join(MESSAGE_TYPES)}")
    return Message(kind, _FIELDS[kind](msg))


def pack_frame(views: list[np.ndarray], step: int, seq: int, step_ms: float, flags: int) -> bytes:
    """views: (H, W, 3) uint8 images of one size -> header + raw RGB bytes of each."""
    h, w, _ = views[0].shape
    header = HEADER.pack(MAGIC, step & 0xFFFFFFFF, seq & 0xFFFFFFFF, w, h, len(views), flags, 0, float(step_ms))
    return header + b"".join(np.ascontiguousarray(v, dtype=np.uint8).tobytes() for v in views)


def unpack_frame(data: bytes) -> dict:
    """The inverse of `pack_frame` (tests and benchmarks read frames with it)."""
    magic, step, seq, w, h, n, flags, _, step_ms = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("not a playworld frame")
    body = np.frombuffer(data, np.uint8, offset=HEADER.size).reshape(n, h, w, 3)
    return {"step": step, "seq": seq, "width": w, "height": h, "views": list(body), "flags": flags, "step_ms": step_ms}


def to_jsonable(obj: Any) -> Any:
    """numpy arrays / scalars inside dicts and lists -> plain lists and numbers."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
