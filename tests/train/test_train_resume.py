"""Resume, for every registered family: 2N steps straight == N, resume, N, and the resumed invocation
begins at step N + 1 (resume_checks.py); broken trainers (restart, forgotten optimiser, a budget counting
earlier invocations) fail the same checks."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.optim.swa_utils import AveragedModel

import tiny_family
from playworld.data.windows import make_loader
from playworld.models.registry import list_families
from playworld.train import loop
from playworld.train.budget import TimeBudget
from playworld.train.loop import train
from resume_checks import resume_failures, rows

FAMILIES = sorted(set(list_families()) | {tiny_family.NAME})
N = 2


SETS = ["train.ckpt_every=1000", "train.media_horizon=1", "train.val_batches=1", "train.batch_size=2",
        "train.warmup_steps=4"]  # warm-up runs past the resume point, so a reset schedule shows in the lr


def _sets(family: str) -> list[str]:
    # checkpoints only where the budget ends; validation and media on, to show they do not disturb
    # training (every step for the tiny family; only at the ends of the budgets for the real, slower ones)
    every = "1" if family == tiny_family.NAME else "0"
    return SETS + [f"train.val_every={every}", f"train.media_every={every}"]


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=[] if f == tiny_family.NAME else pytest.mark.slow) for f in FAMILIES]
)
def test_a_resumed_run_begins_at_step_n_plus_1_and_ends_as_the_straight_run(family, tmp_path, tiny_data, monkeypatch):
    """2N steps straight == N, resume, N; and the resumed invocation starts from the checkpoint's step,
    optimiser, schedule and EMA (see resume_checks.py for each check)."""
    assert resume_failures(tmp_path, monkeypatch, tiny_data, family, _sets(family), n=N) == {}


def test_the_resume_checks_fail_on_a_trainer_that_restarts_instead(tmp_path, tiny_data, monkeypatch):
    """A restart from step 0 retrains to exactly the straight run's weights; the checks on the resumed
    invocation's first step are what catch it."""
    monkeypatch.setattr(loop, "_restore", lambda *args, **kwargs: 0)  # restore nothing, start at step 0
    failed = resume_failures(tmp_path, monkeypatch, tiny_data, tiny_family.NAME, _sets(tiny_family.NAME), n=N)
    assert "weights" not in failed  # equal weights alone cannot tell a restart from a resume
    assert {"steps", "optimizer", "lr", "ema", "metrics", "meta"} <= failed.keys(), failed


def test_the_resume_checks_fail_on_a_trainer_that_forgets_optimiser_and_ema(tmp_path, tiny_data, monkeypatch):
    restore = loop._restore

    def forgetful(*args, **kwargs):  # weights and step restored; AdamW, the schedule and the EMA count fresh
        step = restore(*args, **kwargs)
        for part in args:
            if isinstance(part, torch.optim.Optimizer):
                part.state.clear()
            elif isinstance(part, torch.optim.lr_scheduler.LRScheduler):
                part.last_epoch = 0
                for group, schedule in zip(part.optimizer.param_groups, part.lr_lambdas):
                    group["lr"] = part.base_lrs[0] * schedule(0)
            elif isinstance(part, AveragedModel):
                part.n_averaged.zero_()
        return step

    monkeypatch.setattr(loop, "_restore", forgetful)
    failed = resume_failures(tmp_path, monkeypatch, tiny_data, tiny_family.NAME, _sets(tiny_family.NAME), n=N)
    assert {"optimizer", "lr", "ema", "weights"} <= failed.keys() and "steps" not in failed, failed


def _end(run) -> dict:
    return [r for r in rows(run) if r["kind"] == "end"][-1]


def _timed_resume(tmp_path, tiny_data) -> tuple[int, int, dict]:
    """Train under a time budget, resume under the same budget: -> (steps first, steps in all, the last end row)."""
    sets = ["train.val_every=0", "train.media_every=0", "train.val_batches=1", "train.log_every=1"]
    run = tmp_path / "timed"
    first = train(run, data=tiny_data, model=tiny_family.NAME, preset="debug", sets=sets, steps=10**9,
                  minutes=MINUTES, progress=False)
    assert first.reason == "time" and first.step > 0
    resumed = train(run, resume=True, steps=10**9, minutes=MINUTES, sets=sets, progress=False)
    return first.step, resumed.step, _end(run)


MINUTES = 0.05  # 3 s of this invocation, the first one's time not counted


@pytest.mark.slow
def test_a_resumed_runs_time_budget_counts_only_its_own_invocation(tmp_path, tiny_data):
    n, total, end = _timed_resume(tmp_path, tiny_data)
    assert end["reason"] == "time" and total > n  # it trained again for its own budget...
    assert 0 < end["minutes"] <= MINUTES + 0.05  # ...and its end row counts only its own minutes
    new = [r["step"] for r in rows(tmp_path / "timed") if r["kind"] == "train" and r["step"] > n]
    assert new[0] == n + 1 and new[-1] == total


@pytest.mark.slow
def test_the_time_check_fails_on_a_budget_that_counts_earlier_invocations(tmp_path, tiny_data, monkeypatch):
    class Cumulative(TimeBudget):  # the budget of the whole run: every end row's minutes already spent
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            metrics = tmp_path / "timed" / "metrics.jsonl"
            ends = [r for r in rows(tmp_path / "timed") if r["kind"] == "end"] if metrics.exists() else []
            self.started -= 60 * sum(r["minutes"] for r in ends)

    monkeypatch.setattr(loop, "TimeBudget", Cumulative)
    n, total, end = _timed_resume(tmp_path, tiny_data)
    assert total == n  # the resumed invocation found its budget spent and trained no step


@pytest.mark.slow
def test_the_batch_stream_resumes_mid_way_with_and_without_workers(tiny_data):
    def take(start, workers, n):
        stream = make_loader(tiny_data, 2, 1, 3, "train", seed=5, rank=0, world_size=1, num_workers=workers, start=start)
        return [b.future_frames for b in itertools.islice(stream, n)]

    straight = take(0, 0, 7)
    for later, expected in zip(take(4, 0, 3), straight[4:]):
        assert torch.equal(later, expected)
    for later, expected in zip(take(4, 2, 3), straight[4:]):
        assert torch.equal(later, expected)
