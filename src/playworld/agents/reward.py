"""A small reward model, for world models that have no reward or continue head of their own.

    rm = reward_model_for(dataset, cache_dir=run_dir / "agents" / "reward_model")
    reward, cont = rm(prev_frame, frame)   # (B, 3, R, R) uint8 each -> (B,) reward, (B,) P(not terminal)

It learns, from a dataset's recorded episodes, the reward received on arriving at frames[t] and
whether frames[t] is terminal, from the pair (frames[t-1], frames[t]) and their difference: the
previous frame is there because many rewards are about a transition (a coin is gone once it has been
picked up), the difference so that "nothing changed" is as plain to it as it is to a person (fed only
the two frames, some trained models predicted a fifth of a coin's reward for standing still beside
one, which is what a dreaming agent then learns to do).
Rewards are regressed in symlog space; frames with a non-zero reward are over-sampled to half of
each batch, since rewards are usually sparse, and importance-weighted back to their share of the
data, so the predicted reward stays the expected one (an agent exploits any over-prediction). The trained weights are cached (safetensors, plus
a meta.json naming the dataset fingerprint and settings) and reused while they still match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from playworld.data.progress import progress_iter
from playworld.errors import PlayworldError
from playworld.models.interface import ContinueHead, RewardHead, frames_to_unit, model_device
from playworld.models.nn import symexp, symlog

# 2000 steps of width 32 (about 35 CPU-seconds at 32 px): on explorer's coin task the move this model
# rewards most takes the coin next to the agent 78-88% of the time on real frames (chance 25%; the
# datasets of bench/repro/dream_explorer.py seeds 0-4, measured by bench/diagnose/reward_pickups.py's adjacent_coin_real_frames)
REWARD_STEPS, REWARD_CHANNELS = 2000, 32


class RewardModel(nn.Module):
    """(prev_frame, frame) (B, 3, R, R) uint8 -> reward (B,), continue probability (B,).

    The network sees the two frames and their difference (9 channels)."""

    def __init__(self, resolution: int, channels: int = REWARD_CHANNELS, has_terminal: bool = True):
        super().__init__()
        layers, c_in, r = [], 9, resolution
        for c in (channels, channels * 2, channels * 4):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(1, c), nn.SiLU()]
            c_in, r = c, (r + 1) // 2
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c_in * 16, 128), nn.SiLU())
        self.reward = nn.Linear(128, 1)  # symlog(reward)
        self.terminal = nn.Linear(128, 1)  # logit of terminated
        self.resolution, self.channels, self.has_terminal = int(resolution), int(channels), bool(has_terminal)

    def logits(self, prev: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
        prev, frame = frames_to_unit(prev), frames_to_unit(frame)
        x = torch.cat([prev, frame, frame - prev], 1)  # (B, 9, R, R)
        h = self.net(x)
        return self.reward(h).squeeze(-1), self.terminal(h).squeeze(-1)

    @torch.no_grad()
    def forward(self, prev: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
        device = self.reward.weight.device
        reward, terminal = self.logits(prev.to(device), frame.to(device))
        cont = 1 - torch.sigmoid(terminal) if self.has_terminal else torch.ones_like(reward)
        return symexp(reward), cont


def _pairs(dataset, split: str) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Every (episode, t >= 1) of a split with its reward and terminated flag."""
    index, rewards, terminal = [], [], []
    for ep in dataset.episode_ids(split):
        e = dataset.load_episode(ep)
        index += [(ep, t) for t in range(1, len(e))]
        rewards.append(np.asarray(e.rewards[1:], np.float32))
        terminal.append(np.asarray(e.terminated[1:], bool))
    if not index:
        raise PlayworldError(
            f"dataset {dataset.path} has no {split} frames with a predecessor to learn rewards from",
            "collect more (or longer) episodes",
        )
    return index, np.concatenate(rewards), np.concatenate(terminal)


def check_has_rewards(dataset) -> None:
    """PlayworldError when no episode of `dataset` ever received a non-zero reward."""
    for ep in dataset.episode_ids():
        if np.any(dataset.load_episode(ep).rewards != 0):
            return
    raise PlayworldError(
        f"dataset {dataset.path} has no rewards at all (every recorded reward is 0), and the model has no reward head",
        "collect data from a world that gives rewards, or use a model family with a reward head (e.g. rssm)",
    )


