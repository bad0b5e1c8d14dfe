"""Long-horizon coherence on explorer: loop closure and drift.

Loop closure (does the model show the same place when the agent comes back?). From each real
context the agent walks a short lead-in of L moves to a place A, then an A -> B -> A path: g//2
moves away, a no-op when g is odd, and the same moves reversed back, so it stands on A again g
steps after its first visit. Every path is planned in the real world (restored from the recorded
state, blocked moves avoided), so the real agent provably returns to A. The lead-in makes the first
visit a *generated* frame: without it, repeating the last context frame would "close every loop".

- `loop_psnr@g`: PSNR of the generated revisit frame against the real frame at the first visit.
  Its floor is the real world's own revisit-vs-first-visit PSNR (coins collected on the way and the
  agent's facing differ slightly).
- `loop_state_error@g`: where does the revisit frame show the agent? The real world is rendered with
  the agent at every cell within +-SEARCH cells of the true revisit cell (everything else as at the
  revisit); the cell whose render is closest (MSE) to the generated frame is the estimate, and the
  error is its distance in cells from the true cell (0 for a perfect model).
- both split by the model's context window K: gaps g <= K (the first visit is still in context) vs
  g > K (the model must reproduce a place it can no longer see).

Drift: from the same contexts the agent takes DRIFT_STEPS sticky random moves; the curves are
the per-step PSNR of the generated frames against the real world driven by the same actions, the
per-step gap between generated and real frame statistics (mean and std of the pixel values;
autoregressive models often drift in brightness or saturation long before they lose the layout), and
the ratio of their finest-detail energy (`metrics.detail_energy`): error a model adds each step and
never removes grows there into a checkered texture that dissolves walls and landmarks, while the
real world's stays flat; it needs no pixel alignment, so it still reads after the layout has gone. Its
counterpart is the ratio of their contrast between 8x8 regions (`metrics.region_contrast`): a model that
draws what it cannot know as its average fades towards flat ground, and that ratio falls below 1.
"""

from __future__ import annotations

import numpy as np
import torch

from playworld.eval.api import (
    DatasetOracle,
    EvalContext,
    GroupResult,
    Metric,
    NotApplicable,
    Skip,
    TooFewEpisodes,
    Windows,
    register_group,
)
from playworld.media import labelled_panels
from playworld.metrics import detail_energy, psnr, region_contrast
from playworld.worlds.base import make_world

GAPS = (5, 15, 30, 50)
"""loop gaps of `playworld eval --full`"""
QUICK_GAPS = (5, 30)
"""loop gaps of the quick default: one inside a small-preset context (K=4 sees 4 frames back, the lead-in
walks 4 more), one well beyond it"""
LEAD_IN = 4
"""moves from the end of the real context to the first visit of A"""
SEARCH = 4
"""cells searched on each side of the true revisit cell for the state estimate"""
DRIFT_STEPS = 256
"""drift moves of `--full` (25 s of play at 10 fps)"""
QUICK_DRIFT_STEPS = 128
QUICK_WINDOWS = 8
"""starting contexts of the quick default (`--full`: ctx.episodes)"""


def sizes(ctx: EvalContext) -> tuple[tuple[int, ...], int, int]:
    """(loop gaps, drift steps, windows) for this evaluation: the full set with ctx.full, else the quick one."""
    if ctx.full:
        return GAPS, DRIFT_STEPS, ctx.episodes
    return QUICK_GAPS, QUICK_DRIFT_STEPS, min(ctx.episodes, QUICK_WINDOWS)
DIRECTIONS = ("up", "down", "left", "right")
INVERSE = {"up": "down", "down": "up", "left": "right", "right": "left"}


