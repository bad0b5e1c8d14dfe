"""The goals group: tasks the real world scores (path distances around walls, goal views, coin pickups), the
rows (the planner in the model, in the real world, random), and its place in the suite's JSON and report."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from eval_fixtures import RES, make_ctx, spec_of, tiny_explorer

from playworld.data.collect import collect
from playworld.errors import PlayworldError
from playworld.eval.api import DatasetOracle, NotApplicable
from playworld.eval.goals import (
    QUICK,
    Task,
    episodes_for,
    goal_steps_away,
    goals,
    make_episode,
    outcome,
    parse_task,
    path_distances,
)
from playworld.eval.report import build_report
from playworld.eval.suite import run_suite
from playworld.models.baselines import CopyLast
from playworld.worlds.base import make_world
from playworld.worlds.explorer import MOVES

TINY = {"goals": {"tasks": ["reach-2", "coin-2"], "episodes": 2, "random_episodes": 6, "horizon": 3, "population": 12,
                  "elites": 3, "iterations": 2, "encoder": {"clip": 2, "width": 8, "batch": 16, "steps": 20}}}


def test_path_distances_walk_around_walls():
    passable = np.ones((5, 5), bool)
    passable[1:4, 2] = False  # a wall between (1, 2) and (3, 2)
    dist = path_distances(passable, (1, 2), limit=6)
    assert dist[(1, 2)] == 0 and dist[(3, 2)] == 6  # around the wall's end: up 2, right 2, down 2
    assert (2, 2) not in dist and max(dist.values()) <= 6
    assert path_distances(passable, (1, 2), limit=1) == {(1, 2): 0, (0, 2): 1, (1, 1): 1, (1, 3): 1}


def _walk(world, start: dict, cell: tuple[int, int], steps: int):
    """Step greedily along a shortest path from the start state to `cell`: the states visited."""
    from playworld.worlds.explorer import PASSABLE

    world.restore(start)
    to_goal = path_distances(PASSABLE[world.base], cell, steps + 1)
    states, here = [start], (int(start["agent"][0]), int(start["agent"][1]))
    for _ in range(steps):
        a = next(a for a in range(1, 5) if to_goal.get((here[0] + int(MOVES[a][0]), here[1] + int(MOVES[a][1])), 99) < to_goal[here])
        r = world.step(a)
        states.append(r.state)
        here = (int(r.state["agent"][0]), int(r.state["agent"][1]))
    return states, r.frame


@pytest.mark.parametrize("kind", ["reach", "coin"])
def test_an_episode_s_goal_is_what_the_real_world_shows_at_the_end_of_the_path(kind):
    world = make_world("explorer", resolution=RES)
    task = Task(kind, 5)
    ep = episodes_for(world, task, 1, seed=0)[0]
    states, last = _walk(world, ep.state, ep.cell, task.cells)
    assert np.array_equal(last, ep.goal)  # the goal frame is the real view there (coin: just after the pickup)
    got = outcome(task, ep, states, within=0)
    assert got["success"] and got["first"] == task.cells and got["final_cells"] == 0
    missed = outcome(task, ep, states[:1] * 3, within=1)  # standing still
    assert not missed["success"] and missed["final_cells"] == 5 and missed["first"] is None


def test_reach_counts_where_the_episode_ends_not_where_it_passed():
    world = make_world("explorer", resolution=RES)
    ep = episodes_for(world, Task("reach", 3), 1, seed=1)[0]
    states, _ = _walk(world, ep.state, ep.cell, 3)
    away = outcome(Task("reach", 3), ep, states + [ep.state], within=1)  # then back at the start
    assert away["first"] == 2 and not away["success"]  # within 1 cell after 2 steps, but not at the end


def test_no_cell_at_the_distance_gives_no_episode_and_bad_tasks_are_errors():
    world = make_world("explorer", resolution=RES)
    assert make_episode(world, Task("reach", 10_000), seed=0) is None
    with pytest.raises(PlayworldError, match="unknown goal task"):
        parse_task("fly-3")
    assert parse_task("coin-4") == Task("coin", 4) and Task("reach", 6).steps == 14


def test_goals_off_explorer_are_the_views_after_random_steps_from_the_same_start():
    world = make_world("gym:CartPole-v1", resolution=RES)
    frame, _, goal, cell = goal_steps_away(world, 5, seed=3)
    again = goal_steps_away(world, 5, seed=3)
    assert cell is None and np.array_equal(frame, again[0]) and np.array_equal(goal, again[2])
    assert np.array_equal(frame, world.reset(seed=3)[0]) and not np.array_equal(frame, goal)
    world.close()


@pytest.fixture(scope="module")
def ctx():
    return make_ctx(tiny_explorer(), options=TINY, cache={})


def test_the_group_plans_in_the_real_world_and_acts_at_random_for_copy_last(ctx):
    oracle = goals(DatasetOracle(ctx.dataset, ctx.spec), ctx)
    random = goals(CopyLast(ctx.spec), ctx)
    assert set(oracle.metrics) == set(random.metrics) == {"success_reach2", "success_coin2"}
    for res in (oracle, random):
        assert set(res.extra["tasks"]) == {"reach-2", "coin-2"}
        assert all(0 <= m.value <= 1 and m.higher_is_better for m in res.metrics.values())
    assert oracle.extra["tasks"]["reach-2"]["episodes"] == 2 and random.extra["tasks"]["reach-2"]["episodes"] == 6
    assert random.extra["tasks"]["reach-2"]["plan_seconds"] < 1e-3 < oracle.extra["tasks"]["reach-2"]["plan_seconds"]
    assert "random" in random.extra["who"] and "planner" in oracle.extra["who"]


def test_the_group_needs_actions_and_explorer(tmp_path):
    ds = collect("physics/uniform", tmp_path / "p", episodes=3, resolution=RES, seed=0, progress=False)
    with pytest.raises(NotApplicable):
        goals(CopyLast(spec_of(ds)), make_ctx(ds, options=TINY, cache={}))


def test_the_suite_writes_the_goals_beside_the_pixel_metrics(tmp_path, monkeypatch):
    ds = tiny_explorer()
    monkeypatch.setattr("playworld.eval.goals.QUICK", dataclasses.replace(QUICK, random_episodes=3))  # seconds, not a minute

    class Still(CopyLast):  # a "model" that plans through its frames: it never moves, like copy-last
        pass

    res = run_suite(Still(spec_of(ds)), ds, groups=["goals"], episodes=2, progress=False, out_dir=tmp_path, baselines=False)
    entry = res["groups"]["goals"]
    assert set(entry["metrics"]) == {"success_reach3", "success_reach6"}  # the quick evaluation's tasks
    html = build_report(res, {})
    assert "id='goals-table'" in html and "<td class='name'>model</td>" in html
    assert (tmp_path / "report.html").is_file()


def test_the_report_orders_families_by_success_against_pixel_metrics():
    rows = {"tasks": {"reach-3": {"success": 0.5, "steps": 3.0, "plan_seconds": 0.1}}}
    results = {"models": ["jepa", "copy-last"], "groups": {"goals": {"metrics": {}, "extra": {"jepa": rows, "copy-last": rows}}},
               "goals_correlation": {"fidelity/psnr": {"spearman": 0.4, "note": "4 families"}}}
    html = build_report(results, {})
    assert "id='goals-correlation'" in html and "fidelity/psnr" in html and "<td class='name'>jepa</td>" in html
