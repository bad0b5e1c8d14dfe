"""Imagination actor-critic (Dreamer) for any `WorldModel`: the networks, lambda-returns and the update.

    learner = ActorCritic(model.spec, ActorCriticConfig())
    rollout = imagine(model, reward_fn, learner.actor, frames, actions, horizon=15, generator=g)
    metrics = learner.update(rollout)

What the actor and the critic see (`ActorCriticConfig.inputs`):
- 'pixels': the last `frame_stack` frames (B, 3 * S, R, R) uint8 through a small conv encoder; works
  for every family (a world model need not expose a latent state), but every imagined frame must
  be decoded and encoded again;
- 'latent': the model's own latent state (B, latent_dim) float (Dreamer's choice), for models that
  offer `features(state)`, `advance(state, action)` and `observe(state, frame, action)` (rssm) and
  score rewards from their heads: imagination never decodes a frame, so an update costs a small
  fraction of a pixel one, and in the real world the agent filters each frame into that state
  (policy.LatentActorPolicy).
`imagine` starts from real contexts (K frames + actions from a dataset), filters them with
`model.reset`, and lets the actor act for H steps with `model.step` (or `model.advance`); rewards and
continue probabilities come from `reward_fn` (the family's heads, or the learned reward model).

The update follows DreamerV3 where it can without a differentiable model:
- lambda-returns R_t = r_t + gamma * c_t * ((1 - lam) * v_{t+1} + lam * R_{t+1}), R_H = v_H, with v
  from a slow (EMA) copy of the critic;
- returns normalised by S = EMA of the 5th-95th percentile range, advantages (R - v) / max(1, S);
- actor: REINFORCE (log-prob x advantage) plus an entropy bonus; the model's frames carry no
  gradient, so no dynamics backpropagation is needed or assumed;
- critic: squared error in symlog space toward the returns; every term is weighted by the
  probability of still being alive (cumulative product of predicted continues).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor, nn

from playworld.agents.reward import reads_state_only
from playworld.errors import PlayworldError
from playworld.models.interface import LatentState, WorldModel, WorldSpec, frames_to_unit
from playworld.models.nn import symexp, symlog
from playworld.spaces import ActionSpace

INPUTS = ("auto", "pixels", "latent")


@dataclass
class ActorCriticConfig:
    inputs: str = "auto"
    """what the actor and critic see: 'pixels' (stacked frames; any family), 'latent' (the model's latent
    state; needs features/observe/advance and reward heads, e.g. rssm) or 'auto' (latent where possible)"""
    latent_dim: int = 0
    """size of the latent state the networks read; set when `inputs` resolves to 'latent', 0 for pixels"""
    frame_stack: int = 2
    """S, frames the actor and critic see at once (2 gives them velocities)"""
    channels: int = 16
    """width of the first conv stage of the encoder (doubles each stage, at most 4x)"""
    hidden: int = 128
    """width of the MLP heads"""
    horizon: int = 15
    """H, imagined steps per start state"""
    batch: int = 32
    """start states (real contexts) imagined per update"""
    gamma: float = 0.985
    """discount per step"""
    lam: float = 0.95
    """lambda of the lambda-returns"""
    entropy: float = 3e-3
    """entropy bonus scale (on normalised advantages)"""
    actor_lr: float = 3e-4
    critic_lr: float = 1e-3
    slow_critic: float = 0.02
    """fraction of the critic mixed into the slow target critic after each update"""
    return_decay: float = 0.99
    """EMA decay of the return percentiles"""
    grad_clip: float = 100.0
    min_std: float = 0.1
    """continuous actions: smallest std, as a fraction of half the action range"""

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise PlayworldError(f"unknown actor inputs {self.inputs!r}", f"use one of {', '.join(INPUTS)}")

    @property
    def latent(self) -> bool:
        """True when the networks read a latent state rather than frames."""
        return self.latent_dim > 0

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ActorCriticConfig":
        names = ActorCriticConfig.__dataclass_fields__
        return ActorCriticConfig(**{k: v for k, v in d.items() if k in names})


# -- networks ---------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """(B, 3 * S, R, R) uint8 -> (B, hidden): stride-2 convs down to about 4 x 4, then an MLP."""

    def __init__(self, resolution: int, in_channels: int, channels: int, hidden: int):
        super().__init__()
        layers, c_in, r, c = [], in_channels, resolution, channels
        while r > 6:
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(1, c), nn.SiLU()]
            c_in, r, c = c, (r + 1) // 2, min(c * 2, channels * 4)
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(c_in * 16, hidden),
                                 nn.LayerNorm(hidden), nn.SiLU())

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(frames_to_unit(obs))


class LatentEncoder(nn.Module):
    """(B, latent_dim) float latent state -> (B, hidden)."""

    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.LayerNorm(hidden), nn.SiLU())

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs.float())


def make_encoder(spec: WorldSpec, config: ActorCriticConfig) -> nn.Module:
    if config.latent:
        return LatentEncoder(config.latent_dim, config.hidden)
    return Encoder(spec.resolution, 3 * config.frame_stack, config.channels, config.hidden)


def latent_capable(model: WorldModel, reward_fn) -> bool:
    """Whether an actor can act on `model`'s latent state: the model exposes it and can step and filter
    it without frames, and the reward is read from the state (not from decoded frames)."""
    return isinstance(model, LatentState) and reads_state_only(reward_fn)


def resolve_inputs(config: ActorCriticConfig, model: WorldModel, reward_fn) -> ActorCriticConfig:
    """`config` with `inputs` decided ('auto' -> latent where the model allows it) and `latent_dim` set."""

    capable = latent_capable(model, reward_fn)
    if config.inputs == "latent" and not capable:
        raise PlayworldError(
            f"an actor on the latent state needs a world model that exposes it (features, advance, observe) and "
            f"predicts rewards from it; {type(model).__name__} does not",
            "use --inputs pixels (works with every family), or a model of the rssm family",
        )
    if config.inputs == "pixels" or not capable:
        return replace(config, inputs="pixels", latent_dim=0)
    return replace(config, inputs="latent", latent_dim=int(model.feature_dim))


def _bounds(space: ActionSpace) -> tuple[Tensor, Tensor]:
    """Centre and half-range of a continuous space (0 and 1 on unbounded dimensions)."""
    low, high = torch.tensor(space.low), torch.tensor(space.high)
    finite = torch.isfinite(low) & torch.isfinite(high)
    return torch.where(finite, (low + high) / 2, 0.0), torch.where(finite, (high - low) / 2, 1.0)


class Actor(nn.Module):
    """Stacked frames (or a latent state) -> action distribution parameters: logits (B, n), or mean and std (B, 2, dim)."""

    def __init__(self, spec: WorldSpec, config: ActorCriticConfig):
        super().__init__()
        self.space, self.config = spec.action_space, config
        out = 2 * self.space.dim if self.space.kind == "continuous" else self.space.n
        self.encoder = make_encoder(spec, config)
        self.head = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.SiLU(), nn.Linear(config.hidden, out))
        nn.init.zeros_(self.head[-1].weight)  # start uniform / centred
        nn.init.zeros_(self.head[-1].bias)
        if self.space.kind == "continuous":
            centre, spread = _bounds(self.space)
            self.register_buffer("centre", centre, persistent=False)
            self.register_buffer("spread", spread, persistent=False)

    @property
    def continuous(self) -> bool:
        return self.space.kind == "continuous"

    def forward(self, obs: Tensor) -> Tensor:
        out = self.head(self.encoder(obs))
        if not self.continuous:
            return out  # (B, n) logits
        raw_mean, raw_std = out.chunk(2, -1)
        mean = self.centre + self.spread * torch.tanh(raw_mean)
        m = self.config.min_std
        std = self.spread * (m + (1 - m) * torch.sigmoid(raw_std + 1.0))  # starts near 0.8 x half-range
        return torch.stack([mean, std], 1)  # (B, 2, dim)

    def log_prob(self, params: Tensor, action: Tensor) -> Tensor:
        if not self.continuous:
            return torch.log_softmax(params, -1).gather(-1, action.long()[:, None]).squeeze(-1)
        return torch.distributions.Normal(params[:, 0], params[:, 1]).log_prob(action).sum(-1)

    def entropy(self, params: Tensor) -> Tensor:
        if not self.continuous:
            logp = torch.log_softmax(params, -1)
            return -(logp.exp() * logp).sum(-1)
        return torch.distributions.Normal(params[:, 0], params[:, 1]).entropy().sum(-1)

    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator | None = None, greedy: bool = False) -> Tensor:
        """obs (B, 3 * S, R, R) uint8 (or (B, latent_dim) float) -> actions (B,) int64 or (B, dim) float32 (sampled unless greedy)."""
        params = self(obs)
        if not self.continuous:
            if greedy:
                return params.argmax(-1)
            return torch.multinomial(torch.softmax(params, -1), 1, generator=generator).squeeze(-1)
        if greedy:
            return params[:, 0]
        noise = torch.randn(params[:, 0].shape, generator=generator, device=params.device)
        return params[:, 0] + params[:, 1] * noise  # unclipped: the env step clips (see `to_env`)

    def to_env(self, action: Tensor) -> Tensor:
        """An action as the world takes it: continuous ones clipped to the bounds."""
        if not self.continuous:
            return action
        low, high = torch.tensor(self.space.low), torch.tensor(self.space.high)
        return torch.maximum(torch.minimum(action, high.to(action)), low.to(action))


class Critic(nn.Module):
    """Stacked frames (or a latent state) -> value (B,), predicted in symlog space."""

    def __init__(self, spec: WorldSpec, config: ActorCriticConfig):
        super().__init__()
        self.encoder = make_encoder(spec, config)
        self.head = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.SiLU(), nn.Linear(config.hidden, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.encoder(obs)).squeeze(-1)  # symlog(value)

    def value(self, obs: Tensor) -> Tensor:
        return symexp(self(obs))


# -- returns ----------------------------------------------------------------------------------------
def lambda_returns(rewards: Tensor, conts: Tensor, values: Tensor, gamma: float, lam: float) -> Tensor:
    """rewards, conts (H, B): reward and continue probability on arriving at step t + 1;
    values (H + 1, B) at steps 0..H. Returns (H, B): R_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H."""
    out, last = [], values[-1]
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + gamma * conts[t] * ((1 - lam) * values[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


class ReturnNorm(nn.Module):
    """DreamerV3's return scale: S = EMA of (95th - 5th percentile of the returns); divide by max(1, S)."""

    def __init__(self, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, returns: Tensor) -> Tensor:
        """Fold a batch of returns into the percentile EMAs; returns the scale max(1, high - low)."""
        flat = returns.detach().flatten().float()
        lo, hi = torch.quantile(flat, 0.05), torch.quantile(flat, 0.95)
        d = 0.0 if self.count == 0 else self.decay  # the first batch sets the estimate
        self.low.mul_(d).add_((1 - d) * lo)
        self.high.mul_(d).add_((1 - d) * hi)
        self.count += 1
        return self.scale

    @property
    def scale(self) -> Tensor:
        return torch.clamp(self.high - self.low, min=1.0)