class _RealWorld:
    """The dataset's world, restorable and never truncated (paths may outlast recorded episodes)."""

    def __init__(self, ctx: EvalContext):
        options = dict(ctx.dataset.manifest.get("world_options") or {})
        options["max_steps"] = 10**9
        self.world = make_world(ctx.dataset.world, resolution=ctx.spec.resolution, **options)
        names = list(ctx.spec.action_space.names)
        if not all(d in names for d in DIRECTIONS) or "agent" not in ctx.dataset.state_keys:
            raise NotApplicable("needs a world with up/down/left/right actions and an 'agent' state (explorer)")
        self.action = {d: names.index(d) for d in DIRECTIONS}
        self.noop = 0

    def run(self, state: dict, actions: list[int]) -> tuple[np.ndarray, list[dict]]:
        """Restore `state`, take `actions`; -> frames (len, H, W, 3) u8 and the state after each."""
        self.world.restore(state)
        frames, states = [], []
        for a in actions:
            r = self.world.step(np.int64(a))
            frames.append(r.frame)
            states.append(r.state)
        return np.stack(frames), states

    def walk(self, state: dict, steps: int, rng: np.random.Generator) -> tuple[list[str], dict]:
        """A random walk of `steps` unblocked moves (no immediate reversal when avoidable)."""
        self.world.restore(state)
        moves: list[str] = []
        for _ in range(steps):
            before = self.world.state()
            options = [d for d in rng.permutation(DIRECTIONS) if not moves or d != INVERSE[moves[-1]]]
            options += [INVERSE[moves[-1]]] if moves else []
            for d in options:
                r = self.world.step(np.int64(self.action[d]))
                if not np.array_equal(r.state["agent"], before["agent"]):
                    moves.append(d)
                    break
                self.world.restore(before)
            else:
                raise Skip("the agent is walled in at an evaluation start (no move is possible)")
        return moves, self.world.state()

    def locate(self, frame: np.ndarray, state: dict) -> np.ndarray:
        """The (dx, dy) offset from state['agent'] at which the real world looks most like `frame`."""
        agent = np.asarray(state["agent"])
        size = self.world.map_size  # candidates stay on the map
        # Nearest offsets first: where several cells look the same (open grass, a lake), the tie
        # goes to the cell nearest the truth, since the frame cannot say otherwise.
        offsets = sorted(((dx, dy) for dy in range(-SEARCH, SEARCH + 1) for dx in range(-SEARCH, SEARCH + 1)
                          if 0 <= agent[0] + dx < size and 0 <= agent[1] + dy < size), key=lambda o: o[0] ** 2 + o[1] ** 2)
        f = frame.astype(np.float32)
        best, best_err = (0, 0), np.inf
        for dx, dy in offsets:
            s = dict(state)
            s["agent"] = agent + np.array([dx, dy], agent.dtype)
            err = float(((self.world.restore(s).astype(np.float32) - f) ** 2).mean())
            if err < best_err - 1e-9:
                best, best_err = (dx, dy), err
        return np.array(best, np.float64)