def train_reward_model(
    dataset, steps: int = REWARD_STEPS, batch_size: int = 32, lr: float = 1e-3, seed: int = 0, split: str = "train",
    channels: int = REWARD_CHANNELS, device: str | torch.device = "cpu", progress: bool = False,
) -> RewardModel:

    check_has_rewards(dataset)
    index, rewards, terminal = _pairs(dataset, split if dataset.episode_ids(split) else None)
    torch.manual_seed(seed)
    model = RewardModel(dataset.resolution, channels, has_terminal=bool(terminal.any())).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    # cosine decay to 0: the last steps settle the weights instead of leaving them wherever the last
    # few noisy (half-rewarded, importance-weighted) batches pushed them
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    rng = np.random.default_rng(seed)
    rewarded = np.flatnonzero(rewards != 0)
    # Importance weights undo the over-sampling (half of each batch from rewarded frames, the other half
    # uniform): each frame counts as often as it occurs in the data, so predictions stay calibrated.
    # Unweighted, the model learns rewards as if half the frames had one: next to an explorer coin it
    # predicted about 0.25 for every move (and for staying), and a dreaming agent learnt to stand beside
    # coins forever instead of taking them.
    share = len(rewarded) / len(rewards)
    w_rewarded = share / (0.5 + 0.5 * share) if len(rewarded) else 1.0
    w_other = 2.0 if len(rewarded) else 1.0
    episodes: dict[int, np.ndarray] = {}

    def frames_of(ep: int) -> np.ndarray:
        if ep not in episodes:
            episodes[ep] = dataset.load_episode(ep).frames  # (T, R, R, 3) memory-mapped
        return episodes[ep]

    for _ in progress_iter(range(steps), "training the reward model", total=steps, enabled=progress):
        pick = rng.integers(0, len(index), batch_size)
        if len(rewarded):  # half the batch from rewarded frames
            pick[: batch_size // 2] = rng.choice(rewarded, batch_size // 2)
        prev = np.stack([frames_of(index[i][0])[index[i][1] - 1] for i in pick])
        cur = np.stack([frames_of(index[i][0])[index[i][1]] for i in pick])
        to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).to(device)  # noqa: E731
        r_pred, t_logit = model.logits(to_t(prev), to_t(cur))
        w = torch.from_numpy(np.where(rewards[pick] != 0, w_rewarded, w_other).astype(np.float32)).to(device)
        loss = (w * (r_pred - symlog(torch.from_numpy(rewards[pick]).to(device))) ** 2).mean()
        if model.has_terminal:
            target = torch.from_numpy(terminal[pick]).float().to(device)
            loss = loss + (w * F.binary_cross_entropy_with_logits(t_logit, target, reduction="none")).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def reward_model_for(
    dataset, cache_dir: str | Path | None = None, steps: int = REWARD_STEPS, seed: int = 0,
    device: str | torch.device = "cpu", progress: bool = False, channels: int = REWARD_CHANNELS,
) -> RewardModel:
    """The reward model of `dataset`: loaded from `cache_dir` when it was trained there on the same
    data with the same settings, else trained (and saved there when `cache_dir` is given)."""
    meta = {"dataset": dataset.fingerprint, "resolution": dataset.resolution, "steps": int(steps), "seed": int(seed),
            "channels": int(channels), "weighting": "importance",
            "inputs": "prev,frame,diff", "lr": "cosine"}  # a change of training makes old caches stale
    if cache_dir is not None:
        cache = Path(cache_dir)
        try:
            saved = json.loads((cache / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            saved = None
        if saved is not None and all(saved.get(k) == v for k, v in meta.items()):
            model = RewardModel(dataset.resolution, int(saved["channels"]), bool(saved["has_terminal"]))
            model.load_state_dict(load_file(cache / "model.safetensors"))
            return model.to(device).eval()
    model = train_reward_model(dataset, steps=steps, seed=seed, device=device, progress=progress, channels=channels)
    if cache_dir is not None:
        cache.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, cache / "model.safetensors")
        meta.update(has_terminal=model.has_terminal)
        (cache / "meta.json").write_text(json.dumps(meta, indent=1))
    return model


# A reward function: (model state after a step, previous frame, new frame) -> (reward (B,), continue (B,)),
# frames (B, 3, R, R) uint8; continue is the probability that the new frame is not terminal.
RewardFn = Callable[[Any, Tensor, Tensor], tuple[Tensor, Tensor]]


def has_reward_head(model) -> bool:
    return isinstance(model, RewardHead)


def reads_state_only(reward_fn) -> bool:
    """Whether `reward_fn` reads rewards from the model's state alone (its heads), so callers may pass
    no frames and skip decoding them (`make_reward_fn` marks such functions `needs_frames = False`)."""
    return not getattr(reward_fn, "needs_frames", True)


def make_reward_fn(
    model, dataset=None, cache_dir: str | Path | None = None, steps: int = REWARD_STEPS, seed: int = 0
) -> RewardFn:
    """How rewards and terminations are read for `model`: its own heads (`RewardHead`, and `ContinueHead`
    when it has one) where it has them, else a reward model learned from `dataset`."""
    if has_reward_head(model):
        has_cont = isinstance(model, ContinueHead)

        def heads(state, prev: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
            reward = model.predict_reward(state).float()
            cont = model.predict_continue(state).float() if has_cont else torch.ones_like(reward)
            return reward, cont

        heads.needs_frames = False  # read from the state alone: callers may skip decoding frames
        return heads
    if dataset is None:
        raise PlayworldError(
            f"the model ({type(model).__name__}) has no reward head and no dataset was given to learn rewards from",
            "pass the dataset the model was trained on, or use a model family with a reward head (e.g. rssm)",
        )
    device = model_device(model)
    rm = reward_model_for(dataset, cache_dir=cache_dir, steps=steps, seed=seed, device=device)

    def learned(state, prev: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
        return rm(prev, frame)

    return learned
