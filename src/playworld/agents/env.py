"""Any `WorldModel` as a Gymnasium environment (DIAMOND's world_model_env, for every family).

    env = WorldModelEnv(model, dataset, split="train", max_steps=100)
    obs, info = env.reset(seed=0)       # obs: the newest frame of a real context drawn from `dataset`
    obs, reward, terminated, truncated, info = env.step(action)

    envs = VectorWorldModelEnv(model, dataset, num_envs=64)   # B imagined envs stepped as one batch

Reset draws a window of K = model.spec.context real frames and their actions from the dataset split
and filters it with `model.reset`; each step imagines the next frame with `model.step`. Reward and
termination come from the model's own heads (`predict_reward`, `predict_continue`) where it has
them, otherwise from a small reward model learned from the dataset (agents/reward.py, cached in
`cache_dir`). An episode is truncated after `max_steps` imagined steps. Everything is drawn from
the environment's seeded generator, so a seeded reset fixes the whole episode.

The vector variant starts and resets its B envs together (imagination batches, as in Dreamer): an
env that terminates is frozen (same frame, reward 0, terminated stays True) until the next reset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from playworld.agents.reward import RewardFn, make_reward_fn
from playworld.data.store import Dataset
from playworld.data.windows import WindowSampler
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec, model_device
from playworld.runs.load import check_dataset_matches
from playworld.spaces import ActionSpace


def gym_space(space: ActionSpace) -> gym.Space:
    """A playworld ActionSpace as a Gymnasium space ('none' is Discrete(1))."""
    if space.kind == "continuous":
        return gym.spaces.Box(np.array(space.low, np.float32), np.array(space.high, np.float32), dtype=np.float32)
    return gym.spaces.Discrete(space.n)


def as_action_space(space: Any) -> ActionSpace | None:
    """A playworld ActionSpace, or the one a Gymnasium Discrete/Box space stands for (None if neither)."""
    if isinstance(space, ActionSpace) or space is None:
        return space
    if isinstance(space, gym.spaces.Discrete):
        return ActionSpace.discrete(int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return ActionSpace.continuous(space.low, space.high)
    return None


def check_action_space(space: Any, spec: WorldSpec, what: str = "the policy") -> None:
    """PlayworldError when `space` (of a policy, planner or agent) is not the model's action space."""
    want, space = spec.action_space, as_action_space(space)
    if space is None or (space.kind, space.n, space.dim) != (want.kind, want.n, want.dim):
        have = space.describe() if space is not None else "unknown"
        raise PlayworldError(
            f"{what} acts in {have} but the world model takes {want.describe()} actions",
            "use a policy made for the same world as the model (same action space)",
        )


class ImaginedEnvs:
    """The batched core: B imagined episodes, torch in and out. Frames (B, 3, R, R) uint8."""

    def __init__(
        self, model: WorldModel, dataset: Dataset | str, num_envs: int = 1, split: str = "train",
        max_steps: int = 100, reward_fn: RewardFn | None = None, cache_dir: str | Path | None = None,
    ):

        self.model, self.spec = model, model.spec
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        check_dataset_matches(self.spec, self.dataset, "the world model")
        if max_steps < 1:
            raise PlayworldError(f"max_steps must be >= 1, got {max_steps}", "pass max_steps=100 or so")
        self.num_envs, self.max_steps = int(num_envs), int(max_steps)
        self.sampler = WindowSampler(self.dataset, self.spec.context, 1, split)
        self.reward_fn = reward_fn or make_reward_fn(model, self.dataset, cache_dir=cache_dir)
        self.device = model_device(model)

    def reset(self, rng: np.random.Generator) -> Tensor:
        """Start every env from a random real context; returns the newest context frames (B, 3, R, R)."""
        batch = self.sampler.sample(self.num_envs, rng)
        self.state = self.model.reset(batch.context_frames, batch.context_actions, seed=int(rng.integers(2**31)))
        self.frame = batch.context_frames[:, -1].to(self.device)
        self.t = 0
        self.done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return self.frame

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """action (B,) or (B, dim) -> frame (B, 3, R, R), reward (B,), terminated (B,), truncated (B,)."""
        state, frame = self.model.step(self.state, action)
        reward, cont = self.reward_fn(state, self.frame, frame)
        frame, reward, cont = frame.to(self.device), reward.to(self.device), cont.to(self.device)
        was_done = self.done
        frame = torch.where(was_done[:, None, None, None], self.frame, frame)  # finished envs stay frozen
        reward = torch.where(was_done, torch.zeros_like(reward), reward)
        self.done = was_done | (cont < 0.5)
        self.state, self.frame, self.t = state, frame, self.t + 1
        truncated = torch.full_like(self.done, self.t >= self.max_steps) & ~self.done
        return frame, reward, self.done.clone(), truncated


