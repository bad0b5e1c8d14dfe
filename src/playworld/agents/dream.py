"""Train a policy purely inside a world model (Dreamer's behaviour learning), then score it for real.

    result = dream(model, dataset, ActorCriticConfig(), steps=500)      # ActorCritic trained in imagination
    report = evaluate_real(model.spec, result.learner.actor, episodes=10, model=model)

Each step samples `batch` real contexts (K frames + actions) from the dataset's train split,
imagines `horizon` steps with the actor (actor_critic.imagine) and makes one actor-critic update.
Nothing from the real world is used but those start contexts and, for families without a reward
head, the reward model learned from the dataset's recorded rewards.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from playworld.agents.actor_critic import Actor, ActorCritic, ActorCriticConfig, imagine, resolve_inputs
from playworld.agents.agent import actor_policy, make_real_world, world_returns
from playworld.agents.reward import REWARD_STEPS, has_reward_head, make_reward_fn
from playworld.compute import budget_clock as make_budget_clock
from playworld.data.progress import progress_iter
from playworld.data.store import Dataset
from playworld.data.windows import WindowSampler
from playworld.errors import PlayworldError
from playworld.models.interface import WorldModel, WorldSpec
from playworld.runs.load import check_dataset_matches
from playworld.worlds.policies import RandomPolicy


def dataset_has_rewards(dataset: Dataset) -> bool:
    return any(np.any(dataset.load_episode(ep).rewards != 0) for ep in dataset.episode_ids())


def check_reward_signal(model: WorldModel, dataset: Dataset) -> None:
    """PlayworldError when there is nothing to learn from: the dataset never saw a reward, so neither
    a reward head trained on it nor a reward model learned from it can tell good actions from bad."""
    if dataset_has_rewards(dataset):
        return
    if has_reward_head(model):
        why = "the model's reward head was trained on it, so it predicts no reward anywhere"
    else:
        why = "the model has no reward head and no reward model can be learned from it"
    raise PlayworldError(
        f"dataset {dataset.path} has no rewards at all (every recorded reward is 0); {why}",
        "collect data from a world that gives rewards (e.g. explorer's coins, gym:CartPole-v1) and train the model on it",
    )


@dataclass
class DreamResult:
    learner: ActorCritic
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    """one dict of diagnostics per `log_every` steps (see ActorCritic.update)"""


def dream(
    model: WorldModel, dataset: Dataset | str, config: ActorCriticConfig | None = None, steps: int | None = None,
    minutes: float | None = None, seed: int = 0, progress: bool = True, cache_dir: str | Path | None = None,
    log_every: int = 10, on_log: Callable[[dict], None] | None = None, device: str | torch.device = "cpu",
    budget_clock: str = "wall", learner: ActorCritic | None = None, reward_steps: int = REWARD_STEPS,
) -> DreamResult:
    """Train an actor-critic inside `model` for `steps` updates or `minutes`, whichever comes first.
    `budget_clock` 'cpu' counts `minutes` in this process's CPU time (equal compute on a busy machine).
    `learner` continues an earlier result's ActorCritic (its own config is kept; Dreamer's loop
    re-dreams in a model retrained on the agent's own episodes). `reward_steps`: training steps of the
    reward model a family without reward heads reads rewards from (cached in `cache_dir`)."""

    dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    check_dataset_matches(model.spec, dataset, "the world model")
    if steps is None and minutes is None:
        raise PlayworldError("dream needs a budget", "pass --steps N or --minutes M")
    if (steps is not None and steps < 1) or (minutes is not None and minutes <= 0):
        raise PlayworldError(f"bad budget steps={steps} minutes={minutes}", "pass --steps 1 or more, or --minutes above 0")
    check_reward_signal(model, dataset)
    config = config or ActorCriticConfig()
    if config.horizon < 1 or config.batch < 2 or config.frame_stack < 1:
        raise PlayworldError(f"bad dream settings horizon={config.horizon} batch={config.batch} frame_stack={config.frame_stack}",
                             "use horizon >= 1, batch >= 2, frame_stack >= 1")
    reward_fn = make_reward_fn(model, dataset, cache_dir=cache_dir, seed=seed, steps=reward_steps)
    config = resolve_inputs(config, model, reward_fn)
    if learner is not None and (learner.config.inputs, learner.config.latent_dim) != (config.inputs, config.latent_dim):
        raise PlayworldError(
            f"the learner to continue reads {learner.config.inputs} inputs ({learner.config.latent_dim or 'frames'}), "
            f"but this model gives {config.inputs} ({config.latent_dim or 'frames'})",
            "continue it in a model of the same family and size, or start a new learner",
        )
    split = "train" if dataset.episode_ids("train") else None
    sampler = WindowSampler(dataset, model.spec.context, 1, split)
    torch.manual_seed(seed)
    learner = (learner if learner is not None else ActorCritic(model.spec, config)).to(device).train()
    config = learner.config
    rng, generator = np.random.default_rng(seed), torch.Generator(device=device).manual_seed(seed)
    # a time budget alone: an open-ended count, so the bar counts updates instead of showing 1e9 of them
    updates = range(steps) if steps is not None else itertools.count()
    clock = make_budget_clock(budget_clock)
    deadline = clock() + 60 * minutes if minutes is not None else float("inf")
    start, history, done = time.monotonic(), [], 0
    for step in progress_iter(updates, "dreaming", total=steps, enabled=progress):
        if clock() >= deadline:
            break
        batch = sampler.sample(config.batch, rng)
        rollout = imagine(model, reward_fn, learner.actor, batch.context_frames, batch.context_actions,
                          config.horizon, generator, seed=int(rng.integers(2**31)))
        metrics = learner.update(rollout)
        done = step + 1
        if done % log_every == 0 or done == 1:
            metrics = {"step": done, "seconds": round(time.monotonic() - start, 2), **metrics}
            history.append(metrics)
            if on_log is not None:
                on_log(metrics)
    return DreamResult(learner.eval(), done, time.monotonic() - start, history)


def evaluate_real(
    spec: WorldSpec, actor: Actor, world_options: dict | None = None, episodes: int = 10, seed: int = 0,
    max_steps: int | None = None, progress: bool = True, model: WorldModel | None = None,
) -> dict:
    """Mean real-world return of the actor and of the random policy over the same episode seeds.
    An actor on the latent state needs `model`, the world model whose state it reads."""

    world = make_real_world(spec, world_options)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one frame at a time: more threads only add synchronisation
    try:
        out = {"world": spec.world, "episodes": int(episodes), "seed": int(seed)}
        policies = {"agent": actor_policy(actor, spec, seed=seed, model=model), "random": RandomPolicy(spec.action_space, seed=seed)}
        for name, policy in policies.items():
            start = time.monotonic()
            returns = [world_returns(world, policy, 1, seed=seed + i, max_steps=max_steps)[0]
                       for i in progress_iter(range(episodes), f"real-world episodes ({name})", enabled=progress)]
            out[name] = {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns,
                         "seconds": round(time.monotonic() - start, 2)}
        rand = out["random"]["mean"]
        out["ratio_to_random"] = out["agent"]["mean"] / rand if rand > 0 else None
        return out
    finally:
        torch.set_num_threads(threads)
        world.close()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
