"""Gymnasium adapter: ``gym:<id>`` turns any Gymnasium environment that renders
``render_mode="rgb_array"`` into a playworld `World`.

- Frames come from ``env.render()`` and are resized (PIL, bilinear with antialiasing) to
  resolution x resolution; the aspect ratio is not kept.
- ``Discrete(n)`` becomes ``ActionSpace.discrete(n)`` (action names from
  ``get_action_meanings()`` on Atari, the ``actions`` enum on MiniGrid); a 1-D ``Box`` becomes
  ``ActionSpace.continuous``. Other spaces raise PlayworldError.
- Seeding: ``reset(seed)`` passes a seed to the environment only when one is given; a
  collection seeds its first episode and resets the rest with ``seed=None``, so later episodes
  draw from the environment's own generator and differ from each other (re-seeding every episode
  with the same seed would repeat one episode over and over).
- State: a small numeric vector when one is cheap: the observation when it is a flat Box of at
  most 64 numbers (CartPole, MuJoCo), the 128-byte RAM on Atari, the agent's cell and direction
  on MiniGrid; otherwise an empty dict. `restore` is not supported.

ALE ids (``ALE/Pong-v5``) need ``ale-py``, MiniGrid ids need ``minigrid``, MuJoCo ids need
``mujoco`` (``pip install 'playworld[gym]'`` / ``'playworld[mujoco]'``); headless MuJoCo wants
``MUJOCO_GL=egl``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from playworld.errors import PlayworldError
from playworld.spaces import ActionSpace
from playworld.worlds.base import GYM_PREFIX, StepResult, World, check_resolution, check_world_id

MAX_STATE_OBS = 64  # flat observations up to this many numbers are stored as state
_PLUGINS = {  # id prefix -> (module that registers the envs, the extra that installs it)
    "ALE/": ("ale_py", "gym"),
    "MiniGrid-": ("minigrid", "gym"),
    "BabyAI-": ("minigrid", "gym"),
}
_MUJOCO_NAMES = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "InvertedPendulum",
                 "InvertedDoublePendulum", "Reacher", "Swimmer", "Pusher")


def _register_plugin(env_id: str) -> None:
    """Import the package that registers `env_id`'s family, or say how to install it."""

    for prefix, (module, extra) in _PLUGINS.items():
        if env_id.startswith(prefix):
            try:
                mod = importlib.import_module(module)
            except ImportError:
                raise PlayworldError(
                    f"Gymnasium id {env_id!r} needs the {module!r} package, which is not installed",
                    f"pip install 'playworld[{extra}]'",
                ) from None
            if module == "ale_py":
                gym.register_envs(mod)
    if env_id.split("-")[0] in _MUJOCO_NAMES:
        os.environ.setdefault("MUJOCO_GL", "egl")
        try:
            importlib.import_module("mujoco")
        except ImportError:
            raise PlayworldError(
                f"Gymnasium id {env_id!r} needs MuJoCo, which is not installed",
                "pip install 'playworld[mujoco]' (and set MUJOCO_GL=egl on a headless machine)",
            ) from None


def _action_space(env: Any, env_id: str) -> ActionSpace:
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        n = int(space.n)
        names: tuple[str, ...] = ()
        unwrapped = env.unwrapped
        if hasattr(unwrapped, "get_action_meanings"):
            names = tuple(str(x) for x in unwrapped.get_action_meanings())
        elif hasattr(unwrapped, "actions"):  # MiniGrid: an IntEnum class
            try:
                names = tuple(a.name for a in unwrapped.actions)
            except TypeError:
                names = ()
        return ActionSpace.discrete(n, names if len(names) == n else ())
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return ActionSpace.continuous(space.low, space.high)
    raise PlayworldError(
        f"Gymnasium env {env_id!r} has action space {space}, which playworld cannot record",
        "use an env with a Discrete or a 1-D Box action space (or wrap it to one)",
    )