def _obs(frames: Tensor) -> np.ndarray:
    """(B, 3, R, R) uint8 tensor -> (B, R, R, 3) uint8 numpy."""
    return np.ascontiguousarray(frames.permute(0, 2, 3, 1).cpu().numpy())


def _to_action(action: Any, space: ActionSpace, gspace: gym.Space, batch: int) -> Tensor:
    a = np.asarray(action)
    ok = a.shape == (batch, *space.shape) and all(gspace.contains(np.asarray(x, gspace.dtype)) and
                                                   (space.kind == "continuous" or np.issubdtype(np.asarray(x).dtype, np.integer))
                                                   for x in a)
    if not ok:
        raise PlayworldError(
            f"action {a.tolist()} is not in the world model's {space.describe()} action space",
            "pass actions from env.action_space (an integer index, or a float vector within the bounds)",
        )
    return torch.as_tensor(a.astype(space.dtype))


class WorldModelEnv(gym.Env):
    """One imagined episode at a time, as a standard `gymnasium.Env` (obs: (R, R, 3) uint8 frames)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self, model: WorldModel, dataset: Dataset | str, split: str = "train", max_steps: int = 100,
        reward_fn: RewardFn | None = None, cache_dir: str | Path | None = None, render_mode: str | None = None,
    ):
        self.core = ImaginedEnvs(model, dataset, 1, split, max_steps, reward_fn, cache_dir)
        r = model.spec.resolution
        self.observation_space = gym.spaces.Box(0, 255, (r, r, 3), np.uint8)
        self.action_space = gym_space(model.spec.action_space)
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._last = _obs(self.core.reset(self.np_random))[0]
        return self._last, {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = _to_action(np.asarray(action)[None], self.core.spec.action_space, self.action_space, 1)
        frame, reward, terminated, truncated = self.core.step(a)
        self._last = _obs(frame)[0]
        return self._last, float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        return self._last.copy() if self.render_mode == "rgb_array" else None


class VectorWorldModelEnv(VectorEnv):
    """`num_envs` imagined episodes stepped as one batch through the model (see the module doc)."""

    metadata = {"autoreset_mode": AutoresetMode.DISABLED}

    def __init__(
        self, model: WorldModel, dataset: Dataset | str, num_envs: int, split: str = "train",
        max_steps: int = 100, reward_fn: RewardFn | None = None, cache_dir: str | Path | None = None,
    ):
        self.core = ImaginedEnvs(model, dataset, num_envs, split, max_steps, reward_fn, cache_dir)
        r = model.spec.resolution
        self.num_envs = int(num_envs)
        self.single_observation_space = gym.spaces.Box(0, 255, (r, r, 3), np.uint8)
        self.single_action_space = gym_space(model.spec.action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._np_random = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None or self._np_random is None:
            self._np_random, _ = gym.utils.seeding.np_random(seed)
        if options and "reset_mask" in options and not np.all(options["reset_mask"]):
            raise PlayworldError("imagined envs reset together", "call reset() without a partial reset_mask")
        return _obs(self.core.reset(self._np_random)), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        a = _to_action(actions, self.core.spec.action_space, self.single_action_space, self.num_envs)
        frame, reward, terminated, truncated = self.core.step(a)
        return _obs(frame), reward.cpu().numpy(), terminated.cpu().numpy(), truncated.cpu().numpy(), {}


def run_policy(env: WorldModelEnv, policy, episodes: int = 1, seed: int = 0) -> list[float]:
    """Returns of a playworld policy (`reset()`, `policy(frame, state) -> action`) over imagined episodes.

    The policy gets an empty ground-truth state: inside a model there is none.
    """
    check_action_space(getattr(policy, "action_space", None), env.core.spec, "the policy")
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        if callable(getattr(policy, "reset", None)):
            policy.reset()
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs, {}))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns
