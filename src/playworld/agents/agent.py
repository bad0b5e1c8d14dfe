"""Trained agents on disk, as policies, and scored in the real world.

    agents/NAME/policy.safetensors   the actor's weights
    agents/NAME/config.json          {"format": "playworld-agent", "spec": WorldSpec, "actor": ActorCriticConfig, ...}
    agents/NAME/eval.json            written by `playworld dream` (real-world returns vs random)

An agent whose actor reads the world model's latent state (actor ActorCriticConfig.latent) also names that
model in its config ("run" and "checkpoint"): loading it loads the model too, and the policy filters
each real frame into the latent state before acting (LatentActorPolicy).

    policy = load_policy("agents/NAME")        # a playworld Policy: reset(), policy(frame, state) -> action
    returns = world_returns(world, policy, episodes=10, seed=0)

`playworld.play.controls.register_play_agent(path)` makes a saved agent selectable in `playworld play`'s agent mode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from playworld.agents.actor_critic import Actor, ActorCriticConfig, stack_context
from playworld.agents.env import as_action_space
from playworld.errors import PlayworldError
from playworld.models.interface import LatentState, WorldSpec
from playworld.runs.load import load_world_model
from playworld.spaces import ActionSpace
from playworld.worlds.base import make_world
from playworld.worlds.policies import Policy

FORMAT = "playworld-agent"
WEIGHTS, CONFIG = "policy.safetensors", "config.json"


def save_agent(path: str | Path, actor: Actor, spec: WorldSpec, extra: dict[str, Any] | None = None) -> Path:
    """Write the actor's weights and a config that rebuilds it (plus any JSON-able `extra`)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in actor.state_dict().items()}, path / WEIGHTS,
              metadata={"format": FORMAT})
    config = {"format": FORMAT, "version": 1, "spec": spec.to_dict(), "actor": actor.config.to_dict(), **(extra or {})}
    (path / CONFIG).write_text(json.dumps(config, indent=1))
    return path


def _fix(path: Path) -> str:
    return f"point at a folder written by `playworld dream ... --out {path}` (it holds {WEIGHTS} and {CONFIG}), or train it again"


def read_agent_config(path: str | Path) -> dict:
    """The config.json of a saved agent; PlayworldError when the folder is missing or it is not readable."""
    path = Path(path)
    if not path.is_dir():
        raise PlayworldError(f"agent folder {path} does not exist", _fix(path))
    try:
        config = json.loads((path / CONFIG).read_text())
        spec = WorldSpec.from_dict(config["spec"])
        actor = ActorCriticConfig.from_dict(config["actor"])
    except FileNotFoundError:
        raise PlayworldError(f"agent folder {path} has no {CONFIG}", _fix(path)) from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise PlayworldError(f"agent config {path / CONFIG} is corrupt ({type(e).__name__}: {e})", _fix(path)) from None
    if config.get("format") != FORMAT:
        raise PlayworldError(f"{path / CONFIG} is not a playworld agent config", _fix(path))
    return {**config, "spec": spec, "actor": actor}


def load_latent_model(config: dict, path: Path, device: str | torch.device = "cpu"):
    """The world model a latent-state agent reads (its config's run and checkpoint)."""

    run = config.get("run")
    if not run or not Path(run).is_dir():
        raise PlayworldError(
            f"agent {path} acts on the latent state of world model {run or '(not recorded)'}, which is not there",
            "put that run back where it was trained, or dream the agent again (--inputs pixels needs no model)",
        )
    model = load_world_model(run, device=device, checkpoint=config.get("checkpoint"))
    if not isinstance(model, LatentState) or int(model.feature_dim) != config["actor"].latent_dim:
        raise PlayworldError(f"world model {run} does not give the {config['actor'].latent_dim}-wide latent state agent {path} reads",
                             "dream the agent again on this model")
    return model


def load_actor(path: str | Path, device: str | torch.device = "cpu") -> tuple[Actor, WorldSpec, dict]:
    """(actor in eval mode, the spec of the world model it was trained in, the whole config)."""
    path = Path(path)
    config = read_agent_config(path)
    actor = Actor(config["spec"], config["actor"])
    try:
        state = load_file(path / WEIGHTS)
    except FileNotFoundError:
        raise PlayworldError(f"agent folder {path} has no {WEIGHTS}", _fix(path)) from None
    except (SafetensorError, OSError, ValueError) as e:
        raise PlayworldError(f"agent weights {path / WEIGHTS} are corrupt or truncated ({e})", _fix(path)) from None
    try:
        actor.load_state_dict(state)
    except RuntimeError as e:
        raise PlayworldError(f"agent weights {path / WEIGHTS} do not fit its {CONFIG} ({str(e).splitlines()[0]})", _fix(path)) from None
    return actor.to(device).eval().requires_grad_(False), config["spec"], config


