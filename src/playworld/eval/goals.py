"""Closed-loop goal reaching: plan toward a goal frame inside the model, act in the real world, score there.

World-in-World's and V-JEPA 2-AC's test of a world model: not how its frames look, but whether an agent
that plans in it gets where it is told to. Tasks on explorer (the real world restores any state, so
it also scores every step):

    reach-N   the goal is the view from a cell N steps away along the shortest path (walls, water and
              trees in between are walked around); success: the episode ENDS within `within` cells
              (Manhattan) of that cell, after 2N + 2 real steps. N in {3, 6, 12}.
    coin-N    a coin lies N path steps away; the goal is the view just after stepping onto it (the coin
              gone); success: the world's own reward for that coin (its respawn count goes up), within 2N + 2 steps.

Each episode starts from a real reset (seed 20000 + ctx.seed * 1000 + i) and the same K still frames.
The quick evaluation (`playworld eval` without --full) plays reach-3 and reach-6, 2 episodes each, with a
smaller planner (`QUICK`); --full plays every task, --episodes episodes each. The model under test plans
with agents/goals.py (CEM by default, receding horizon, its latent where it declares one, else the domain
encoder's features of the frames it draws). The rows:

    model           the planner in the model under test
    oracle          the planner in the real world itself (agents.goals.WorldAsModel, the frame encoder's
                    features): the upper bound of planning with this planner and cost
    copy-last,      their predictions do not depend on the plan, so planning in them acts at random: their
    ignore-actions  row is the random policy, over `random_episodes` episodes (the lower bound, no planning)

Metrics: `success_<task>` (higher is better). In `extra`: per task, the mean steps to the first success
(over the episodes that succeeded), the planning CPU seconds per real step, the final distance in cells,
and each episode's outcome.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from playworld.agents.agent import make_real_world
from playworld.agents.goals import WorldAsModel, check_goal_model, goal_planner, goal_tensor, reach, resolve_representation
from playworld.errors import PlayworldError
from playworld.eval.api import DatasetOracle, EvalContext, GroupResult, Metric, NotApplicable, register_group
from playworld.eval.features import EncoderConfig, domain_encoder, train_windows
from playworld.eval.fidelity import group_config
from playworld.media import write_video
from playworld.models.baselines import CopyLast, IgnoreActions
from playworld.models.interface import LatentState
from playworld.worlds.base import make_world
from playworld.worlds.explorer import MOVES, PASSABLE
from playworld.worlds.policies import RandomPolicy

TASKS = ("reach-3", "reach-6", "reach-12", "coin-4")
RANDOM_ROWS = (CopyLast, IgnoreActions)


@dataclass(frozen=True)
class GoalsConfig:
    tasks: tuple[str, ...] = TASKS
    """the tasks, kind-N: reach-N (end within `within` cells of the view's cell) or coin-N (pick up that coin)"""
    episodes: int | None = None
    """episodes per task (default: ctx.episodes, `playworld eval --episodes`)"""
    random_episodes: int = 64
    """episodes per task of the random policy (the copy-last and ignore-actions rows): it plans nothing, so many"""
    within: int = 1
    """reach-N succeeds when the episode ends at most this many cells (Manhattan) from the goal's cell"""
    method: str = "cem"
    """cem or mppi (agents/planner.py)"""
    horizon: int = 8
    """planned steps per candidate action sequence"""
    population: int = 64
    """candidate sequences per iteration"""
    elites: int = 8
    """CEM refits to this many best candidates"""
    iterations: int = 3
    """refits of the search distribution per real step"""
    reduce: str = "mean"
    """how a plan's per-step distances to the goal become its cost: mean, final or min"""
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(clip=2))
    """the domain encoder whose features compare drawn frames with the goal (a still 2-frame clip of each frame)"""


QUICK = GoalsConfig(tasks=("reach-3", "reach-6"), episodes=2, random_episodes=32, horizon=6, population=32, elites=4,
                    iterations=2)
