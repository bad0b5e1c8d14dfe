"""`--minutes` is honest: the run ends within seconds of its budget, ending included, and the bar counts time."""

from __future__ import annotations

import io
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
