"""Shared by the fidelity and controllability tests: a tiny explorer dataset, settings that train
the helper networks in seconds, and an oracle that can also play other actions (for ignore-actions)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from playworld.data.collect import collect
from playworld.eval.api import EvalContext
from playworld.models.baselines import WorldOracle
from playworld.models.interface import WorldSpec

RES, CONTEXT, HORIZON = 32, 2, 16
_ROOT = Path(tempfile.mkdtemp(prefix="pw-eval-test-"))
atexit.register(shutil.rmtree, _ROOT, True)
_DATA: dict = {}
SHARED_CACHE: dict = {}
"""one in-memory cache for all tests, so the encoder and inverse-dynamics model train once per session"""

FAST = {  # helper networks small and briefly trained: enough on this data, seconds on one core
    "fidelity": {"teacher_forced_windows": 32, "encoder": {"clip": 8, "width": 16, "batch": 32, "steps": 200}},
    "controllability": {"idm": {"width": 16, "batch": 32, "steps": 300}},
}


def tiny_explorer():
    """120 explorer episodes of 64 steps at 32x32 (about 8 test episodes), collected once per session."""
    if "explorer" not in _DATA:
        _DATA["explorer"] = collect("explorer", _ROOT / "explorer", episodes=120, steps=64, resolution=RES, seed=0, progress=False)
    return _DATA["explorer"]


def spec_of(ds) -> WorldSpec:
    return WorldSpec(resolution=ds.resolution, action_space=ds.action_space, context=CONTEXT, fps=ds.fps, world=ds.world)


def make_ctx(ds, options: dict | None = None, cache: dict | None = None, **kw) -> EvalContext:
    kw = {"horizon": HORIZON, "episodes": 24, "seed": 0, **kw}
    return EvalContext(dataset=ds, spec=spec_of(ds), cache=SHARED_CACHE if cache is None else cache,
                       options=FAST if options is None else options, **kw)


class LookupOracle:
    """The real world restored from the recorded state of the newest context frame, found by its pixels.

    Unlike `DatasetOracle` it is an ordinary WorldModel, so `IgnoreActions` can wrap it: the real
    world driven by random actions, the ignore-actions baseline of a perfect simulator.
    """

    def __init__(self, ds, split: str = "test", world_options: dict | None = None):
        self.spec = spec_of(ds)
        self.states: dict[bytes, dict] = {}
        for ep in ds.episode_ids(split):
            e = ds.load_episode(ep)
            for t in range(len(e)):
                self.states.setdefault(np.asarray(e.frames[t]).tobytes(), {k: np.asarray(v[t]) for k, v in e.state.items()})
        self.world = WorldOracle(ds.world, resolution=ds.resolution, world_options=world_options, context=CONTEXT)

    def reset(self, frames: torch.Tensor, actions: torch.Tensor, seed=None):
        last = frames[:, -1].permute(0, 2, 3, 1).contiguous().numpy()  # (B, H, W, 3)
        return self.world.reset(frames, actions, world_state=[self.states[f.tobytes()] for f in last])

    def step(self, state, action):
        return self.world.step(state, action)


def single_thread():
    """Tiny networks train faster on one intra-op thread (no sync overhead on a shared 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def calibration_results(group_name: str) -> dict:
    """Run metric group `group_name` on the tiny explorer set for the three calibration baselines."""
    from playworld.eval.api import DatasetOracle, get_groups
    from playworld.models.baselines import CopyLast, IgnoreActions

    ds = tiny_explorer()
    ctx = make_ctx(ds)
    group = get_groups()[group_name]
    models = {"oracle": DatasetOracle(ds, spec_of(ds)), "copy-last": CopyLast(spec_of(ds)),
              "ignore-actions": IgnoreActions(LookupOracle(ds), mode="random", seed=0)}
    return {name: group(m, ctx) for name, m in models.items()}


def metric_value(res, name: str) -> float:
    """A metric's value, failing with the skip reason when it was skipped."""
    assert name in res.metrics, f"{name} skipped: {res.skipped.get(name)}"
    return res.metrics[name].value