def _loop_paths(ctx: EvalContext, real: _RealWorld, windows: Windows, gap: int) -> dict:
    """Plan one lead-in + A->B->A path per window: actions (N, L+gap), real frames (N, L+gap, H, W, 3)."""
    key = ("coherence-loop", ctx.seed, tuple(windows.index), gap)
    if key in ctx.cache:
        return ctx.cache[key]
    rng = np.random.default_rng([ctx.seed, gap])
    actions, real_frames, revisit_state = [], [], []
    for start in windows.world_states():
        lead, at_a = real.walk(start, LEAD_IN, rng)
        away, _ = real.walk(at_a, gap // 2, rng)
        back = [INVERSE[d] for d in reversed(away)]
        seq = [real.action[d] for d in lead + away] + [real.noop] * (gap % 2) + [real.action[d] for d in back]
        frames, states = real.run(start, seq)
        assert np.array_equal(states[-1]["agent"], at_a["agent"]), "a reversed path must return to A"
        actions.append(seq)
        real_frames.append(frames)
        revisit_state.append(states[-1])
    frames = np.stack(real_frames)  # (N, L+gap, H, W, 3)
    out = {"actions": torch.tensor(actions, dtype=torch.long), "frames": frames, "first": frames[:, LEAD_IN - 1],
           "revisit": frames[:, -1], "revisit_state": revisit_state}
    ctx.cache[key] = out
    return out


def _drift_paths(ctx: EvalContext, real: _RealWorld, windows: Windows, steps: int) -> dict:
    """Sticky random moves (repeat with probability 0.8) and the real frames they lead to."""
    key = ("coherence-drift", ctx.seed, tuple(windows.index), steps)
    if key in ctx.cache:
        return ctx.cache[key]
    rng = np.random.default_rng([ctx.seed, steps])
    n_actions = ctx.spec.action_space.n
    actions, frames = [], []
    for start in windows.world_states():
        seq, a = [], int(rng.integers(n_actions))
        for _ in range(steps):
            a = a if rng.random() < 0.8 else int(rng.integers(n_actions))
            seq.append(a)
        actions.append(seq)
        frames.append(real.run(start, seq)[0])
    out = {"actions": torch.tensor(actions, dtype=torch.long), "frames": np.stack(frames)}  # frames (N, S, H, W, 3)
    ctx.cache[key] = out
    return out


def _rollout(model, ctx: EvalContext, windows: Windows, actions: torch.Tensor, real_frames: np.ndarray) -> np.ndarray:
    """Generated frames (N, S, H, W, 3) u8; the oracle is the real world itself."""
    if isinstance(model, DatasetOracle):
        return real_frames
    return ctx.generate(model, windows, actions).numpy().transpose(0, 1, 3, 4, 2)


def requires(dataset) -> str | None:
    """Why this group cannot run on `dataset` (None when it can); the suite asks before any work."""
    return None if dataset.world == "explorer" else f"needs an explorer dataset (this one is {dataset.world!r})"


@register_group("coherence")
def coherence_group(model, ctx: EvalContext) -> GroupResult:
    if (why := requires(ctx.dataset)) is not None:
        raise NotApplicable(why)
    real = _RealWorld(ctx)
    K = ctx.spec.context
    gaps, drift_steps, n_windows = sizes(ctx)
    try:
        windows = ctx.windows(horizon=1, n=n_windows)  # only the contexts are recorded; the paths are played in the real world
    except Skip:
        lengths = [ctx.dataset.episode_length(e) for e in ctx.dataset.episode_ids(ctx.split)]
        raise TooFewEpisodes("loop_psnr", f"a {ctx.split} episode of at least {K + 1} frames (K={K} context + 1)",
                             f"{len(lengths)} {ctx.split} episodes, longest {max(lengths, default=0)} frames") from None
    result = GroupResult(extra={"context": K, "gaps": list(gaps), "lead_in": LEAD_IN, "search_cells": SEARCH,
                                "windows": len(windows), "drift_steps": drift_steps, "full": ctx.full})
    per_gap: dict[int, tuple[float, float]] = {}
    for gap in gaps:
        paths = _loop_paths(ctx, real, windows, gap)
        gen = _rollout(model, ctx, windows, paths["actions"], paths["frames"])  # (N, L+gap, H, W, 3)
        gen_revisit, gen_first = gen[:, -1], gen[:, LEAD_IN - 1]
        loop = psnr(gen_revisit, paths["first"], channels_first=False)
        floor = psnr(paths["revisit"], paths["first"], channels_first=False)
        err = [np.linalg.norm(real.locate(f, s)) for f, s in zip(gen_revisit, paths["revisit_state"])]
        where = "inside" if gap <= K else "beyond"
        result.metrics[f"loop_psnr@{gap}"] = Metric(
            float(loop.mean()), higher_is_better=True, floor=float(floor.mean()), unit="dB",
            description=f"revisit after {gap} steps vs the real first visit ({where} the K={K} context)",
        )
        result.metrics[f"loop_state_error@{gap}"] = Metric(
            float(np.mean(err)), higher_is_better=False, floor=0.0, unit="cells",
            description=f"distance of the cell the revisit frame shows from the true cell, gap {gap} ({where} context)",
        )
        result.extra[f"loop_self_psnr@{gap}"] = float(psnr(gen_revisit, gen_first, channels_first=False).mean())
        per_gap[gap] = (float(loop.mean()), float(np.mean(err)))
        if gap == max(gaps) and not isinstance(model, DatasetOracle):
            result.videos[f"loop closure, gap {gap}: real | model"] = _side_by_side(paths["frames"][0], gen[0])
    for where, these in (("inside", [g for g in gaps if g <= K]), ("beyond", [g for g in gaps if g > K])):
        if not these:
            reason = f"no gap of {list(gaps)} is {'within' if where == 'inside' else 'beyond'} the model's context K={K}"
            result.skipped[f"loop_psnr_{where}_context"] = reason
            result.skipped[f"loop_state_error_{where}_context"] = reason
            continue
        floors = [result.metrics[f"loop_psnr@{g}"].floor for g in these]
        result.metrics[f"loop_psnr_{where}_context"] = Metric(
            float(np.mean([per_gap[g][0] for g in these])), True, float(np.mean(floors)), "dB",
            f"loop-closure PSNR averaged over gaps {these} ({where} the K={K} context)")
        result.metrics[f"loop_state_error_{where}_context"] = Metric(
            float(np.mean([per_gap[g][1] for g in these])), False, 0.0, "cells",
            f"loop-closure state error averaged over gaps {these} ({where} the K={K} context)")
    _drift(model, ctx, real, windows, result, drift_steps)
    return result


coherence_group.requires = requires


def _drift(model, ctx: EvalContext, real: _RealWorld, windows: Windows, result: GroupResult, steps: int) -> None:
    paths = _drift_paths(ctx, real, windows, steps)
    truth = paths["frames"]
    gen = _rollout(model, ctx, windows, paths["actions"], truth)
    by_step = psnr(gen, truth, channels_first=False).mean(0)  # (S,)
    g, t = gen.astype(np.float64), truth.astype(np.float64)
    mean_gap = np.abs(g.mean(axis=(2, 3, 4)) - t.mean(axis=(2, 3, 4))).mean(0)  # (S,) grey levels
    std_gap = np.abs(g.std(axis=(2, 3, 4)) - t.std(axis=(2, 3, 4))).mean(0)
    result.curves["drift_psnr_by_step"] = by_step.tolist()
    result.curves["drift_mean_gap_by_step"] = mean_gap.tolist()
    result.curves["drift_std_gap_by_step"] = std_gap.tolist()
    last = slice(-32, None)
    result.metrics["drift_psnr_mean"] = Metric(
        float(by_step.mean()), True, None, "dB", f"per-step PSNR against the real world over {steps} steps, averaged")
    result.metrics["drift_psnr_last32"] = Metric(
        float(by_step[last].mean()), True, None, "dB", f"per-step PSNR over steps {steps - 31}..{steps}")
    result.metrics["drift_mean_gap_last32"] = Metric(
        float(mean_gap[last].mean()), False, 0.0, "grey levels",
        f"|mean pixel value of generated - real| over steps {steps - 31}..{steps} (brightness drift)")
    result.metrics["drift_std_gap_last32"] = Metric(
        float(std_gap[last].mean()), False, 0.0, "grey levels",
        f"|pixel std of generated - real| over steps {steps - 31}..{steps} (contrast drift)")
    _ratio_of_statistic(result, "detail", detail_energy, gen, truth, steps,
                        "finest-detail energy (metrics.detail_energy)",
                        "0 = the real world's texture, 1 = twice (a checkered texture grown step by step) or half (blur)")
    _ratio_of_statistic(result, "region", region_contrast, gen, truth, steps,
                        "contrast between 8x8 regions (metrics.region_contrast)",
                        "0 = the real world's, 1 = half (faded towards flat ground) or twice")
    if not isinstance(model, DatasetOracle):
        result.videos[f"drift over {steps} steps: real | model"] = _side_by_side(truth[0], gen[0])


def _ratio_of_statistic(result: GroupResult, name: str, statistic, gen: np.ndarray, truth: np.ndarray, steps: int,
                        what: str, reading: str) -> None:
    """A per-frame statistic of the generated frames over the real ones' (both (N, S, H, W, 3), averaged over the
    N starts): the curve drift_<name>_ratio_by_step, the ratio over the last 32 steps in `extra`, and the metric
    drift_<name>_gap_last32, its |log2| (0: the real world's; growth and loss read alike)."""
    ours, real = statistic(gen, channels_first=False).mean(0), statistic(truth, channels_first=False).mean(0)  # (S,)
    result.curves[f"drift_{name}_ratio_by_step"] = (ours / np.maximum(real, 1e-9)).tolist()
    ratio = float(ours[-32:].mean() / max(real[-32:].mean(), 1e-9))
    result.extra[f"drift_{name}_ratio_last32"] = ratio
    result.metrics[f"drift_{name}_gap_last32"] = Metric(
        abs(float(np.log2(max(ratio, 1e-9)))), False, 0.0, "log2",
        f"|log2 of generated over real {what}| over steps {steps - 31}..{steps}: {reading}")


def _side_by_side(real: np.ndarray, gen: np.ndarray) -> np.ndarray:
    """(S, H, W, 3) twice -> (S, H', W', 3) u8: real left, model right, labelled (playworld.media)."""
    return labelled_panels({"real": real, "model": gen}, scale=1)
