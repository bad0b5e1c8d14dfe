"""Policy-rank fidelity: does the model rank policies the way the real world does?

A world model is useful for choosing between policies when the returns it predicts order them as
the real returns do. K policies (random, sticky, a scripted one where the world has it, a CEM
planner over the model under test, and any dream-trained agents listed in
``ctx.cache["agents"]``) each play N episodes twice from the same start: in the real world and
closed-loop in the model. A start is a real reset (seed ctx.seed + i) followed by K - 1 no-ops,
so both sides begin from the same K real context frames; each policy is built with the same seed
on both sides. Over `steps` steps:

    real return   = sum of the real rewards (until the episode terminates)
    model return  = sum_t alive_t * reward_t, from the model's heads (or the reward model learned
                    from the dataset), alive_t the product of the predicted continues before t

Metrics over the K mean returns: Spearman and Kendall rank correlation (scipy.stats; 1 = same
order) and the mean absolute return error. Worlds without rewards, or without a real environment
(imported video, a world that cannot be built here), are skipped with the reason.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from scipy import stats

from playworld.agents.agent import check_same_space, load_policy, play_episode
from playworld.agents.dream import dataset_has_rewards
from playworld.agents.planner import Planner
from playworld.agents.reward import REWARD_STEPS, has_reward_head, make_reward_fn
from playworld.errors import PlayworldError
from playworld.eval.api import DatasetOracle, EvalContext, GroupResult, Metric, NotApplicable, Skip, register_group
from playworld.worlds.base import make_world
from playworld.worlds.explorer import COIN_COLOR, coin_pixels
from playworld.worlds.policies import Policy, RandomPolicy, StickyPolicy

MAX_EPISODES, MAX_STEPS = 4, 30
QUICK_REWARD_STEPS = 500
"""training steps of the learned reward model in the quick evaluation (--full: the dream's REWARD_STEPS)"""
PLANNER = dict(method="cem", horizon=4, population=12, elites=3, iterations=1)


# -- scripted policies (read the frame, so they act the same in the real world and in a model) -------
class ExplorerCoinPolicy(Policy):
    """explorer: step toward the nearest coin in view (coins are found by colour in the frame);
    with no coin in view, walk straight on, turning at random; a random action with probability eps.

    `reach` ignores coins more than that many cells away (Manhattan), and `wander="random"` takes a
    uniformly random move instead of walking straight when no coin is within reach. With reach=1 and
    random wandering the actions before a pickup carry no pattern (a random walk that steps onto an
    adjacent coin), so a model can only foresee the reward from the coin it sees: data for a reward
    head that must not learn the seeker's approach (turn, then walk straight) as the cause of reward.
    `adjacent="random"` makes the last step random: with a coin next to it the seeker takes a random
    move, so which move picks the coin up is never given away by the policy, only by the frame and the
    action (a model must learn the effect of the action, not that this policy always takes the coin)."""

    COIN = np.array(COIN_COLOR)

    def __init__(self, action_space, seed: int = 0, eps: float = 0.1, reach: int | None = None,
                 wander: str = "straight", adjacent: str = "take"):
        super().__init__(action_space, seed)
        if wander not in ("straight", "random"):
            raise PlayworldError(f"unknown wander mode {wander!r} for the explorer coin policy", "use 'straight' or 'random'")
        if adjacent not in ("take", "random"):
            raise PlayworldError(f"unknown adjacent mode {adjacent!r} for the explorer coin policy", "use 'take' or 'random'")
        self.eps, self.heading, self.reach, self.wander, self.adjacent = float(eps), 4, reach, wander, adjacent

    def reset(self) -> None:
        self.heading = int(self.rng.integers(1, 5))

    def __call__(self, frame: np.ndarray, state: dict) -> np.ndarray:
        if self.rng.random() < self.eps:
            return np.array(self.rng.integers(0, 5), np.int64)
        r = frame.shape[0]
        p = max(r // 16, 1)
        centre = (r - p) // 2 + (p - 1) / 2  # pixel centre of the agent's cell
        rows, cols = np.nonzero(coin_pixels(frame))
        dx, dy = (cols - centre) / p, (rows - centre) / p
        cells = np.abs(np.rint(dx)) + np.abs(np.rint(dy))  # distance in whole cells (pixel centres rounded)
        if self.reach is not None:
            near = cells <= self.reach
            dx, dy, cells = dx[near], dy[near], cells[near]
        if len(dx) == 0:
            if self.wander == "random":
                return np.array(self.rng.integers(1, 5), np.int64)
            if self.rng.random() < 0.1:
                self.heading = int(self.rng.integers(1, 5))
            return np.array(self.heading, np.int64)
        i = int(np.argmin(np.abs(dx) + np.abs(dy)))
        if self.adjacent == "random" and cells[i] <= 1:
            return np.array(self.rng.integers(1, 5), np.int64)
        if abs(dx[i]) >= abs(dy[i]):
            return np.array(4 if dx[i] > 0 else 3, np.int64)
        return np.array(2 if dy[i] > 0 else 1, np.int64)


SCRIPTED: dict[str, Callable[..., Policy]] = {"explorer": ExplorerCoinPolicy}
"""world name -> scripted policy factory (action_space, seed) for worlds that have one"""


# -- the metric -------------------------------------------------------------------------------------
def rank_fidelity(real: dict[str, float], model: dict[str, float]) -> tuple[dict[str, Metric], dict[str, str]]:
    """Spearman, Kendall and mean absolute error between per-policy real and model returns."""
    names = sorted(real)
    r, m = np.array([real[n] for n in names]), np.array([model[n] for n in names])
    metrics = {"return_mae": Metric(float(np.abs(r - m).mean()), False, floor=0.0,
                                    description="mean |model return - real return| over the policies")}
    skipped = {}
    if len(names) < 3:
        why = f"rank correlation needs at least 3 policies, got {len(names)}"
    elif np.ptp(r) == 0:
        why = f"every policy earned the same real return ({r[0]:g}): there is no order to match"
    elif np.ptp(m) == 0:
        why = f"the model predicts the same return ({m[0]:g}) for every policy: rank correlation is undefined"
    else:
        why = None
    for key, fn, what in (("spearman", stats.spearmanr, "Spearman"), ("kendall", stats.kendalltau, "Kendall tau")):
        if why:
            skipped[key] = why
        else:
            metrics[key] = Metric(float(fn(r, m)[0]), True, floor=1.0,
                                  description=f"{what} rank correlation of the policies' model vs real returns")
    return metrics, skipped


def _start(world, seed: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """A real start: reset(seed) then K - 1 no-ops. Returns frames (K, R, R, 3), actions (K, ...)."""
    noop = world.action_space.noop()
    frame, _ = world.reset(seed=seed)
    frames = [frame]
    for _ in range(context - 1):
        frames.append(world.step(noop).frame)
    return np.stack(frames), np.stack([noop] * context)


def real_return(world, policy: Policy, seed: int, context: int, steps: int) -> float:
    frame, state = world.reset(seed=seed)
    noop = world.action_space.noop()
    for _ in range(context - 1):
        result = world.step(noop)
        frame, state = result.frame, result.state
    return play_episode(world, policy, frame, state, steps)


@torch.no_grad()
def model_returns(model, reward_fn, policies: list[Policy], frames: np.ndarray, actions: np.ndarray,
                  steps: int, seed: int) -> list[float]:
    """Closed-loop returns in the model: policies[i] acts from context frames[i] (K, R, R, 3)."""
    ctx_frames = torch.from_numpy(frames).permute(0, 1, 4, 2, 3).contiguous()  # (N, K, 3, R, R)
    state = model.reset(ctx_frames, torch.from_numpy(actions), seed=seed)
    frame = ctx_frames[:, -1]
    for p in policies:
        p.reset()
    ret, alive = torch.zeros(len(policies)), torch.ones(len(policies))
    space = model.spec.action_space
    for _ in range(steps):
        view = frame.permute(0, 2, 3, 1).cpu().numpy()
        act = np.stack([np.asarray(p(view[i], {}), space.dtype) for i, p in enumerate(policies)])
        state, new = model.step(state, torch.from_numpy(act))
        reward, cont = reward_fn(state, frame.to(new.device), new)
        ret += alive * reward.float().cpu()
        alive = alive * cont.float().cpu()
        frame = new.cpu()
    return ret.tolist()


def _reward_fn(model, ctx: EvalContext):
    if has_reward_head(model):
        return make_reward_fn(model)
    key = ("policy_rank.reward_fn", ctx.dataset.fingerprint)  # one reward model for every baseline
    if key not in ctx.cache:
        cache = ctx.cache_dir / "reward_model" if ctx.cache_dir is not None else None
        steps = REWARD_STEPS if ctx.full else QUICK_REWARD_STEPS
        ctx.cache[key] = make_reward_fn(model, ctx.dataset, cache_dir=cache, seed=ctx.seed, steps=steps)
    return ctx.cache[key]


def policy_makers(model, ctx: EvalContext, world_name: str, reward_fn) -> dict[str, Callable[[int], Policy]]:
    """name -> (seed -> a fresh policy) for every policy ranked on this world."""

    space = ctx.spec.action_space
    makers: dict[str, Callable[[int], Any]] = {
        "random": lambda s: RandomPolicy(space, seed=s),
        "sticky": lambda s: StickyPolicy(space, seed=s, p=0.9),
    }
    if ctx.full:  # planning in the model at every real step costs more than all the rest of the suite
        makers["planner"] = lambda s: Planner(model, reward_fn=reward_fn, seed=s, **PLANNER)
    if world_name in SCRIPTED:
        makers["scripted"] = lambda s: SCRIPTED[world_name](space, seed=s)
    for path in ctx.cache.get("agents", []):
        probe = load_policy(path)
        check_same_space(probe.action_space, space, f"agent {path}", "this world model")
        makers[f"agent:{path}"] = lambda s, path=path: load_policy(path, seed=s)
    return makers


@register_group("policy_rank")
def policy_rank(model: Any, ctx: EvalContext) -> GroupResult:
    if isinstance(model, DatasetOracle):
        raise Skip("the oracle is the real world: its returns are the real ones (the floor: correlation 1, error 0)")
    if ctx.spec.action_space.kind == "none":
        raise NotApplicable("the world takes no actions: there are no policies to rank")
    if not dataset_has_rewards(ctx.dataset):
        raise NotApplicable(f"the dataset's world ({ctx.dataset.world}) gave no rewards: every policy's return is 0")
    world_name = ctx.dataset.world
    try:
        world = make_world(world_name, resolution=ctx.spec.resolution, **(ctx.dataset.manifest.get("world_options") or {}))
    except PlayworldError as e:
        raise NotApplicable(f"no real environment for {world_name!r} to score policies in ({e.message})") from None
    try:
        reward_fn = _reward_fn(model, ctx)
        episodes, steps, K = min(ctx.episodes, MAX_EPISODES), min(ctx.horizon, MAX_STEPS), ctx.spec.context
        seeds = [ctx.seed + i for i in range(episodes)]
        starts = [_start(world, s, K) for s in seeds]
        frames, actions = np.stack([f for f, _ in starts]), np.stack([a for _, a in starts])
        real, imagined, per_episode = {}, {}, {}
        for name, make in policy_makers(model, ctx, world_name, reward_fn).items():
            r = [real_return(world, make(s), s, K, steps) for s in seeds]
            m = model_returns(model, reward_fn, [make(s) for s in seeds], frames, actions, steps, ctx.seed)
            real[name], imagined[name] = float(np.mean(r)), float(np.mean(m))
            per_episode[name] = {"real": r, "model": m}
    finally:
        world.close()
    res = GroupResult()
    res.metrics, res.skipped = rank_fidelity(real, imagined)
    res.extra = {"real_returns": real, "model_returns": imagined, "episodes": episodes, "steps": steps,
                 "per_episode": per_episode}
    return res