# -- imagination ------------------------------------------------------------------------------------
@dataclass
class Rollout:
    obs: Tensor  # (H + 1, B, 3 * S, R, R) uint8 stacked frames, or (H + 1, B, latent_dim) latent states, at steps 0..H
    actions: Tensor  # (H, B) int64 or (H, B, dim) float32 (as sampled, before clipping)
    rewards: Tensor  # (H, B) reward on arriving at step t + 1
    conts: Tensor  # (H, B) probability that step t + 1 is not terminal


def stack_context(frames: Tensor, stack: int) -> list[Tensor]:
    """The newest `stack` frames of a context (B, K, 3, R, R) as a list, padded with the oldest frame."""
    k = frames.shape[1]
    return [frames[:, max(0, k - stack + i)] for i in range(stack)] if k >= stack else \
        [frames[:, 0]] * (stack - k) + [frames[:, i] for i in range(k)]


@torch.no_grad()
def imagine(
    model: WorldModel, reward_fn, actor: Actor, frames: Tensor, actions: Tensor, horizon: int,
    generator: torch.Generator, seed: int = 0,
) -> Rollout:
    """Imagine `horizon` steps of `actor` from real contexts frames (B, K, 3, R, R) u8, actions (B, K, ...).

    A latent actor reads `model.features` and the model only `advance`s (no frame is decoded; the
    rewards come from the heads); a pixel actor reads its last S frames, decoded by `model.step`."""
    device = next(actor.parameters()).device
    state = model.reset(frames, actions, seed=seed)
    latent = actor.config.latent
    history = None if latent else [f.to(device) for f in stack_context(frames, actor.config.frame_stack)]
    obs, acts, rewards, conts = [model.features(state).to(device) if latent else torch.cat(history, 1)], [], [], []
    for _ in range(horizon):
        a = actor.act(obs[-1], generator)
        if latent:
            state = model.advance(state, actor.to_env(a))
            r, c = reward_fn(state, None, None)
            obs.append(model.features(state).to(device))
        else:
            state, frame = model.step(state, actor.to_env(a))
            r, c = reward_fn(state, history[-1], frame)
            history = history[1:] + [frame.to(device)]
            obs.append(torch.cat(history, 1))
        acts.append(a)
        rewards.append(r.float().to(device))
        conts.append(c.float().to(device))
    return Rollout(torch.stack(obs), torch.stack(acts), torch.stack(rewards), torch.stack(conts))


