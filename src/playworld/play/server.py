"""The play server: FastAPI serves the page, one websocket per player runs a `PlaySession`.

Each connection gets its own session (its own model state and real world) and a tick task that
steps the model every 1/fps seconds with the keys held at that moment, so a held key keeps acting;
a model slower than the tick simply runs as fast as it can (no catch-up bursts). Model calls run in
one worker thread shared by all sessions: torch already uses every core for one step, and a single
worker keeps sessions from fighting over them (and keeps non-thread-safe worlds safe).

No client can take the server from the others (play/fair.py, play/guard.py):
- model time is shared fairly: the waiting call of the least-served session goes next;
- each session has a message budget; beyond it key states are coalesced, other messages dropped
  and counted, the client's messages are read more slowly, and its model time is charged several
  times over for a while;
- each session has its own sampling steps, capped per session (`max_sampling_steps`);
- websockets from foreign web pages (Origin), requests naming a foreign Host (DNS rebinding) and,
  with a token, requests without it are refused before any session is made.

At most `max_sessions` players at once; the next one gets a "busy" message and the socket closes
(code 1013, try again later). A session's resources go when its socket does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Callable, Iterable

import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from rich.console import Console

from playworld.compute import set_threads
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel
from playworld.play.contexts import ContextSource
from playworld.play.fair import FairScheduler, MessageBudget
from playworld.play.guard import Guard, is_loopback, new_token
from playworld.play.protocol import Message, ProtocolError, pack_frame, parse_message
from playworld.play.record import encode_recording
from playworld.play.session import PlaySession, max_sampling_steps_of, sampling_steps_of

log = logging.getLogger("playworld.play")
STATIC = resources.files("playworld.play") / "static"
MAX_RECORDINGS = 16  # finished recordings kept in memory for download, oldest dropped first
STATUS_EVERY_S = 1.0
MESSAGE_RATE, MESSAGE_BURST = 30.0, 60
"""a session's message budget: a burst of this many, then this many a second (a player sends a few per key)"""
WORK_RATE, WORK_BURST = 5.0, 20
"""of that, the messages other than key states (each asks for model work or a status): a burst and a rate"""
OVER_BUDGET_READ_S = 1 / MESSAGE_RATE
"""beyond its budget a client's messages are read no faster than one per this many seconds (so a flood costs
the server at most twice the budget's parsing; the rest waits in the client's socket)"""
FLOODER_WEIGHT, FLOODER_MEMORY_S = 4.0, 5.0
"""a session that went over its message budget in the last FLOODER_MEMORY_S seconds has its model time
charged FLOODER_WEIGHT times over (play/fair.py), so flooding also costs the flooder its frames"""
STEPS_CAP_FACTOR = 4
"""by default a player may raise the sampling steps to this many times the model's own, at most"""

__all__ = ["PlayServer", "ServerThread", "configure_torch_threads", "is_loopback", "new_token", "serve"]


def configure_torch_threads() -> int:
    """Threads for model steps: OMP_NUM_THREADS (which `--threads` sets) or the cores not already busy."""
    threads = set_threads(None)
    with contextlib.suppress(RuntimeError):  # can only be set before inter-op work has started
        torch.set_num_interop_threads(1)
    return threads


