"""What the play page tells a player: drift from the real world, where a start came from, the move taken,
and a tick rate that matches the model."""

from __future__ import annotations

import time

import numpy as np

from playworld.play import sustained_fps
from playworld.play.session import PlaySession, describe_source, drift_report, texture

from .conftest import DotModel, FakeContexts


def _world(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), 8, 0), 8, 1)  # 64x64 blocky scene


def test_drift_is_quiet_near_the_real_view_and_speaks_when_the_model_wanders():
    real = _world(0)
    close = np.clip(real.astype(int) + 3, 0, 255).astype(np.uint8)
    ok = drift_report(close, texture(real), real)
    assert not ok["drifted"] and ok["hint"] is None and ok["psnr_vs_real"] > 30
    noise = np.random.default_rng(1).integers(0, 255, real.shape, dtype=np.uint8)
    bad = drift_report(noise, texture(real), real)
    assert bad["drifted"] and bad["psnr_vs_real"] < 16 and "press R" in bad["hint"]
    # without a real view, the model's own edge energy: colour noise and a smeared-out world both count
    assert drift_report(noise, texture(real), None)["drifted"]
    flat = np.full_like(real, 128)
    smooth = drift_report(flat, texture(real), None)
    assert smooth["drifted"] and "smoother" in smooth["hint"] and smooth["psnr_vs_real"] is None
    assert not drift_report(_world(2), texture(real), None)["drifted"]  # another real-looking scene is not drift


def test_a_start_is_described_in_words():
    assert describe_source({"from": "env", "world": "explorer", "seed": 1000}) == "new start in the real explorer, seed 1000"
    said = describe_source({"from": "data", "path": "data/explorer", "episode": 12, "t": 40})
    assert said == "new start from data/explorer, episode 12 at step 40"


def test_status_reports_the_move_taken_by_the_agent_and_the_drift():
    session = PlaySession(DotModel(), FakeContexts(), seed=0)
    session.reset()
    session.set_agent("random")
    session.step()
    st = session.status()
    assert st["action_by"] == "agent" and st["action"] == session.last_action and st["action"] is not None
    assert set(st["drift"]) == {"psnr_vs_real", "texture_ratio", "drifted", "hint"}
    assert st["start"].startswith("new start")


class SlowDot(DotModel):
    def step(self, state, action):
        time.sleep(0.05)
        return super().step(state, action)


def test_the_default_tick_rate_is_what_the_model_sustains():
    assert sustained_fps(DotModel(), FakeContexts()) == 30.0  # a fast model: the cap
    slow = sustained_fps(SlowDot(), FakeContexts())
    assert 10 <= slow <= 19  # 0.9 / 0.05 s = 18 steps/s, less what the rest of a step costs