"""the quick evaluation's settings (`playworld eval` without --full and without options for the group): about a
minute for a pixel family on a 2-core CPU; --full plays every task with ctx.episodes episodes and the full planner"""


@dataclass(frozen=True)
class Task:
    kind: str  # "reach" or "coin"
    cells: int  # N

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.cells}"

    @property
    def steps(self) -> int:
        return 2 * self.cells + 2


def parse_task(name: str) -> Task:
    kind, _, n = name.partition("-")
    if kind not in ("reach", "coin") or not n.isdigit() or int(n) < 1:
        raise PlayworldError(f"unknown goal task {name!r}", "use reach-N or coin-N with N >= 1, e.g. reach-6")
    return Task(kind, int(n))


# -- episodes ---------------------------------------------------------------------------------------
def path_distances(passable: np.ndarray, start: tuple[int, int], limit: int) -> dict[tuple[int, int], int]:
    """Shortest-path steps (4-connected, passable cells only) from start (x, y) to every cell within `limit`."""
    dist, queue = {start: 0}, deque([start])
    while queue:
        x, y = queue.popleft()
        if dist[(x, y)] == limit:
            continue
        for dx, dy in MOVES[1:]:
            nx, ny = x + int(dx), y + int(dy)
            if 0 <= ny < passable.shape[0] and 0 <= nx < passable.shape[1] and passable[ny, nx] and (nx, ny) not in dist:
                dist[(nx, ny)] = dist[(x, y)] + 1
                queue.append((nx, ny))
    return dist


@dataclass
class Episode:
    seed: int
    frame: np.ndarray  # (R, R, 3) the start
    state: dict  # the world's state at the start
    goal: np.ndarray  # (R, R, 3) the goal frame
    cell: tuple[int, int]  # the goal's cell (x, y)


def make_episode(world, task: Task, seed: int) -> Episode | None:
    """Task `task` from the world's reset(seed); None when no cell lies exactly N steps away. Leaves the world
    at the start. (explorer: the map is `world.base`, the agent `state['agent']`.)"""
    _, state = world.reset(seed=seed)
    start = (int(state["agent"][0]), int(state["agent"][1]))
    dist = path_distances(PASSABLE[world.base], start, task.cells)
    ring = sorted(c for c, d in dist.items() if d == task.cells)
    if not ring:
        return None
    rng = np.random.default_rng([seed, task.cells, 7])
    cell = ring[int(rng.integers(len(ring)))]
    state = {k: np.array(v, copy=True) for k, v in state.items()}
    if task.kind == "reach":
        goal = world.restore({**state, "agent": np.array(cell, np.int32)})
    else:  # put coin 0 on the cell; the goal is the view just after stepping onto it from a cell one step nearer
        state["coins"][0] = cell
        before = next(c for c, d in dist.items() if d == task.cells - 1 and abs(c[0] - cell[0]) + abs(c[1] - cell[1]) == 1)
        world.restore({**state, "agent": np.array(before, np.int32)})
        move = next(a for a in range(1, 5) if (before[0] + MOVES[a][0], before[1] + MOVES[a][1]) == cell)
        goal = world.step(np.array(move)).frame
    frame = world.restore(state)
    return Episode(seed, np.array(frame), state, np.array(goal), cell)


def episodes_for(world, task: Task, n: int, seed: int) -> list[Episode]:
    out, s = [], 20_000 + 1000 * seed
    while len(out) < n:
        ep = make_episode(world, task, s)
        if ep is not None:
            out.append(ep)
        s += 1
    return out


def outcome(task: Task, episode: Episode, states: list[dict], within: int) -> dict:
    """success, the first step that counts as reaching the goal (None if never), the final distance in cells."""
    cells = [abs(int(s["agent"][0]) - episode.cell[0]) + abs(int(s["agent"][1]) - episode.cell[1]) for s in states]
    if task.kind == "reach":
        first = next((i for i, c in enumerate(cells) if c <= within), None)
        return {"success": cells[-1] <= within, "first": first, "final_cells": cells[-1]}
    got = next((i for i, s in enumerate(states) if int(s["coin_respawns"][0]) > int(states[0]["coin_respawns"][0])), None)
    return {"success": got is not None, "first": got, "final_cells": cells[-1]}


