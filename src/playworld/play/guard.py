"""Who may use the play server: Host and Origin checks and an optional token, in front of the app.

    guard = Guard(allowed_origins=["https://notebook.example"], token="s3cret")
    app = guard.wrap(fastapi_app)

- **Host.** Every HTTP request and websocket must name the server by a loopback name (`localhost`,
  `127.0.0.1`, `[::1]`, any port) or by a host it was told about (the address it binds, the hosts
  of allowed origins). A page on `evil.example` whose DNS is rebound to 127.0.0.1 sends
  `Host: evil.example` and is refused. Binding every interface (0.0.0.0) cannot know its own
  names, so there the check is off and the token is the defence.
- **Origin.** A browser puts the page's origin on every websocket handshake, and no same-origin
  policy stops a foreign page from opening one, so websockets from an origin that is neither
  loopback, nor allowed, nor the server's own page (the origin naming the Host that passed the
  check above) are refused (403) before a session is made. A handshake without an Origin comes
  from a program, not a web page, and passes.
- **Token.** With a token, `/`, `/api/*`, `/recordings/*` and `/ws` need it, as `?token=` (the URL
  printed at start, as Jupyter prints its own) or the cookie that opening that URL sets; the
  static files (the page's script and style) do not. Compared in constant time.

Refusals are counted (`refused`), for the load bench.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections import Counter
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")
OPEN_PATHS = ("/static/",)
"""paths served without the token: the page's script and style, nothing of the model or the sessions"""


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_of(netloc: str) -> str:
    """'127.0.0.1:8765' -> '127.0.0.1', '[::1]:80' -> '::1', 'Example.org' -> 'example.org'."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:netloc.find("]")] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard:
    """The Host/Origin/token policy of one server, and an ASGI wrapper that applies it."""

    def __init__(self, allowed_origins: Iterable[str] = (), token: str | None = None):
        self.allowed_origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.any_origin = "*" in self.allowed_origins
        self.hosts: set[str] = {host_of(urlsplit(o).netloc) for o in self.allowed_origins if "://" in o}
        self.any_host = False
        self.token = token or None
        self.cookie = f"playworld-token-{hashlib.sha256(self.token.encode()).hexdigest()[:8]}" if self.token else None
        self.refused: Counter[str] = Counter()

    def bind(self, host: str) -> None:
        """The address the server listens on: a specific one becomes a name it answers to; 0.0.0.0 / :: any."""
        if host in ("0.0.0.0", "::", ""):
            self.any_host = True
        elif not is_loopback(host):
            self.hosts.add(host_of(host))

    # -- the checks ------------------------------------------------------------------------------
    def refusal(self, scope: dict) -> tuple[int, str] | None:
        """(HTTP status, reason) when `scope` (an ASGI http or websocket scope) may not come in, else None."""
        headers = _headers(scope)
        host = host_of(headers.get("host", ""))
        if not self.any_host and not (is_loopback(host) or host in self.hosts):
            return 400, "host"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin is not None and not self.origin_ok(origin, headers.get("host", "")):
            return 403, "origin"
        if self.token and not scope.get("path", "/").startswith(OPEN_PATHS) and not self.token_ok(scope, headers):
            return 403, "token"
        return None

    def origin_ok(self, origin: str, host: str = "") -> bool:
        """Loopback pages, allowed origins, and the server's own page (same origin: the Host passed its check)."""
        origin = origin.strip().rstrip("/").lower()
        if self.any_origin or origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https"):
            return False
        return is_loopback(host_of(parts.netloc)) or (bool(host) and parts.netloc == host.strip().lower())

    def token_ok(self, scope: dict, headers: dict[str, str]) -> bool:
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[-1]
        if not given:
            given = _cookies(headers.get("cookie", "")).get(self.cookie, "")
        return secrets.compare_digest(given.encode(), self.token.encode())

    # -- as ASGI middleware ----------------------------------------------------------------------
    def wrap(self, app: Any) -> Any:
        async def guarded(scope, receive, send):
            if scope["type"] in ("http", "websocket"):
                refused = self.refusal(scope)
                if refused is not None:
                    status, why = refused
                    self.refused[why] += 1
                    await _refuse(scope, send, status, why)
                    return
            await app(scope, receive, send)

        return guarded


_REASONS = {
    "host": "the Host header names neither this machine's loopback nor an address this server was started for",
    "origin": "websockets are accepted from loopback pages only (start the server with --allow-origin to allow others)",
    "token": "this server needs its token: open the URL it printed when it started (.../?token=...)",
}


async def _refuse(scope: dict, send, status: int, why: str) -> None:
    if scope["type"] == "websocket":  # a close before the accept: the handshake is answered 403
        await send({"type": "websocket.close", "code": 1008})
        return
    body = f"refused: {_REASONS[why]}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out[name] = value
    return out
