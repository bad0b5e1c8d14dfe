"""One player's session: its own model state, real world, key state, agent and recording.

`PlaySession` is plain synchronous code with no network in it; the server calls `reset` and `step`
from a worker thread (one at a time per session) and `set_keys` / `set_agent` from the event loop.
The key state is one tuple swapped atomically, so a step sees either the old or the new keys.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from playworld.errors import PlayworldError
from playworld.metrics import psnr
from playworld.models.interface import DebugState, TunableSampler, WorldModel, WorldReplay, model_device
from playworld.play.contexts import ContextSource
from playworld.play.controls import Agent, KeyMap, list_agents, make_agent
from playworld.play.protocol import FLAG_AGENT, FLAG_PAUSED, FLAG_REAL_DONE, FLAG_RECORDING, to_jsonable

MAX_RECORD_FRAMES = 1800  # 2 minutes at 15 fps: caps a recording's memory (~22 MiB per view at 64x64)
DRIFT_PSNR_DB = 16.0
"""below this PSNR against the real world's view, play says the model has drifted"""
DRIFT_TEXTURE = (0.5, 2.0)
"""outside this ratio of the model frame's edge energy to the starting real frame's, play says it has drifted
(colour noise raises it, a smeared-out world lowers it)"""


def texture(frame: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels of an (H, W, 3) uint8 frame: its edge energy."""
    f = frame.astype(np.float32)
    return float(np.abs(np.diff(f, axis=0)).mean() + np.abs(np.diff(f, axis=1)).mean())


def drift_report(model_frame: np.ndarray, start_texture: float, real_frame: np.ndarray | None) -> dict:
    """How far the model's newest frame has wandered: PSNR against the real world's view (when shown) and
    its edge energy against the starting real frame's, with a hint for the player when it has drifted."""
    psnr_db = None if real_frame is None else float(psnr(model_frame[None], real_frame[None], channels_first=False)[0])
    ratio = texture(model_frame) / max(start_texture, 1e-6)
    why = []
    if psnr_db is not None and psnr_db < DRIFT_PSNR_DB:
        why.append(f"{psnr_db:.1f} dB from the real view")
    if not DRIFT_TEXTURE[0] <= ratio <= DRIFT_TEXTURE[1]:
        why.append(f"{'noisier' if ratio > 1 else 'smoother'} than the real world ({ratio:.1f}x its edges)")
    hint = f"the model has drifted ({'; '.join(why)}): press R for a new real start" if why else None
    return {"psnr_vs_real": psnr_db, "texture_ratio": round(ratio, 3), "drifted": bool(why), "hint": hint}


def describe_source(source: dict) -> str:
    """Where a context came from, in words for the page (a `Context.source` dict)."""
    seed = f", seed {source['seed']}" if "seed" in source else ""
    if source.get("from") == "env":
        return f"new start in the real {source.get('world', 'world')}{seed}"
    if source.get("from") == "data":
        return f"new start from {source.get('path')}, episode {source.get('episode')} at step {source.get('t')}{seed}"
    return "new start" + seed


@dataclass
class Recording:
    frames: list[np.ndarray] = field(default_factory=list)  # model frames (H, W, 3), the first is the context's newest
    real: list[np.ndarray] = field(default_factory=list)  # real-world frames, same length, when shown
    actions: list[Any] = field(default_factory=list)  # action leading into frames[i + 1]
    by_agent: list[bool] = field(default_factory=list)
    source: dict = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return len(self.frames) >= MAX_RECORD_FRAMES


@dataclass
class StepOut:
    views: list[np.ndarray]  # model frame, then the real world's frame when shown; (H, W, 3) uint8
    step: int
    seq: int  # the key event seq the action was computed from
    step_ms: float  # model.step wall time
    flags: int


def sampling_steps_of(model: Any) -> int | None:
    """The model's number of sampling steps, if it has a `TunableSampler` (else None)."""
    return int(model.sampling_steps) if isinstance(model, TunableSampler) else None


def max_sampling_steps_of(model: Any) -> int | None:
    return int(model.max_sampling_steps) if isinstance(model, TunableSampler) else None


class PlaySession:
    """`sampling_steps` (for a `TunableSampler` model) is this session's own: the shared model is set to
    it before each of this session's steps, so one player's dial never changes another's frames or
    speed; `max_sampling_steps` caps it (the server's per-session cap, at most the model's own maximum)."""

    def __init__(self, model: WorldModel, contexts: ContextSource, seed: int = 0, device: Any = None,
                 sampling_steps: int | None = None, max_sampling_steps: int | None = None):
        self.model, self.contexts, self.spec = model, contexts, model.spec
        top = max_sampling_steps_of(model)
        self.max_sampling_steps = top if top is None or max_sampling_steps is None else min(top, int(max_sampling_steps))
        own = sampling_steps_of(model) if sampling_steps is None else int(sampling_steps)
        self.sampling_steps = None if top is None else min(own, self.max_sampling_steps)
        self.keymap = KeyMap(self.spec.action_space)
        self.device = torch.device(device) if device is not None else model_device(model)
        self.seed, self.resets = int(seed), 0
        self._keys: tuple[tuple[str, ...], int] = ((), 0)  # (held codes oldest first, seq)
        self._tapped: list[str] = []  # keys pressed since the last step: a tap between two ticks still acts once
        self._tap_lock = threading.Lock()
        self.agent: Agent | None = None
        self.agent_name: str | None = None
        self.paused = False
        self.recording: Recording | None = None
        self.state: Any = None
        self.real: Any = None  # the real world stepped beside the model, or None
        self.real_state: dict | None = None
        self.real_done = False
        self.frame: np.ndarray | None = None  # newest model frame (H, W, 3)
        self.real_frame: np.ndarray | None = None
        self.t = 0
        self.source: dict = {}
        self.last_step_ms = 0.0
        self.last_action: Any = None  # the action the last step took, and whether the agent chose it
        self.last_by_agent = False
        self.start_texture = 1.0  # edge energy of the real frame the model started from
        self.drift: dict | None = None

    # -- controls (event loop) -----------------------------------------------------------------
    def set_keys(self, down: list[str], seq: int) -> None:
        with self._tap_lock:
            before = set(self._keys[0])
            self._tapped += [k for k in down if k not in before and k not in self._tapped]
            self._keys = (tuple(down), int(seq))

    def set_agent(self, name: str | None) -> None:
        if name is not None and name not in list_agents():
            raise PlayworldError(f"unknown agent {name!r}", f"choose one of {', '.join(list_agents())} or null")
        self.agent = make_agent(name, self.spec.action_space) if name else None
        if self.agent is not None:
            self.agent.reset(self.seed + self.resets)
        self.agent_name = name

    def set_sampling_steps(self, value: int) -> int:
        """This session samples with `value` steps from its next step on (worker thread: it sets the model)."""
        if not isinstance(self.model, TunableSampler) or self.max_sampling_steps is None:
            raise PlayworldError("this model has no sampling steps to set", "only diffusion models have them")
        top = self.max_sampling_steps
        if not 1 <= value <= top:
            raise PlayworldError(f"sampling steps {value} is over the maximum {top} a player may set",
                                 f"choose 1 to {top} (the server's --max-sampling-steps)")
        self.sampling_steps = int(self.model.set_sampling_steps(int(value)))
        return self.sampling_steps

    def _use_own_sampling_steps(self) -> None:
        own = self.sampling_steps
        if own is not None and isinstance(self.model, TunableSampler) and int(self.model.sampling_steps) != own:
            self.model.set_sampling_steps(own)  # another session had set its own

    def start_recording(self) -> None:
        self.recording = Recording(source=dict(self.source))
        if self.frame is not None:
            self.recording.frames.append(self.frame)
            if self.real is not None:
                self.recording.real.append(self.real_frame)

    def stop_recording(self) -> Recording | None:
        rec, self.recording = self.recording, None
        return rec

    # -- model (worker thread) -----------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """A new real context: sample it, reset the model on it, put the real world beside it."""
        seed = self.seed + 1000 * (self.resets + 1) if seed is None else int(seed)
        self.resets += 1
        ctx = self.contexts.sample(seed, real=self.real)
        frames = torch.from_numpy(ctx.frames).permute(0, 3, 1, 2).unsqueeze(0).to(self.device)  # (1, K, 3, H, W)
        actions = torch.from_numpy(np.asarray(ctx.actions)).unsqueeze(0).to(self.device)  # (1, K) or (1, K, dim)
        with torch.inference_mode():
            if isinstance(self.model, WorldReplay):
                if ctx.world_state is None:
                    raise PlayworldError("this model replays the real world and needs its recorded state",
                                         "use --context-from env, or a dataset that stores the world state")
                self.state = self.model.reset_world(frames, actions, [ctx.world_state], seed=seed)
            else:
                self.state = self.model.reset(frames, actions, seed=seed)
        self.frame = ctx.frames[-1]
        self.start_texture, self.drift, self.last_action = texture(self.frame), None, None
        self.real, self.real_state, self.real_done = ctx.real, ctx.world_state, False
        self.real_frame = ctx.frames[-1] if ctx.real is not None else None
        self.source, self.t = {**ctx.source, "seed": seed}, 0
        if self.agent is not None:
            self.agent.reset(seed)
        if self.recording is not None:  # a reset inside a recording starts a new clip of the same file
            self.recording.frames.append(self.frame)
            if self.real is not None:
                self.recording.real.append(self.real_frame)
            self.recording.actions.append(None)
            self.recording.by_agent.append(False)

    def current_action(self, consume: bool = False) -> tuple[np.ndarray, int, bool]:
        """(action, key seq it came from, chosen by the agent). Keys tapped since the last step count as
        held for this one; `consume` (a step) clears them."""
        with self._tap_lock:
            (held, seq), tapped = self._keys, self._tapped
            if consume:
                self._tapped = []
        if self.agent is not None:
            return np.asarray(self.agent.act(self.frame)), seq, True
        keys = [k for k in tapped if k not in held] + list(held)
        return self.keymap.action(keys), seq, False

    def step(self) -> StepOut:
        action, seq, by_agent = self.current_action(consume=True)
        a = torch.as_tensor(action).unsqueeze(0).to(self.device)  # (1,) or (1, dim)
        self._use_own_sampling_steps()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.state, frame = self.model.step(self.state, a)
        self.last_step_ms = (time.perf_counter() - t0) * 1000
        self.frame = frame[0].permute(1, 2, 0).to("cpu", torch.uint8).numpy()  # (H, W, 3)
        if self.real is not None and not self.real_done:
            res = self.real.step(action)
            self.real_frame, self.real_state = res.frame, res.state
            self.real_done = bool(res.terminated or res.truncated)
        self.t += 1
        self.last_action, self.last_by_agent = to_jsonable(action), by_agent
        self.drift = drift_report(self.frame, self.start_texture, self.real_frame if self.real is not None else None)
        views = [self.frame] + ([self.real_frame] if self.real is not None else [])
        if self.recording is not None and not self.recording.full:
            self.recording.frames.append(self.frame)
            if self.real is not None:
                self.recording.real.append(self.real_frame)
            self.recording.actions.append(to_jsonable(action))
            self.recording.by_agent.append(by_agent)
        return StepOut(views=views, step=self.t, seq=seq, step_ms=self.last_step_ms, flags=self.flags())

    def flags(self) -> int:
        return ((FLAG_AGENT if self.agent is not None else 0) | (FLAG_RECORDING if self.recording is not None else 0)
                | (FLAG_REAL_DONE if self.real_done else 0) | (FLAG_PAUSED if self.paused else 0))

    def views(self) -> list[np.ndarray]:
        return [self.frame] + ([self.real_frame] if self.real is not None else [])

    # -- reporting ------------------------------------------------------------------------------
    def hello(self) -> dict:
        space = self.spec.action_space
        return {
            "type": "hello", "spec": self.spec.to_dict(), "legend": self.keymap.legend(),
            "codes": sorted(self.keymap.codes), "agents": list_agents(), "has_real": self.real is not None,
            "sampling_steps": self.sampling_steps, "max_sampling_steps": self.max_sampling_steps,
            "action_names": list(space.names), "source": self.source,
        }

    def status(self) -> dict:
        shows_state = isinstance(self.model, DebugState) and self.state is not None
        return to_jsonable({
            "type": "status", "step": self.t, "paused": self.paused, "agent": self.agent_name,
            "recording": None if self.recording is None else len(self.recording.frames),
            "record_full": bool(self.recording is not None and self.recording.full),
            "step_ms": round(self.last_step_ms, 3), "key_seq": self._keys[1], "keys": list(self._keys[0]),
            "action": self.current_action()[0] if self.agent is None else self.last_action,
            "action_by": "agent" if self.agent is not None else "keys", "drift": self.drift,
            "start": describe_source(self.source) if self.source else None,
            "sampling_steps": self.sampling_steps, "source": self.source,
            "has_real": self.real is not None, "real_done": self.real_done,
            "real_state": self.real_state if self.real is not None else None,
            "model_state": self.model.debug_state(self.state) if shows_state else None,
        })
