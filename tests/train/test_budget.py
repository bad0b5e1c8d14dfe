"""`--minutes` is honest: the run ends within seconds of its budget, ending included, and the bar counts time."""

from __future__ import annotations

import io
import itertools
import json
import time

import tiny_family
from rich.console import Console
from rich.progress import Progress

from playworld.train import loop
from playworld.train.budget import TimeBudget
from playworld.train.loop import train


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_keeps_room_for_the_ending():
    clock = FakeClock()
    budget = TimeBudget(1.0, clock, 0.0, val_batches=4, media_frames=32, batch_size=16)
    assert budget.limited and not budget.over()
    budget.step_took(2.0)
    # estimated ending: 4 val batches x 0.5 steps + 32 frames x 4 / 16 x 0.5 steps, 2 s a step, + 1 s to save
    assert budget.reserve() == 4 * 0.5 * 2 + 32 * 4 / 16 * 0.5 * 2 + 1.0
    clock.now = 60 - 2.0 - budget.reserve() - 0.1
    assert not budget.over()
    clock.now += 0.2
    assert budget.over()  # the next step plus the ending would pass the minute
    budget.measured("val", 0.1), budget.measured("media", 0.1), budget.measured("save", 0.1)
    assert abs(budget.reserve() - 0.3) < 1e-9 and not budget.over()  # measured costs replace estimates
    assert not TimeBudget(0.0, clock, 0.0, 4, 32, 16).over()  # no budget: never over


def test_a_time_budgeted_run_ends_within_seconds_of_it_ending_included(tiny_data, tmp_path):
    minutes = 0.1  # 6 s
    start = time.monotonic()
    result = train(tmp_path / "run", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=10**9, minutes=minutes,
                   sets=["train.val_every=20", "train.ckpt_every=50"], progress=False)
    took = time.monotonic() - start
    assert result.reason == "time" and result.step > 5
    assert took < minutes * 60 + 3.0, f"--minutes {minutes} took {took:.1f} s"
    end = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert end["kind"] == "end" and end["minutes"] <= minutes + 0.05


def test_the_bar_counts_time_under_a_time_budget_and_steps_without(tiny_data, tmp_path, monkeypatch):
    bars, columns = [], loop.progress_bar(False).columns

    def recording_bar(enabled):
        bar = Progress(*columns, console=Console(file=io.StringIO(), width=120), disable=False)
        bars.append(bar)
        return bar

    monkeypatch.setattr(loop, "progress_bar", recording_bar)
    train(tmp_path / "timed", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=10**9, minutes=0.05, progress=True)
    task = bars[-1].tasks[0]
    assert task.total == 3.0  # seconds of the budget, not a step count
    assert "of 0.05 min" in task.fields["where"] and task.fields["where"].startswith("step ")
    train(tmp_path / "stepped", data=tiny_data, model=tiny_family.NAME, preset="debug", steps=4, progress=True)
    task = bars[-1].tasks[0]
    assert task.total == 4 and task.completed == 4 and task.fields["where"] == "step 4"


def test_cooldown_holds_the_rate_then_falls_linearly_to_zero():
    from playworld.train.budget import cooldown_factor

    assert [cooldown_factor(p, 0.2) for p in (0.0, 0.5, 0.75)] == [1.0, 1.0, 1.0]
    assert abs(cooldown_factor(0.9, 0.2) - 0.5) < 1e-9 and cooldown_factor(1.0, 0.2) == 0.0
    assert cooldown_factor(1.0, 0.0) == 1.0  # off
    clock = FakeClock()
    budget = TimeBudget(1.0, clock, 0.0, val_batches=4, media_frames=32, batch_size=16)
    budget.measured("val", 1.0), budget.measured("media", 2.0), budget.measured("save", 1.0)
    clock.now = 28.0
    assert abs(budget.progress() - 0.5) < 1e-9  # of the 56 s left for training once the 4 s ending is kept
    assert TimeBudget(0.0, clock, 0.0, 4, 32, 16).progress() == 0.0


def test_a_run_with_a_cooldown_ends_at_a_rate_near_zero(tiny_data, tmp_path):
    def lrs(name, sets):
        train(tmp_path / name, data=tiny_data, model=tiny_family.NAME, preset="debug", steps=40,
              sets=["train.log_every=1", "train.warmup_steps=1", "train.val_every=0", "train.lr=0.01", *sets], progress=False)
        rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return [r["lr"] for r in rows if r["kind"] == "train"]

    held, cooled = lrs("held", []), lrs("cooled", ["train.lr_cooldown=0.25"])
    assert held[-1] == 0.01 and cooled[:30] == held[:30]  # the same until the last quarter of the 40 steps
    assert abs(cooled[35] - 0.01 * 0.5) < 1e-6 and cooled[-1] < 0.01 * 0.11  # then falling to about zero (step 39 of 40: 0.1x)
    assert all(a >= b for a, b in itertools.pairwise(cooled[29:]))