# -- the learner ------------------------------------------------------------------------------------
class ActorCritic(nn.Module):
    """Actor, critic, slow critic, return normaliser and their optimisers."""

    def __init__(self, spec: WorldSpec, config: ActorCriticConfig | None = None):
        super().__init__()
        self.spec, self.config = spec, config or ActorCriticConfig()
        self.actor, self.critic = Actor(spec, self.config), Critic(spec, self.config)
        self.slow = copy.deepcopy(self.critic).requires_grad_(False)
        self.norm = ReturnNorm(self.config.return_decay)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.config.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.config.critic_lr, eps=1e-5)

    def update(self, rollout: Rollout) -> dict[str, float]:
        """One actor and one critic step on an imagined rollout; returns scalar diagnostics."""
        c = self.config
        H, B = rollout.rewards.shape
        obs = rollout.obs.flatten(0, 1)  # ((H + 1) B, 3S, R, R)
        with torch.no_grad():
            values = self.slow.value(obs).view(H + 1, B)
            returns = lambda_returns(rollout.rewards, rollout.conts, values, c.gamma, c.lam)  # (H, B)
            alive = torch.cumprod(torch.cat([torch.ones_like(rollout.conts[:1]), rollout.conts[:-1]]), 0)  # (H, B)
            scale = self.norm.update(returns)
            adv = (returns - values[:-1]) / scale

        params = self.actor(rollout.obs[:-1].flatten(0, 1))
        acts = rollout.actions.flatten(0, 1)
        logp, ent = self.actor.log_prob(params, acts).view(H, B), self.actor.entropy(params).view(H, B)
        actor_loss = -(alive * (logp * adv + c.entropy * ent)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), c.grad_clip)
        self.actor_opt.step()

        pred = self.critic(rollout.obs[:-1].flatten(0, 1)).view(H, B)
        critic_loss = (alive * 0.5 * (pred - symlog(returns)) ** 2).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), c.grad_clip)
        self.critic_opt.step()
        with torch.no_grad():
            for slow, fast in zip(self.slow.parameters(), self.critic.parameters()):
                slow.lerp_(fast, c.slow_critic)
        return {
            "actor_loss": actor_loss.item(), "critic_loss": critic_loss.item(), "entropy": ent.mean().item(),
            "return": float(returns[0].mean()), "reward": float(rollout.rewards.mean()),
            "scale": float(scale), "value": float(values[0].mean()),
            "imagined_return": float((alive * rollout.rewards * c.gamma ** torch.arange(H, device=alive.device)[:, None]).sum(0).mean()),
        }

