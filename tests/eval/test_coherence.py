"""Loop closure and drift on explorer: the real world closes its loops, as the oracle and as an ordinary
WorldModel; copy-last and ignore-actions do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from eval_fixtures import LookupOracle

from playworld.data.collect import collect
from playworld.eval import coherence
from playworld.eval.api import DatasetOracle, EvalContext, GroupResult, NotApplicable, TooFewEpisodes
from playworld.models.baselines import CopyLast, IgnoreActions
from playworld.models.interface import WorldSpec

RES = 32


@pytest.fixture(scope="module")
def explorer_ctx(tmp_path_factory):
    ds = collect("explorer", tmp_path_factory.mktemp("eval") / "explorer", episodes=3, steps=24, resolution=RES, progress=False)
    spec = WorldSpec(resolution=RES, action_space=ds.action_space, context=8, world=ds.world)
    return EvalContext(dataset=ds, spec=spec, split="test", episodes=3, horizon=8, seed=1, full=True)  # every gap


def _simulator(ctx: EvalContext) -> LookupOracle:
    """The real world behind the WorldModel interface, never truncated (as the group's own reference is)."""
    return LookupOracle(ctx.dataset, world_options={"max_steps": 10**9})


@pytest.fixture(scope="module")
def results(explorer_ctx) -> dict[str, GroupResult]:
    """The group on the calibration baselines. The oracle's frames are the real ones by construction (the
    group hands it the real frames), so the real world also plays as an ordinary WorldModel ('simulator'),
    through the same rollout as any model; ignore-actions is that world driven by random actions."""
    ctx = explorer_ctx
    models = {"oracle": DatasetOracle(ctx.dataset, ctx.spec), "simulator": _simulator(ctx), "copy-last": CopyLast(ctx.spec),
              "ignore-actions": IgnoreActions(_simulator(ctx), mode="random", seed=0)}
    return {name: coherence.coherence_group(model, ctx) for name, model in models.items()}


def assert_reaches_every_floor(res: GroupResult) -> None:
    for gap in coherence.GAPS:
        m = res.metrics
        assert m[f"loop_psnr@{gap}"].value == pytest.approx(m[f"loop_psnr@{gap}"].floor)
        assert m[f"loop_psnr@{gap}"].value > 25  # the same place; only the agent's facing or a coin may differ
        assert m[f"loop_state_error@{gap}"].value == 0.0
    assert len(res.curves["drift_psnr_by_step"]) == coherence.DRIFT_STEPS  # --full's 256
    assert min(res.curves["drift_psnr_by_step"]) == 100.0  # exact at every one of the drift steps
    for gap in ("drift_mean_gap_last32", "drift_std_gap_last32", "drift_detail_gap_last32", "drift_region_gap_last32"):  # the same frames
        assert res.metrics[gap].value == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow
def test_the_real_world_closes_every_loop_and_action_blind_models_do_not(results):
    for exact in ("oracle", "simulator"):
        assert_reaches_every_floor(results[exact])
    o = results["oracle"].metrics
    for blind in ("copy-last", "ignore-actions"):
        m = results[blind].metrics
        for gap in coherence.GAPS:
            assert m[f"loop_psnr@{gap}"].value < o[f"loop_psnr@{gap}"].value - 3, (blind, gap)
            assert m[f"loop_state_error@{gap}"].value >= 1.0, (blind, gap)  # it shows the agent elsewhere
        # drift: the real world is exact at every step; frozen frames and random moves fall away
        assert m["drift_psnr_mean"].value < 30, blind
    copy = results["copy-last"]
    # K = 8: gap 5 lies inside the context, 15..50 beyond it
    assert copy.metrics["loop_psnr_inside_context"].value == pytest.approx(copy.metrics["loop_psnr@5"].value)
    assert "loop_psnr_beyond_context" in copy.metrics
    assert copy.videos and all(v.dtype == np.uint8 and v.ndim == 4 for v in copy.videos.values())


class _Checkered:
    """The real world with a checkered texture that grows by `rate` grey levels a step (or, rate < 0, every
    frame blurred): what a model that adds high-frequency error each step and never removes it shows."""

    def __init__(self, inner, rate: float, fade: float = 0.0):
        self.inner, self.rate, self.fade, self.spec = inner, rate, fade, inner.spec

    def reset(self, frames, actions, seed=None):
        return [self.inner.reset(frames, actions, seed), 0]

    def step(self, state, action):
        state[0], frame = self.inner.step(state[0], action)
        state[1] += 1
        x = frame.float()
        if self.rate < 0:  # a 2x2 box blur: the finest detail gone
            x = torch.nn.functional.avg_pool2d(x, 2).repeat_interleave(2, -1).repeat_interleave(2, -2)
        elif self.fade:  # pulled towards the frame's mean colour, a little more each step: flat ground by the end
            mean = x.mean(dim=(-2, -1), keepdim=True)
            x = mean + (x - mean) * max(0.0, 1 - self.fade * state[1])
        else:
            sign = (torch.arange(x.shape[-1])[:, None] + torch.arange(x.shape[-1])[None]) % 2 * 2 - 1
            x = x + self.rate * state[1] * sign
        return state, x.clamp(0, 255).round().to(torch.uint8)


@pytest.mark.slow
def test_the_detail_gap_sees_a_texture_grow_and_a_blur(explorer_ctx):
    ctx = explorer_ctx
    grown = coherence.coherence_group(_Checkered(_simulator(ctx), 0.2), ctx)  # 51 grey levels by step 256
    blurred = coherence.coherence_group(_Checkered(_simulator(ctx), -1), ctx)
    assert grown.metrics["drift_detail_gap_last32"].value > 2 and grown.extra["drift_detail_ratio_last32"] > 4
    ratio = grown.curves["drift_detail_ratio_by_step"]
    assert ratio[-1] > ratio[len(ratio) // 2] > ratio[0]  # it grows with the rollout
    assert blurred.metrics["drift_detail_gap_last32"].value > 1 and blurred.extra["drift_detail_ratio_last32"] < 0.5
    assert grown.metrics["drift_psnr_mean"].value < 100 and blurred.metrics["drift_psnr_mean"].value < 100
    # a texture on the pixel grid averages out within 8x8 regions (but where it clamps at 0 or 255): the contrast between regions stays near the real one's
    assert grown.metrics["drift_region_gap_last32"].value < 0.5


@pytest.mark.slow
def test_the_region_gap_sees_a_fade_to_flat_ground(explorer_ctx):
    ctx = explorer_ctx
    faded = coherence.coherence_group(_Checkered(_simulator(ctx), 0, fade=1 / 300), ctx)  # contrast x0.15-0.25 at steps 225-256
    assert faded.extra["drift_region_ratio_last32"] < 0.1 and faded.metrics["drift_region_gap_last32"].value > 3
    ratio = faded.curves["drift_region_ratio_by_step"]
    assert ratio[0] > 0.9 > ratio[len(ratio) // 2] > ratio[-1]  # it falls with the rollout


@pytest.mark.slow
def test_the_floor_check_fails_when_the_group_plays_a_model_other_actions(explorer_ctx, monkeypatch):
    """A broken group that gives models each action one step late: the oracle (handed the real frames)
    still reaches every floor, the real world behind the interface does not."""
    rollout = coherence._rollout

    def one_step_late(model, ctx, windows, actions, real_frames):
        return rollout(model, ctx, windows, torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], 1), real_frames)

    monkeypatch.setattr(coherence, "_rollout", one_step_late)
    ctx = explorer_ctx
    assert_reaches_every_floor(coherence.coherence_group(DatasetOracle(ctx.dataset, ctx.spec), ctx))
    with pytest.raises(AssertionError):
        assert_reaches_every_floor(coherence.coherence_group(_simulator(ctx), ctx))


def test_paths_return_to_the_first_visit(explorer_ctx):
    ctx = explorer_ctx
    real = coherence._RealWorld(ctx)
    windows = ctx.windows(horizon=1)
    paths = coherence._loop_paths(ctx, real, windows, 15)
    assert paths["actions"].shape == (3, coherence.LEAD_IN + 15)
    starts = windows.world_states()
    for i, start in enumerate(starts):
        _, states = real.run(start, paths["actions"][i].tolist())
        assert np.array_equal(states[coherence.LEAD_IN - 1]["agent"], states[-1]["agent"])
        assert not np.array_equal(states[coherence.LEAD_IN + 7]["agent"], states[-1]["agent"])  # B is elsewhere
    # the state estimate finds a known offset
    s = dict(paths["revisit_state"][0])
    s2 = dict(s, agent=s["agent"] + np.array([2, -1], s["agent"].dtype))
    frame = real.world.restore(s2)
    assert real.locate(frame, s).tolist() == [2.0, -1.0]


def test_too_short_episodes_name_the_metric(explorer_ctx):
    ctx = explorer_ctx
    long_context = EvalContext(dataset=ctx.dataset, spec=WorldSpec(resolution=RES, action_space=ctx.spec.action_space, context=40))
    with pytest.raises(TooFewEpisodes, match="loop_psnr needs a test episode of at least 41 frames"):
        coherence.coherence_group(CopyLast(long_context.spec), long_context)


def test_not_applicable_outside_explorer():
    class Fake:
        world, manifest = "physics/uniform", {}

    ctx = EvalContext(dataset=Fake(), spec=WorldSpec(resolution=RES, action_space=None, context=2))
    with pytest.raises(NotApplicable, match="needs an explorer dataset"):
        coherence.coherence_group(None, ctx)


def test_the_quick_default_measures_fewer_gaps_and_a_shorter_drift(explorer_ctx):
    quick = dataclasses.replace(explorer_ctx, full=False, cache={})
    assert coherence.sizes(quick) == (coherence.QUICK_GAPS, coherence.QUICK_DRIFT_STEPS, min(3, coherence.QUICK_WINDOWS))
    res = coherence.coherence_group(CopyLast(quick.spec), quick)
    assert res.extra["gaps"] == list(coherence.QUICK_GAPS) and not res.extra["full"]
    assert {f"loop_psnr@{g}" for g in coherence.QUICK_GAPS} <= set(res.metrics)
    assert "loop_psnr@15" not in res.metrics
    assert len(res.curves["drift_psnr_by_step"]) == coherence.QUICK_DRIFT_STEPS