class ActorPolicy(Policy):
    """An actor as a playworld Policy: keeps the last S frames, samples (or takes the mode of) its action.

    Frames are the world's (R, R, 3) uint8 frames at the resolution the actor was trained on."""

    def __init__(self, actor: Actor, spec: WorldSpec, seed: int = 0, greedy: bool = False):
        super().__init__(spec.action_space, seed)
        self.actor, self.spec, self.greedy, self.seed = actor, spec, bool(greedy), int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.device = next(actor.parameters()).device
        self.history: list[torch.Tensor] = []

    def reset(self) -> None:
        self.history = []

    def _frame(self, frame: np.ndarray) -> torch.Tensor:
        """A world frame (R, R, 3) uint8 -> (1, 3, R, R), checked; PlayworldError on another shape or dtype."""
        r = self.spec.resolution
        f = torch.tensor(np.asarray(frame))  # a copy: frames may be read-only views
        if tuple(f.shape) != (r, r, 3) or f.dtype != torch.uint8:
            raise PlayworldError(
                f"the agent got a frame of shape {tuple(f.shape)} {f.dtype}",
                f"give it the world's ({r}, {r}, 3) uint8 frames (the resolution its world model was trained at)",
            )
        return f.permute(2, 0, 1)[None]

    def _act(self, obs: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """The actor's action on obs (1, ...) as a tensor (1[, dim]) on the CPU and as the world takes it."""
        action = self.actor.to_env(self.actor.act(obs.to(self.device), self.generator, self.greedy)).cpu()
        return action, action[0].numpy().astype(self.action_space.dtype).reshape(self.action_space.shape)

    def __call__(self, frame: np.ndarray, state: dict | None = None) -> np.ndarray:
        self.history = (self.history + [self._frame(frame)])[-self.actor.config.frame_stack:]
        frames = torch.stack(self.history, 1)  # (1, s <= S, 3, R, R)
        return self._act(torch.cat(stack_context(frames, self.actor.config.frame_stack), 1))[1]


class LatentActorPolicy(ActorPolicy):
    """An actor on a world model's latent state, as a playworld Policy: each real frame is filtered into
    the state (`model.reset` on the first frame, then `model.observe` with the action taken), and the
    actor acts on `model.features(state)`."""

    def __init__(self, actor: Actor, spec: WorldSpec, model, seed: int = 0, greedy: bool = False):
        super().__init__(actor, spec, seed=seed, greedy=greedy)
        self.model = model
        self.state, self.last_action = None, None

    def reset(self) -> None:
        self.state, self.last_action = None, None

    def __call__(self, frame: np.ndarray, state: dict | None = None) -> np.ndarray:
        f = self._frame(frame)  # (1, 3, R, R)
        if self.state is None:  # an episode's first frame: a one-frame context, led into by the no-op
            noop = torch.as_tensor(self.action_space.noop())[None, None]
            self.state = self.model.reset(f[:, None], noop, seed=self.seed)
        else:
            self.state = self.model.observe(self.state, f, self.last_action)
        self.last_action, action = self._act(self.model.features(self.state))
        return action


def actor_policy(actor: Actor, spec: WorldSpec, seed: int = 0, greedy: bool = False, model=None) -> ActorPolicy:
    """The Policy that runs `actor`: on frames, or (a latent-state actor) on `model`'s filtered state."""
    if not actor.config.latent:
        return ActorPolicy(actor, spec, seed=seed, greedy=greedy)
    if model is None:
        raise PlayworldError("this actor acts on a world model's latent state, and no model was given",
                             "pass the world model it was trained in (model=...)")
    return LatentActorPolicy(actor, spec, model, seed=seed, greedy=greedy)


def load_policy(path: str | Path, seed: int = 0, greedy: bool = False, device: str | torch.device = "cpu") -> ActorPolicy:
    """A saved agent (a `playworld dream` output folder) as a playworld Policy."""
    actor, spec, config = load_actor(path, device)
    model = load_latent_model(config, Path(path), device) if actor.config.latent else None
    return actor_policy(actor, spec, seed=seed, greedy=greedy, model=model)


# -- the real world ---------------------------------------------------------------------------------
def check_same_space(policy_space: Any, world_space: ActionSpace, what: str, where: str) -> None:
    """PlayworldError when a policy's action space is not the world's."""
    have = as_action_space(policy_space)
    if have is None or (have.kind, have.n, have.dim) != (world_space.kind, world_space.n, world_space.dim):
        raise PlayworldError(
            f"{what} acts in {have.describe() if have else 'an unknown space'} but {where} takes "
            f"{world_space.describe()} actions",
            "use an agent trained (with `playworld dream`) on a model of the same world",
        )


def make_real_world(spec: WorldSpec, world_options: dict | None = None):
    """The real world a model was trained on (built-in or gym:<id>), at the model's resolution."""

    if not spec.world:
        raise PlayworldError("the world model does not name the world its data came from",
                             "train on a dataset collected with `playworld collect` (it records the world)")
    return make_world(spec.world, resolution=spec.resolution, **(world_options or {}))


def world_returns(
    world, policy: Policy, episodes: int, seed: int = 0, max_steps: int | None = None,
) -> list[float]:
    """Undiscounted returns of `policy` over `episodes` real episodes (seeds seed, seed + 1, ...).

    Episodes end when the world terminates or truncates, or after `max_steps` (default: the world's)."""
    check_same_space(getattr(policy, "action_space", None), world.action_space, "the policy", f"world {world.name!r}")
    limit = max_steps or world.max_steps or 1000
    returns = []
    for i in range(episodes):
        frame, state = world.reset(seed=seed + i)
        returns.append(play_episode(world, policy, frame, state, limit))
    return returns


def play_episode(world, policy: Policy, frame, state, max_steps: int) -> float:
    """Reset `policy`, act in `world` from (frame, state) for up to `max_steps`; the undiscounted return."""
    policy.reset()
    total = 0.0
    for _ in range(max_steps):
        result = world.step(np.asarray(policy(frame, state), world.action_space.dtype))
        frame, state, total = result.frame, result.state, total + float(result.reward)
        if result.terminated or result.truncated:
            break
    return total