# -- representations for frames -------------------------------------------------------------------
def frame_encoder(ctx: EvalContext, cfg: GoalsConfig):
    """frames (B, 3, R, R) uint8 -> (B, d): the domain encoder on a still clip of each frame, standardised
    by its features of real train frames (so every feature counts alike in the L1 distance)."""
    key = ("goals.frame_encoder", cfg.encoder)
    if key not in ctx.cache:
        net, _ = domain_encoder(ctx, cfg.encoder)
        dev = next(net.parameters()).device

        def still(frames: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return net(frames.to(dev)[:, None].expand(-1, cfg.encoder.clip, *frames.shape[1:])).float()

        real = train_windows(ctx, 1 + 1, "goals", 2).sample(256, np.random.default_rng(ctx.seed)).context_frames[:, 0]
        feats = still(real)
        mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
        ctx.cache[key] = lambda frames: (still(frames) - mean) / std
    return ctx.cache[key]


# -- the group --------------------------------------------------------------------------------------
def run_task(policy_for, world, task: Task, episodes: list[Episode], within: int, sync=None) -> dict:
    """Play each episode with policy_for(episode) in `world`; the task's figures and each episode's outcome."""
    rows, seconds = [], []
    for ep in episodes:
        world.restore(ep.state)
        traj = reach(world, policy_for(ep), ep.frame, ep.state, task.steps, sync=sync)
        rows.append({"seed": ep.seed, **outcome(task, ep, traj.states, within)})
        seconds += traj.plan_seconds
    wins = [r for r in rows if r["success"]]
    return {"success": float(np.mean([r["success"] for r in rows])), "episodes": len(rows),
            "steps": float(np.mean([r["first"] for r in wins])) if wins else None,
            "plan_seconds": float(np.mean(seconds)) if seconds else 0.0,
            "final_cells": float(np.mean([r["final_cells"] for r in rows])), "per_episode": rows}


def random_rows(ctx: EvalContext, cfg: GoalsConfig, tasks: list[Task], world) -> dict:
    key = ("goals.random", cfg.random_episodes, tuple(t.name for t in tasks), ctx.seed)
    if key not in ctx.cache:
        space = ctx.spec.action_space
        ctx.cache[key] = {t.name: run_task(lambda ep: RandomPolicy(space, seed=ep.seed), world, t,
                                           episodes_for(world, t, cfg.random_episodes, ctx.seed + 1), cfg.within)
                          for t in tasks}
    return ctx.cache[key]


def needs(dataset) -> str | None:
    """Why the goals cannot run on `dataset` (None when they can): they need actions, and explorer."""
    if dataset.action_space.kind == "none":
        return "needs actions; this dataset's action space is 'none' (nothing to plan)"
    if dataset.world != "explorer":
        return (f"the goal tasks are defined on explorer (it restores any state and says where the agent is); "
                f"this dataset holds {dataset.world!r}")
    return None


def settings(ctx: EvalContext) -> GoalsConfig:
    """The group's settings: its options, else QUICK in the quick evaluation, else the full defaults."""
    if not ctx.full and (ctx.options or {}).get("goals") is None:
        return QUICK  # the quick evaluation: planning at every real step costs more than the rest of the suite
    return group_config(ctx, "goals", GoalsConfig)


def plan_tasks(model, ctx: EvalContext, cfg: GoalsConfig, encoder=None, sync=None) -> dict:
    """Every task of `cfg` played by the goal planner in `model` (frames compared through `encoder` when given, else
    the model's latent, else the domain encoder); `sync(state)` before each plan when the model is the real world."""
    world = make_world(ctx.dataset.world, resolution=ctx.spec.resolution, **(ctx.dataset.manifest.get("world_options") or {}))
    tasks, n = [parse_task(t) for t in cfg.tasks], cfg.episodes or ctx.episodes
    planner = {"method": cfg.method, "horizon": cfg.horizon, "population": cfg.population, "elites": cfg.elites,
               "iterations": cfg.iterations, "reduce": cfg.reduce}
    if encoder is None and not isinstance(model, LatentState):
        encoder = frame_encoder(ctx, cfg)
    mode = "pixels" if encoder is not None else resolve_representation(model, "latent", None)
    rows = {}
    try:
        for i, t in enumerate(tasks):
            def policy_for(ep):
                return goal_planner(model, ep.goal, representation=mode, encoder=encoder, seed=ctx.seed + ep.seed, **planner)

            rows[t.name] = run_task(policy_for, world, t, episodes_for(world, t, n, ctx.seed), cfg.within, sync)
            ctx.progress(f"goals {t.name}", i + 1, len(tasks))
    finally:
        world.close()
    return {"who": f"planner ({cfg.method}, on the model's {mode})", "planner": planner, "tasks": rows}


def as_result(played: dict, cfg: GoalsConfig) -> GroupResult:
    """The group's result from what `plan_tasks` (or the random policy) played: success_<task> metrics, the rest in extra."""
    res = GroupResult(extra=played)
    for t in (parse_task(name) for name in cfg.tasks):
        r = played["tasks"][t.name]
        what = f"ends within {cfg.within} cell(s) of the view's cell" if t.kind == "reach" else "picks up the coin"
        res.metrics[f"success_{t.name.replace('-', '')}"] = Metric(
            r["success"], True, description=f"share of {r['episodes']} episodes whose agent {what}, a goal {t.cells} "
                                            f"path steps away, within {t.steps} real steps")
    return res


@register_group("goals")
def goals(model: Any, ctx: EvalContext) -> GroupResult:
    """Success at reaching goal views by planning in the model, scored in the real world."""
    why = needs(ctx.dataset)
    if why:
        raise NotApplicable(why)
    cfg = settings(ctx)
    if isinstance(model, RANDOM_ROWS):
        world = make_world(ctx.dataset.world, resolution=ctx.spec.resolution, **(ctx.dataset.manifest.get("world_options") or {}))
        try:
            rows = random_rows(ctx, cfg, [parse_task(t) for t in cfg.tasks], world)
        finally:
            world.close()
        return as_result({"who": "random policy (planning here acts at random)", "tasks": rows}, cfg)
    if isinstance(model, DatasetOracle):  # the real world itself, compared through the domain encoder
        real = WorldAsModel(ctx.dataset.world, ctx.spec.resolution, ctx.spec.context, ctx.dataset.manifest.get("world_options"))
        return as_result(plan_tasks(real, ctx, cfg, encoder=frame_encoder(ctx, cfg), sync=real.sync), cfg)
    return as_result(plan_tasks(model, ctx, cfg), cfg)


goals.requires = needs



# -- one goal, from the command line (`playworld plan`) ------------------------------------------------
def load_goal_image(path: Path) -> np.ndarray:
    """An image file (.png, .jpg, ...) or a .npy array -> (H, W, 3) uint8 (the size is checked by the planner)."""
    if not path.is_file():
        raise PlayworldError(f"--goal {path} is neither a number of steps nor an image file", "pass e.g. --goal 6 or --goal goal.png")
    if path.suffix == ".npy":
        return np.load(path)
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except OSError as e:
        raise PlayworldError(f"cannot read the goal image {path}: {e}", "pass a PNG or JPEG file, or a .npy array") from None


def goal_steps_away(world, steps: int, seed: int) -> tuple[np.ndarray, dict, np.ndarray, tuple[int, int] | None]:
    """(start frame, start state, goal frame, goal cell or None) for a goal `steps` steps away: on explorer the view
    from a cell that many path steps away (the reach task); elsewhere the view after that many random actions
    from the same seeded start."""
    if world.name == "explorer":
        for s in range(seed, seed + 100):
            ep = make_episode(world, Task("reach", steps), s)
            if ep is not None:
                return ep.frame, ep.state, ep.goal, ep.cell
        raise PlayworldError(f"no start among seeds {seed}..{seed + 99} has a cell exactly {steps} steps away", "ask for fewer steps")
    goal, _ = world.reset(seed=seed)
    policy = RandomPolicy(world.action_space, seed=seed)
    for _ in range(steps):
        goal = np.array(world.step(policy(goal, {})).frame)
    frame, state = world.reset(seed=seed)
    return frame, state, goal, None


def plan_to_goal(model, goal: str, dataset=None, cache_dir: Path | None = None, steps: int | None = None, method: str = "cem",
                 representation: str = "auto", horizon: int = 8, population: int = 64, iterations: int = 3,
                 within: int = 1, seed: int = 0, out: Path | None = None) -> dict:
    """Plan toward `goal` (an image path, or a number of steps) in `model`, act in the real world; a report with
    what happened (and, with `out`, plan.json, goal.png, start.png and episode.mp4 of the real frames)."""
    check_goal_model(model)
    # every check that needs no training before the frame encoder trains (a minute on a CPU)
    mode = resolve_representation(model, representation, (lambda f: f) if dataset is not None else None)
    image = None if goal.strip().isdigit() else goal_tensor(load_goal_image(Path(goal)), model.spec)
    world = make_real_world(model.spec, (dataset.manifest.get("world_options") or {}) if dataset is not None else {})
    encoder = None
    if mode == "pixels":
        ctx = EvalContext(dataset=dataset, spec=model.spec, cache_dir=cache_dir, seed=seed)
        encoder = frame_encoder(ctx, GoalsConfig())
    try:
        if image is None:
            n = int(goal)
            frame, state, goal_frame, cell = goal_steps_away(world, n, seed)
        else:
            n, cell = None, None
            frame, state = world.reset(seed=seed)
            goal_frame = image.permute(1, 2, 0).numpy()
        steps = steps or (2 * n + 2 if n else 20)
        planner = goal_planner(model, goal_frame, method=method, representation=mode, encoder=encoder, horizon=horizon,
                               population=population, elites=max(population // 8, 1), iterations=iterations, seed=seed)
        traj = reach(world, planner, frame, state, steps, keep_frames=True)
    finally:
        world.close()
    d0, d1 = planner.objective.distance_to_goal(frame), planner.objective.distance_to_goal(traj.frames[-1])
    report = {"world": model.spec.world, "goal": goal, "representation": mode, "method": method, "steps": len(traj.actions),
              "distance_start": d0, "distance_end": d1, "plan_seconds_per_step": float(np.mean(traj.plan_seconds)),
              "actions": [int(a) if a.ndim == 0 else a.tolist() for a in traj.actions]}
    lines = [(f"planned {len(traj.actions)} real steps ({method}, on the model's {mode}): representation distance to the goal "
              f"{d0:.3f} -> {d1:.3f}; {report['plan_seconds_per_step']:.3f} CPU-s of planning per step")]
    if cell is not None:
        cells = [abs(int(s["agent"][0]) - cell[0]) + abs(int(s["agent"][1]) - cell[1]) for s in traj.states]
        report.update(goal_cell=list(cell), cells_start=cells[0], cells_end=cells[-1], success=cells[-1] <= within)
        lines.append(f"explorer: {cells[0]} -> {cells[-1]} cells from the goal's cell: "
                     + ("reached" if cells[-1] <= within else f"not reached (within {within} counts)"))
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(goal_frame)).save(out / "goal.png")
        Image.fromarray(np.asarray(frame)).save(out / "start.png")
        write_video(out / "episode.mp4", np.stack(traj.frames), fps=model.spec.fps)
        (out / "plan.json").write_text(json.dumps(report, indent=1))
        lines.append(f"wrote {out}/plan.json, goal.png, start.png, episode.mp4")
    report["lines"] = lines
    return report
