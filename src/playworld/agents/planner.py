"""Planning inside any world model with a reward: CEM and MPPI, used model-predictively.

    planner = Planner(model, method="cem", horizon=8, population=64, iterations=3)
    planner.reset()                          # at each episode start
    action = planner(frame, state)           # like any playworld policy: (R, R, 3) uint8 frame -> action

Each call puts the newest real frame into a K-frame history (with the actions the planner took),
then searches action sequences of length `horizon`: it draws `population` sequences from a
distribution (discrete: one categorical per step; continuous: one diagonal Gaussian per step,
clipped to the bounds), rolls them all out in the model as one batch from the same context (same
seed, so candidates differ only by their actions), scores each by its discounted return (rewards
weighted by the predicted probability of not having terminated), and refits the distribution:

    cem:  to the `elites` best sequences (equal weights); executes the best sequence's first action
    mppi: to all sequences weighted by softmax(return / temperature); executes the refit mean's
          first action (discrete: its most probable action)

Only the first action is executed; the next call replans from the new frame, warm-started from the
previous distribution shifted by one step (model-predictive control).

What a plan is worth is the planner's `objective` (an `Objective`): by default `Returns`, the
discounted imagined return above; agents/goals.py's `GoalObjective` scores the distance to a goal
frame's representation instead. An objective is started once per real step (`start`: the context,
the population, the step's seed) and then scores each iteration's plans (`score`), so it may set up
what the iterations share (a latent model's state after the context) once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from playworld.agents.env import check_action_space
from playworld.agents.reward import RewardFn, make_reward_fn, reads_state_only
from playworld.errors import PlayworldError
from playworld.models.interface import LatentState, WorldModel, model_device
from playworld.worlds.policies import Policy


@torch.no_grad()
def rollout_returns(
    model: WorldModel, reward_fn: RewardFn, frames: Tensor, actions: Tensor, plans: Tensor,
    seed: int = 0, discount: float = 0.99,
) -> Tensor:
    """Discounted imagined return of each plan from one context.

    frames (K, 3, R, R) uint8, actions (K, ...) the context; plans (N, H) int64 or (N, H, dim) float.
    Returns (N,): sum_t discount^t * alive_t * reward_t, alive_t the product of continue probabilities before t.
    """
    n, horizon = plans.shape[:2]
    state = model.reset(frames[None].expand(n, *frames.shape), actions[None].expand(n, *actions.shape), seed=seed)
    prev = frames[-1][None].expand(n, *frames.shape[1:])
    device = model_device(model)
    ret, alive = torch.zeros(n, device=device), torch.ones(n, device=device)
    # a reward read from the model's heads needs no frames: skip decoding them where the model can
    frameless = reads_state_only(reward_fn) and isinstance(model, LatentState)
    for t in range(horizon):
        if frameless:
            state = model.advance(state, plans[:, t].to(device))
            reward, cont = reward_fn(state, None, None)
        else:
            state, frame = model.step(state, plans[:, t].to(device))
            reward, cont = reward_fn(state, prev.to(frame.device), frame)
            prev = frame
        ret += discount**t * alive * reward.to(device)
        alive = alive * cont.to(device)
    return ret


class Objective(Protocol):
    """What the planner maximises: `start(frames, actions, n, seed)` once per real step from the context
    (frames (K, 3, R, R) uint8, actions (K[, dim])), for `n` plans a step; `score(started, plans)` ->
    (N,) float, higher is better, for plans (N, H) int64 or (N, H, dim) float."""

    def start(self, frames: Tensor, actions: Tensor, n: int, seed: int) -> Any: ...

    def score(self, started: Any, plans: Tensor) -> Tensor: ...


class Returns:
    """The default objective: each plan's discounted imagined return (`rollout_returns`)."""

    def __init__(self, model: WorldModel, reward_fn: RewardFn, discount: float = 0.99):
        self.model, self.reward_fn, self.discount = model, reward_fn, discount

    def start(self, frames: Tensor, actions: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor, int]:
        return frames, actions, seed

    def score(self, started: tuple[Tensor, Tensor, int], plans: Tensor) -> Tensor:
        frames, actions, seed = started
        return rollout_returns(self.model, self.reward_fn, frames, actions, plans, seed, self.discount)