class PlayServer:
    """`allowed_origins`: web origins besides loopback pages that may open sessions ('*' for any);
    `token`: required of every request when set; `max_sampling_steps`: the most a player may set
    (default: STEPS_CAP_FACTOR times the model's own, within the model's maximum)."""

    def __init__(
        self, model: WorldModel, contexts: ContextSource, fps: float = 15.0, max_sessions: int = 4,
        seed: int = 0, title: str = "playworld", allowed_origins: Iterable[str] = (), token: str | None = None,
        max_sampling_steps: int | None = None, message_rate: float = MESSAGE_RATE, message_burst: int = MESSAGE_BURST,
    ):
        if not fps > 0:
            raise PlayworldError(f"--fps {fps} must be above 0", "use e.g. --fps 15")
        if max_sessions < 1:
            raise PlayworldError(f"--max-sessions {max_sessions} must be at least 1", "use e.g. --max-sessions 4")
        self.model, self.contexts, self.fps, self.max_sessions = model, contexts, float(fps), int(max_sessions)
        self.seed, self.title = int(seed), title
        self.sampling_steps, self.max_sampling_steps = _steps_cap(model, max_sampling_steps)
        self.message_rate, self.message_burst = float(message_rate), int(message_burst)
        self.active = 0
        self.stats = {"busy": 0, "dropped": 0, "coalesced": 0}
        self._ids = itertools.count()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playworld-model")
        self.scheduler = FairScheduler(self.executor)
        self.guard = Guard(allowed_origins, token)
        self.recordings: OrderedDict[str, tuple[bytes, dict]] = OrderedDict()
        self.app = self.guard.wrap(self._build_app())

    @property
    def token(self) -> str | None:
        return self.guard.token

    # -- http -----------------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="playworld play", docs_url=None, redoc_url=None, openapi_url=None)
        app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

        @app.get("/", response_class=HTMLResponse)
        def index(request: Request) -> HTMLResponse:
            page = HTMLResponse((STATIC / "index.html").read_text())
            if self.guard.token and request.query_params.get("token"):  # (the guard checked it) remember it
                page.set_cookie(self.guard.cookie, self.guard.token, httponly=True, samesite="strict")
            return page

        @app.get("/api/info")
        def info() -> dict:
            return {"title": self.title, "spec": self.model.spec.to_dict(), "fps": self.fps,
                    "sessions": self.active, "max_sessions": self.max_sessions,
                    "max_sampling_steps": self.max_sampling_steps,
                    "refused": {**self.guard.refused, "busy": self.stats["busy"]},
                    "messages": {"dropped": self.stats["dropped"], "coalesced": self.stats["coalesced"]},
                    "model": {str(who): {"seconds": round(t, 2), "calls": self.scheduler.calls.get(who, 0)}
                              for who, t in self.scheduler.seconds.items()}}

        @app.get("/recordings/{rid}.mp4")
        def recording_mp4(rid: str) -> Response:
            mp4, _ = self._recording(rid)
            return Response(mp4, media_type="video/mp4",
                            headers={"Content-Disposition": f'attachment; filename="playworld-{rid}.mp4"'})

        @app.get("/recordings/{rid}.json")
        def recording_json(rid: str) -> JSONResponse:
            _, meta = self._recording(rid)
            return JSONResponse(meta, headers={"Content-Disposition": f'attachment; filename="playworld-{rid}.json"'})

        app.add_api_websocket_route("/ws", self._websocket)
        return app

    def _recording(self, rid: str) -> tuple[bytes, dict]:
        if rid not in self.recordings:
            raise HTTPException(404, "no such recording (only the newest ones are kept)")
        return self.recordings[rid]

    # -- websocket ------------------------------------------------------------------------------
    async def _websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        if self.active >= self.max_sessions:
            self.stats["busy"] += 1
            await ws.send_json({"type": "busy", "message": f"server busy: all {self.max_sessions} play sessions are "
                                "in use; try again when a player leaves"})
            await ws.close(code=1013)
            return
        self.active += 1  # the event loop is single-threaded: count and check cannot interleave
        try:
            await _Connection(self, ws).run()
        finally:
            self.active -= 1

    async def call(self, fn: Callable, *args: Any, who: int = -1, weight: float = 1.0) -> Any:
        """Run model work off the event loop, in the shared model thread, fairly between sessions (`who`)."""
        return await self.scheduler.run(who, fn, *args, weight=weight)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class _Connection:
    """One websocket: the receive loop (messages) and the tick task (frames)."""

    def __init__(self, server: PlayServer, ws: WebSocket):
        self.server, self.ws, self.id = server, ws, next(server._ids)
        self.session = PlaySession(server.model, server.contexts, seed=server.seed + 7919 * self.id,
                                   sampling_steps=server.sampling_steps, max_sampling_steps=server.max_sampling_steps)
        self.model_lock = asyncio.Lock()  # this session's model calls, one at a time
        self.send_lock = asyncio.Lock()  # one message on the wire at a time
        self.steps_done, self.rate_t0, self.rate = 0, time.perf_counter(), 0.0
        self.budget = MessageBudget(server.message_rate, server.message_burst)
        self.work_budget = MessageBudget(WORK_RATE, WORK_BURST)  # of it, the messages that cost model work
        self.last_rate_error = self.flooded_at = -FLOODER_MEMORY_S

    async def call(self, fn: Callable, *args: Any) -> Any:
        flooding = time.monotonic() - self.flooded_at < FLOODER_MEMORY_S
        return await self.server.call(fn, *args, who=self.id, weight=FLOODER_WEIGHT if flooding else 1.0)

    async def send_json(self, obj: dict) -> None:
        async with self.send_lock:
            await self.ws.send_json(obj)

    async def send_frame(self, out=None) -> None:
        s = self.session
        data = pack_frame(out.views, out.step, out.seq, out.step_ms, out.flags) if out else pack_frame(
            s.views(), s.t, s._keys[1], s.last_step_ms, s.flags())
        async with self.send_lock:
            await self.ws.send_bytes(data)

    async def error(self, message: str, about: str | None = None) -> None:
        await self.send_json({"type": "error", "message": message, "about": about})

    async def status(self, **extra: Any) -> None:
        async with self.model_lock:
            st = await self.call(self.session.status)
        await self.send_json({**st, "fps": round(self.rate, 2), "tick_fps": self.server.fps, **extra})

    async def run(self) -> None:
        try:
            async with self.model_lock:
                await self.call(self.session.reset, None)
        except PlayworldError as e:
            await self.error(str(e), "reset")
            await self.ws.close(code=1011)
            return
        ticker = None
        try:
            await self.send_json(self.session.hello())
            await self.send_frame()
            ticker = asyncio.create_task(self.tick())
            while True:
                raw = await self.ws.receive()
                if raw["type"] == "websocket.disconnect":
                    break
                within = self.budget.take()
                try:
                    msg = parse_message(raw)
                except ProtocolError as e:
                    await (self.error(str(e)) if within else self.over_budget(None))
                    continue
                if within and msg.type != "keys":  # everything but keys asks for model work or a status
                    within = self.work_budget.take()
                if not within:
                    await self.over_budget(msg)
                    continue
                try:
                    await self.handle(msg)
                except (ProtocolError, PlayworldError) as e:
                    await self.error(str(e))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-send
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ticker
            async with self.model_lock:  # free the session's model state and real world, after its last model call
                with contextlib.suppress(Exception):
                    await self.call(self._free)
            self.server.scheduler.forget(self.id)

    def _free(self) -> None:
        real, self.session.state, self.session.real = self.session.real, None, None
        if real is not None:
            with contextlib.suppress(Exception):
                real.close()

    async def over_budget(self, msg: Message | None) -> None:
        """A message beyond the budget (None: a malformed one): a key state still wins (coalesced), anything
        else is dropped and counted; one error a second says so; the next message is read a little later
        (back-pressure), and the session's model time costs more for a while (FLOODER_WEIGHT)."""
        stats = self.server.stats
        self.flooded_at = time.monotonic()
        if msg is not None and msg.type == "keys":
            self.session.set_keys(msg.fields["down"], msg.fields["seq"])
            self.budget.coalesced += 1
            stats["coalesced"] += 1
        else:
            self.budget.dropped += 1
            stats["dropped"] += 1
            now = time.monotonic()
            if now - self.last_rate_error >= 1.0:
                self.last_rate_error = now
                await self.send_json({"type": "error", "about": "rate", "message": (
                    f"too many messages: {self.budget.dropped} dropped so far; send at most "
                    f"{self.server.message_rate:g} a second")})
        await asyncio.sleep(OVER_BUDGET_READ_S)

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.server.fps
        next_t = last_status = loop.time()
        try:
            while True:
                if not self.session.paused:
                    await self.step_and_send()
                now = loop.time()
                if now - last_status >= STATUS_EVERY_S:
                    last_status = now
                    await self.status()
                next_t = max(next_t + period, now)  # capped by the model's speed; never bursts to catch up
                await asyncio.sleep(next_t - now)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the socket closed; the receive loop cleans up

    async def step_and_send(self) -> None:
        try:
            async with self.model_lock:
                out = await self.call(self.session.step)
        except Exception as e:  # a failing model must not take the server down: pause and say why
            log.exception("model step failed")
            self.session.paused = True
            await self.error(f"model step failed ({type(e).__name__}: {e}); paused", "step")
            return
        self.steps_done += 1
        now = time.perf_counter()
        if now - self.rate_t0 >= 1.0:
            self.rate, self.steps_done, self.rate_t0 = self.steps_done / (now - self.rate_t0), 0, now
        await self.send_frame(out)
        rec = self.session.recording
        if rec is not None and rec.full:
            await self.finish_recording()

    async def finish_recording(self) -> None:
        rec = self.session.stop_recording()
        if rec is None or not rec.frames:
            await self.error("not recording", "record")
            return
        # encoded beside the model thread (not in it), so no session's frames stall meanwhile
        mp4, meta = await asyncio.to_thread(encode_recording, rec, self.session.spec, self.server.fps)
        rid = secrets.token_urlsafe(8)
        recs = self.server.recordings
        recs[rid] = (mp4, meta)
        while len(recs) > MAX_RECORDINGS:
            recs.popitem(last=False)
        await self.send_json({"type": "recording", "id": rid, "mp4": f"/recordings/{rid}.mp4",
                              "json": f"/recordings/{rid}.json", "frames": meta["frames"], "bytes": len(mp4)})
        await self.status()

    async def handle(self, msg: Message) -> None:
        s, f = self.session, msg.fields
        if msg.type == "keys":
            s.set_keys(f["down"], f["seq"])
        elif msg.type == "reset":
            async with self.model_lock:
                await self.call(s.reset, f["seed"])
            await self.send_frame()
            await self.status(event="reset")
        elif msg.type == "pause":
            s.paused = f["on"]
            await self.status()
        elif msg.type == "step":
            if not s.paused:
                raise ProtocolError("'step' advances one step while paused; pause first")
            await self.step_and_send()
        elif msg.type == "agent":
            s.set_agent(f["name"])
            await self.status()
        elif msg.type == "sampling_steps":
            async with self.model_lock:
                await self.call(s.set_sampling_steps, f["value"])
            await self.status()
        elif msg.type == "record":
            if f["on"]:
                if s.recording is not None:
                    raise ProtocolError("already recording")
                s.start_recording()
                await self.status()
            else:
                await self.finish_recording()
        elif msg.type == "status":
            await self.status()


