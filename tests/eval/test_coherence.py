"""Loop closure and drift on explorer: the real world closes its loops, copy-last does not."""

from __future__ import annotations

import numpy as np
import pytest

from playworld.data.collect import collect
from playworld.eval import coherence
from playworld.eval.api import DatasetOracle, EvalContext, NotApplicable, TooFewEpisodes
from playworld.models.baselines import CopyLast
from playworld.models.interface import WorldSpec

RES = 32


@pytest.fixture(scope="module")
def explorer_ctx(tmp_path_factory):
    ds = collect("explorer", tmp_path_factory.mktemp("eval") / "explorer", episodes=3, steps=24, resolution=RES, progress=False)
    spec = WorldSpec(resolution=RES, action_space=ds.action_space, context=8, world=ds.world)
    return EvalContext(dataset=ds, spec=spec, split="test", episodes=3, horizon=8, seed=1)


@pytest.mark.slow
def test_oracle_closes_every_loop_and_copy_last_does_not(explorer_ctx):
    ctx = explorer_ctx
    oracle = coherence.coherence_group(DatasetOracle(ctx.dataset, ctx.spec), ctx)
    copy = coherence.coherence_group(CopyLast(ctx.spec), ctx)
    for gap in coherence.GAPS:
        o, c = oracle.metrics, copy.metrics
        assert o[f"loop_psnr@{gap}"].value == pytest.approx(o[f"loop_psnr@{gap}"].floor)
        assert o[f"loop_psnr@{gap}"].value > 25  # the same place; only the agent's facing or a coin may differ
        assert o[f"loop_state_error@{gap}"].value == 0.0
        assert c[f"loop_psnr@{gap}"].value < o[f"loop_psnr@{gap}"].value - 3
        assert c[f"loop_state_error@{gap}"].value >= 1.0  # it still shows where the context ended
    # K = 8: gap 5 lies inside the context, 15..50 beyond it
    assert copy.metrics["loop_psnr_inside_context"].value == pytest.approx(copy.metrics["loop_psnr@5"].value)
    assert "loop_psnr_beyond_context" in copy.metrics
    # drift: the oracle is exact at every step, copy-last falls away from the moving view
    assert len(oracle.curves["drift_psnr_by_step"]) == coherence.DRIFT_STEPS
    assert min(oracle.curves["drift_psnr_by_step"]) == 100.0
    assert copy.metrics["drift_psnr_mean"].value < 30
    assert copy.videos and all(v.dtype == np.uint8 and v.ndim == 4 for v in copy.videos.values())


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