class GymWorld(World):
    """A Gymnasium env seen through its rendered frames."""

    ends_itself = True

    def __init__(self, env_id: str, resolution: int = 64, **make_kwargs: Any):
        self.resolution = check_resolution(resolution)
        self.name = check_world_id(f"{GYM_PREFIX}{env_id}")  # never gym:module:Env (gym.make would import module)
        _register_plugin(env_id)
        hint = "check the id with `python -c \"import gymnasium; gymnasium.pprint_registry()\"`"
        if env_id.startswith(("ALE/", "MiniGrid-", "BabyAI-")):
            hint += "; ALE and MiniGrid ids come with pip install 'playworld[gym]'"
        if env_id not in gym.registry:  # only registered ids reach gym.make, which then imports nothing new
            versions = sorted(k for k in gym.registry if k.rsplit("-v", 1)[0] == env_id)
            raise PlayworldError(f"unknown Gymnasium id {env_id!r}: no registered environment has it",
                                 f"use one of {', '.join(versions)}" if versions else hint)
        try:
            self.env = gym.make(env_id, render_mode="rgb_array", **make_kwargs)
        except gym.error.Error as e:
            raise PlayworldError(f"unknown Gymnasium id {env_id!r}: {e}", hint) from None
        except TypeError as e:
            raise PlayworldError(f"bad options for Gymnasium env {env_id!r}: {e}", "check the option names") from None
        self.action_space = _action_space(self.env, env_id)
        self.fps = float(self.env.metadata.get("render_fps") or 30)
        spec = self.env.spec
        self.max_steps = spec.max_episode_steps if spec is not None else None
        self._state_kind = self._choose_state_kind()

    def _choose_state_kind(self) -> str:
        unwrapped = self.env.unwrapped
        if hasattr(unwrapped, "ale"):
            return "ram"
        if hasattr(unwrapped, "agent_pos") and hasattr(unwrapped, "agent_dir"):
            return "minigrid"
        obs = self.env.observation_space
        if isinstance(obs, spaces.Box) and len(obs.shape) == 1 and obs.shape[0] <= MAX_STATE_OBS:
            return "obs"
        return "none"

    def _state(self, obs: Any) -> dict[str, np.ndarray]:
        kind = self._state_kind
        if kind == "obs":
            return {"obs": np.asarray(obs, np.float32).copy()}
        if kind == "ram":
            return {"ram": np.asarray(self.env.unwrapped.ale.getRAM(), np.uint8).copy()}
        if kind == "minigrid":
            u = self.env.unwrapped
            return {"agent_pos": np.asarray(u.agent_pos, np.int32), "agent_dir": np.array(u.agent_dir, np.int32)}
        return {}

    def _frame(self) -> np.ndarray:
        rgb = np.asarray(self.env.render())[..., :3]
        self.native_frame = rgb
        if rgb.shape[:2] == (self.resolution, self.resolution):
            return np.ascontiguousarray(rgb, dtype=np.uint8)
        img = Image.fromarray(rgb.astype(np.uint8)).resize((self.resolution, self.resolution), Image.BILINEAR)
        return np.asarray(img, np.uint8)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # Seed only when asked: seed=None continues the env's own generator (episodes differ).
        obs, _ = self.env.reset(seed=None if seed is None else int(seed))
        return self._frame(), self._state(obs)

    def step(self, action: Any) -> StepResult:
        if self.action_space.kind == "continuous":
            a: Any = np.clip(np.asarray(action, np.float32), self.action_space.low, self.action_space.high)
        else:
            a = int(np.asarray(action))
        obs, reward, terminated, truncated, _ = self.env.step(a)
        return StepResult(self._frame(), float(reward), bool(terminated), bool(truncated), self._state(obs))

    def close(self) -> None:
        self.env.close()


def make_gym_world(env_id: str, resolution: int = 64, **options: Any) -> GymWorld:
    """``gym:<id>`` -> World; `options` go to ``gymnasium.make`` (e.g. frameskip=4)."""
    return GymWorld(env_id, resolution=resolution, **options)


def import_registering_module(world: str) -> str:
    """``gym:pkg:Env-v0`` typed on the command line -> ``gym:Env-v0``, after importing ``pkg`` so it registers
    the environment: the user's own code, named by the user (as ``--policy module:function`` is). Only the
    command line calls this; a world id read from a file (a checkpoint, a manifest) never imports anything,
    and the dataset stores the id without the module."""
    module, sep, env_id = world[len(GYM_PREFIX):].partition(":")
    if not sep or not module or not env_id:
        return world
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise PlayworldError(f"cannot import {module!r} to register {env_id!r} ({e})",
                             "check that the module is on PYTHONPATH (or installed)") from None
    return check_world_id(f"{GYM_PREFIX}{env_id}")