def _steps_cap(model: WorldModel, cap: int | None) -> tuple[int | None, int | None]:
    """(a session's starting sampling steps, the most a player may set) for a TunableSampler model, else Nones."""
    own, top = sampling_steps_of(model), max_sampling_steps_of(model)
    if top is None:
        return None, None
    if cap is None:
        cap = min(top, STEPS_CAP_FACTOR * own)
    if not 1 <= cap <= top:
        raise PlayworldError(f"--max-sampling-steps {cap} is outside 1 to {top}", f"choose 1 to {top}")
    return min(own, cap), int(cap)


# -- running it -------------------------------------------------------------------------------------
def _uvicorn_config(app: Any, host: str, port: int, log_level: str = "warning"):
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=1 << 20, ws_ping_interval=20,
                          lifespan="off")


def url_of(server: PlayServer, host: str, port: int) -> str:
    """The address to open, with the token in it when there is one (as Jupyter prints its own)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/" + (f"?token={server.token}" if server.token else "")


def serve(server: PlayServer, host: str = "127.0.0.1", port: int = 8765, log_level: str = "warning") -> None:
    """Serve until interrupted. Binding anything but loopback, or allowing foreign origins, is allowed but warned about."""
    console = Console(stderr=True, highlight=False)
    server.guard.bind(host)
    if not is_loopback(host):
        who = ("anyone who can reach this address and has the token" if server.token else
               "anyone who can reach this address")
        auth = "" if server.token else "; there is no authentication (--token auto requires one)"
        console.print(f"[bold yellow]warning:[/] serving on {host}: {who} can play and use this machine's CPU{auth}.")
    if server.guard.allowed_origins:
        console.print(f"[bold yellow]warning:[/] web pages from {', '.join(sorted(server.guard.allowed_origins))} may "
                      "open play sessions (not only pages on this machine's loopback).")
    console.print(f"playworld play: open [bold]{url_of(server, host, port)}[/] "
                  f"({server.title}; {server.fps:g} steps/s; {server.max_sessions} sessions at most; Ctrl-C stops)")
    try:
        uvicorn.Server(_uvicorn_config(server.app, host, port, log_level)).run()
    finally:
        server.close()


class ServerThread:
    """uvicorn in a background thread (tests, benchmarks, notebooks): `with ServerThread(app, port) as url:`."""

    def __init__(self, app: Any, port: int, host: str = "127.0.0.1"):
        self.server = uvicorn.Server(_uvicorn_config(app, host, port))
        self.server.install_signal_handlers = lambda: None  # only the main thread may install them
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="playworld-uvicorn")
        self.url = f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the play server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