class Planner(Policy):
    """CEM / MPPI model-predictive control over `model` (see the module doc). Without an `objective` it
    maximises returns read by `reward_fn` (default: the model's heads, else a reward model of `dataset`)."""

    def __init__(
        self, model: WorldModel, method: Literal["cem", "mppi"] = "cem", horizon: int = 8, population: int = 64,
        elites: int = 8, iterations: int = 3, discount: float = 0.99, temperature: float = 0.5,
        smoothing: float = 0.1, min_std: float = 0.05, reward_fn: RewardFn | None = None, dataset=None,
        cache_dir: str | Path | None = None, seed: int = 0, objective: Objective | None = None,
    ):
        super().__init__(model.spec.action_space, seed)
        if method not in ("cem", "mppi"):
            raise PlayworldError(f"unknown planning method {method!r}", "use method='cem' or method='mppi'")
        if horizon < 1 or population < 2 or not 1 <= elites <= population or iterations < 1:
            raise PlayworldError(
                f"bad planner settings horizon={horizon} population={population} elites={elites} iterations={iterations}",
                "use horizon >= 1, population >= 2, 1 <= elites <= population, iterations >= 1",
            )
        self.model, self.method = model, method
        self.horizon, self.population, self.elites, self.iterations = horizon, population, elites, iterations
        self.discount, self.temperature, self.smoothing, self.min_std = discount, temperature, smoothing, min_std
        if objective is None:
            self.reward_fn = reward_fn or make_reward_fn(model, dataset, cache_dir=cache_dir, seed=seed)
            objective = Returns(model, self.reward_fn, discount)
        self.objective = objective
        self.generator = torch.Generator().manual_seed(seed)
        space = self.action_space
        if space.kind == "continuous":
            low, high = torch.tensor(space.low), torch.tensor(space.high)
            finite = torch.isfinite(low) & torch.isfinite(high)
            self.low, self.high = low, high
            self.center = torch.where(finite, (low + high) / 2, torch.zeros_like(low))
            self.spread = torch.where(finite, (high - low) / 2, torch.ones_like(low))
        self.calls = 0
        self.reset()

    # -- the policy interface -------------------------------------------------------------------
    def reset(self) -> None:
        self.frames: list[Tensor] = []  # (3, R, R) uint8 each, newest last
        self.actions: list[Tensor] = []  # the action that led into each frame
        self.next_action: Tensor | None = None  # what led into the next frame we will be given
        self.dist = self._initial(self.horizon)

    def __call__(self, frame: np.ndarray, state: dict | None = None) -> np.ndarray:
        r = self.model.spec.resolution
        frame_t = torch.from_numpy(np.array(frame))  # a copy: worlds may hand out read-only views
        if frame_t.shape != (r, r, 3) or frame_t.dtype != torch.uint8:
            raise PlayworldError(
                f"the planner got a frame of shape {tuple(frame_t.shape)} {frame_t.dtype}",
                f"pass the world's ({r}, {r}, 3) uint8 frame, at the model's resolution",
            )
        led_in = self.next_action if self.next_action is not None else torch.as_tensor(self.action_space.noop())
        self.frames.append(frame_t.permute(2, 0, 1))
        self.actions.append(led_in)
        k = self.model.spec.context
        self.frames, self.actions = self.frames[-k:], self.actions[-k:]
        pad = k - len(self.frames)  # too early in the episode: repeat the first frame with no-ops
        frames = torch.stack([self.frames[0]] * pad + self.frames)
        actions = torch.stack([torch.as_tensor(self.action_space.noop())] * pad + self.actions)
        action = self.plan(frames, actions)
        self.next_action = action
        return action.numpy().astype(self.action_space.dtype).reshape(self.action_space.shape)

    # -- search ---------------------------------------------------------------------------------
    def _initial(self, steps: int) -> Tensor:
        """The search distribution of `steps` steps: probs (steps, n), or mean and std (steps, 2, dim)."""
        if self.action_space.kind == "continuous":
            return torch.stack([self.center, self.spread])[None].repeat(steps, 1, 1)
        return torch.full((steps, self.action_space.n), 1.0 / self.action_space.n)

    def _sample(self, n: int) -> Tensor:
        if self.action_space.kind == "continuous":
            mean, std = self.dist[:, 0], self.dist[:, 1]
            noise = torch.randn(n, *mean.shape, generator=self.generator)
            return torch.maximum(torch.minimum(mean + std * noise, self.high), self.low)  # (N, H, dim)
        flat = torch.multinomial(self.dist, n, replacement=True, generator=self.generator)  # (H, N)
        return flat.T.contiguous()  # (N, H)

    def _refit(self, plans: Tensor, weights: Tensor) -> None:
        """Move the distribution toward the weighted plans (weights (N,) sum to 1)."""
        if self.action_space.kind == "continuous":
            w = weights[:, None, None]
            mean = (w * plans).sum(0)
            std = (w * (plans - mean).pow(2)).sum(0).sqrt().clamp_min(self.min_std * float(self.spread.mean()))
            new = torch.stack([mean, std], 1)
        else:
            onehot = torch.nn.functional.one_hot(plans, self.action_space.n).float()  # (N, H, n)
            new = (weights[:, None, None] * onehot).sum(0)
            new = new + self.min_std / self.action_space.n  # keep every action possible
            new = new / new.sum(-1, keepdim=True)
        self.dist = self.smoothing * self.dist + (1 - self.smoothing) * new

    def plan(self, frames: Tensor, actions: Tensor) -> Tensor:
        """Best first action from a context: frames (K, 3, R, R) uint8, actions (K,) or (K, dim)."""
        seed = int(torch.randint(2**31, (), generator=self.generator))
        started = self.objective.start(frames, actions, self.population, seed)
        best_plan, best_return = None, -float("inf")
        for _ in range(self.iterations):
            plans = self._sample(self.population)
            returns = self.objective.score(started, plans).cpu()
            if self.method == "cem":
                top = returns.topk(self.elites).indices
                weights = torch.zeros(len(returns)).index_fill_(0, top, 1.0 / self.elites)
            else:
                weights = torch.softmax((returns - returns.max()) / max(self.temperature, 1e-8), 0)
            i = int(returns.argmax())
            if float(returns[i]) > best_return:
                best_plan, best_return = plans[i], float(returns[i])
            self._refit(plans, weights)
        if self.method == "cem":
            action = best_plan[0]
        elif self.action_space.kind == "continuous":
            action = self.dist[0, 0].clone()
        else:
            action = self.dist[0].argmax()
        # warm start: shift the distribution by one step and append a fresh one at the end
        self.dist = torch.cat([self.dist[1:], self._initial(1)])
        self.calls += 1
        return action


def check_policy(policy, model: WorldModel, what: str = "the policy") -> None:
    """PlayworldError when `policy` (anything with an `action_space`) does not act in the model's space."""
    check_action_space(getattr(policy, "action_space", None), model.spec, what)
