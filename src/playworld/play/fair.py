"""Sharing the server between players: fair model time, and a budget of messages per session.

    scheduler = FairScheduler(executor)
    frame = await scheduler.run(session_id, session.step)     # model work, least-served session first
    budget = MessageBudget(rate=30, burst=60)
    if budget.take(): handle(message) else: drop or coalesce it

**Fair model time.** Every model call of every session runs in one worker thread (torch already
uses the cores for one call). Calls are not served first come first served: the waiting call of
the session that has used the least model time so far goes next (start-time fair queueing). A
session whose steps cost 16 times as much (more sampling steps) then gets about a sixteenth of the
steps, not sixteen times the machine; a session coming back from a pause is lifted to the others'
level, so it cannot spend a long idle spell as a burst. A call may weigh more than its time (`weight`):
the server charges a session that is flooding it several times over, so it gets less of the model.

**Message budget.** A token bucket per session: `burst` messages at once, `rate` per second after
that. What the budget refuses is not processed: key states are coalesced (only the newest matters,
and taking it costs nothing), anything else is dropped and counted.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

CATCH_UP_S = 0.05
"""how far behind the most-served waiting session a returning one may start (a little burst, not a long one)"""


@dataclass
class _Job:
    who: int
    order: int
    fn: Callable
    args: tuple
    future: asyncio.Future
    weight: float = 1.0
    took: float = 0.0


class FairScheduler:
    """Run model calls in `executor` (one worker) one at a time, least-served session first."""

    def __init__(self, executor: Executor):
        self.executor = executor
        self.used: dict[int, float] = {}  # model seconds each session has had, weighted (lifted on return, see run)
        self.seconds: dict[int, float] = {}  # model seconds each session has really had (for /api/info)
        self.calls: dict[int, int] = {}
        self.floor = 0.0  # the `used` of the job started last: where a returning session starts
        self._waiting: list[_Job] = []
        self._busy = False
        self._order = itertools.count()

    async def run(self, who: int, fn: Callable, *args: Any, weight: float = 1.0) -> Any:
        """fn(*args) in the worker, when `who` is the least-served waiting session; its time counts `weight` times."""
        loop = asyncio.get_running_loop()
        self.used[who] = max(self.used.get(who, 0.0), self.floor - CATCH_UP_S)
        job = _Job(who, next(self._order), fn, args, loop.create_future(), weight)
        self._waiting.append(job)
        self._start_next(loop)
        return await job.future

    def forget(self, who: int) -> None:
        for table in (self.used, self.seconds, self.calls):
            table.pop(who, None)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _start_next(self, loop: asyncio.AbstractEventLoop) -> None:
        while not self._busy and self._waiting:
            job = min(self._waiting, key=lambda j: (self.used.get(j.who, self.floor), j.order))
            self._waiting.remove(job)
            if job.future.done():  # its caller went away while it waited
                continue
            self._busy = True
            self.floor = max(self.floor, self.used.get(job.who, self.floor))
            running = loop.run_in_executor(self.executor, _timed, job)
            running.add_done_callback(lambda f, job=job: self._finished(loop, job, f))

    def _finished(self, loop: asyncio.AbstractEventLoop, job: _Job, done: asyncio.Future) -> None:
        self._busy = False
        if job.who in self.used:
            self.used[job.who] += job.took * job.weight
        self.seconds[job.who] = self.seconds.get(job.who, 0.0) + job.took
        self.calls[job.who] = self.calls.get(job.who, 0) + 1
        if not job.future.done():
            if done.cancelled():
                job.future.cancel()
            elif done.exception() is not None:
                job.future.set_exception(done.exception())
            else:
                job.future.set_result(done.result())
        elif not done.cancelled():
            done.exception()  # retrieved, so asyncio does not log it: the caller had gone
        self._start_next(loop)


def _timed(job: _Job) -> Any:
    start = time.perf_counter()
    try:
        return job.fn(*job.args)
    finally:
        job.took = time.perf_counter() - start


@dataclass
class MessageBudget:
    """A token bucket: `burst` messages at once, then `rate` per second; counts what it refuses."""

    rate: float = 30.0
    burst: float = 60.0
    tokens: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)
    dropped: int = 0
    """messages refused and not processed"""
    coalesced: int = 0
    """key states refused as messages but kept as the newest key state"""

    def __post_init__(self):
        if self.tokens < 0:
            self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
