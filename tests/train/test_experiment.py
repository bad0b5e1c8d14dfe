"""`playworld experiment regimes` at a smoke budget: every variant trained and compared, the report
written, a run cut short resumed for the rest of its budget rather than reused as if finished."""

from __future__ import annotations

import json

import pytest

from playworld.errors import PlayworldError
from playworld.experiments import regimes_experiment

SMOKE = dict(minutes=0.0, steps=2, preset="debug", episodes=4, episode_steps=24, resolution=32, horizon=6,
             eval_episodes=2, rollout=2, progress=False)


@pytest.mark.slow
def test_regimes_experiment_writes_the_comparison(tmp_path, cli):
    code, out = cli(["experiment", "regimes", "--out", tmp_path, "--steps", "2", "--minutes", "0", "--preset", "debug",
                     "--episodes", "4", "--episode-steps", "24", "--resolution", "32", "--horizon", "6",
                     "--eval-episodes", "2", "--rollout", "2", "--no-progress",
                     "--variant", "teacher_forcing", "--variant", "diffusion_forcing"])
    assert code == 0, out
    result = json.loads((tmp_path / "regimes.json").read_text())
    for world in ("explorer", "physics/parabola"):
        rows = result["worlds"][world]
        assert set(rows) == {"teacher_forcing", "diffusion_forcing"}
        for row in rows.values():
            assert row["train_steps"] == 2 and len(row["psnr_by_step"]) == row["horizon"] > 1
            assert row["psnr_auc"] == pytest.approx(sum(row["psnr_by_step"]) / row["horizon"])
    phys = result["worlds"]["physics/parabola"]["teacher_forcing"]
    assert "velocity_error" in phys or "velocity_error_skipped" in phys  # the physics metric, or why not
    assert "velocity_error" not in result["worlds"]["explorer"]["teacher_forcing"]
    table = (tmp_path / "regimes.md").read_text()
    assert "teacher_forcing" in table and "diffusion_forcing" in table and "physics/parabola" in table
    assert (tmp_path / "regimes.png").stat().st_size > 1000
    assert "teacher_forcing" in out  # the table is printed too


@pytest.mark.slow
def test_a_run_cut_short_is_resumed_not_reused(tmp_path):
    first = regimes_experiment(tmp_path, worlds=("explorer",), variants=("teacher_forcing",), **SMOKE)
    run = tmp_path / "runs" / "explorer" / "teacher_forcing"
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    # make it look interrupted at step 2 of a 4-step budget
    metrics.write_text("\n".join(x.replace('"reason": "steps"', '"reason": "interrupted"') for x in lines) + "\n")
    again = regimes_experiment(tmp_path, worlds=("explorer",), variants=("teacher_forcing",), **(SMOKE | {"steps": 4}))
    assert first["worlds"]["explorer"]["teacher_forcing"]["train_steps"] == 2
    assert again["worlds"]["explorer"]["teacher_forcing"]["train_steps"] == 4
    # a finished run is reused as it is
    third = regimes_experiment(tmp_path, worlds=("explorer",), variants=("teacher_forcing",), **(SMOKE | {"steps": 4}))
    assert third["worlds"]["explorer"]["teacher_forcing"]["train_steps"] == 4


def test_bad_variants_and_budgets_are_user_errors(tmp_path):
    with pytest.raises(PlayworldError, match="unknown regime variant"):
        regimes_experiment(tmp_path, variants=("teacher_forcing", "vibes"), **SMOKE)
    with pytest.raises(PlayworldError, match="budget"):
        regimes_experiment(tmp_path, **(SMOKE | {"minutes": 0.0, "steps": None}))
