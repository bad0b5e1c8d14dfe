"""`ClipWorldModel`: chunked autoregression behind the one-frame-at-a-time `WorldModel` contract.

    state = model.reset(frames, actions, seed=0)   # the newest K frames and their actions
    state, frame = model.step(state, action)        # a chunk of T frames is generated when none is left

When the current chunk is used up, `step` denoises the next T frames jointly from the newest K frames,
holding the action it was given for all T of them, and hands them out one per step. **A chunk commits
to its action**: the actions given at its other steps are not seen by the model (the frames were already
made), and the next chunk starts from the action given when it is generated. The state records, as the
action that led into each frame, the one its chunk held, so the context always agrees with its frames.
With `replan_on_change`, an action that differs from the held one drops the rest of the chunk and a new
chunk is generated from the newest K frames: a frame model's responsiveness, at a chunk's cost per change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from playworld.errors import PlayworldError
from playworld.models.clip.config import ClipConfig
from playworld.models.clip.network import ClipDenoiser
from playworld.models.clip.sampler import sample_chunk, sampling_scheduler, training_schedule
from playworld.models.interface import WorldSpec, check_actions, context_window, frames_to_unit, unit_to_frames


@dataclass
class ClipState:
    frames: Tensor  # (B, K, 3, H, W) float in [-1, 1]: the context of the next chunk, newest last
    actions: Tensor  # (B, K) int64 or (B, K, dim) float32: actions[:, i] led into frames[:, i]
    chunk: Tensor  # (B, T', 3, H, W) uint8: the current chunk's frames not handed out yet (T' = 0 to T-1)
    held: Tensor  # (B,) or (B, dim): the action the current chunk holds
    rng: Tensor  # the sampler's generator state, so a state always generates the same chunk


class ClipWorldModel:
    """The clip denoiser and a diffusers scheduler as a `WorldModel`, T frames per generation."""

    max_sampling_steps = 50
    """more denoising steps than this buys nothing at play speed"""

    def __init__(self, net: ClipDenoiser, config: ClipConfig, spec: WorldSpec):
        self.net, self.config, self.spec = net, config, spec
        self.noise = training_schedule(config)  # the forward process (context noise)
        self.scheduler = sampling_scheduler(config)
        self.steps = int(config.steps)
        self.chunks_generated = 0
        """how many chunks this model has generated (play and the speed bench read it)"""

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def sampling_steps(self) -> int:
        return self.steps

    def set_sampling_steps(self, steps: int) -> int:
        """Denoise each chunk in `steps` scheduler steps (1 to `max_sampling_steps`) from the next chunk on."""
        if not 1 <= int(steps) <= self.max_sampling_steps:
            raise PlayworldError(f"sampling steps {steps} outside 1 to {self.max_sampling_steps}", "choose a value in that range")
        self.steps = int(steps)
        return self.steps

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> ClipState:
        """frames (B, T, 3, H, W) uint8 (or float in [0, 1]) and their actions (B, T[, dim]); the newest K are kept."""
        frames, actions = context_window(frames, actions, self.spec, self.device)
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        rng = torch.Generator(device=self.device).manual_seed(int(seed)).get_state()
        b = frames.shape[0]
        empty = torch.zeros((b, 0, *self.spec.frame_shape), dtype=torch.uint8, device=self.device)
        return ClipState(frames=frames, actions=actions, chunk=empty, held=actions[:, -1].clone(), rng=rng)

    def step(self, state: ClipState, action: Tensor) -> tuple[ClipState, Tensor]:
        """action (B,) or (B, dim) -> the next frame (B, 3, H, W) uint8: the current chunk's next frame, or
        the first of a new chunk (holding `action`) when the chunk is used up."""
        b = state.frames.shape[0]
        action = check_actions(action, self.spec.action_space, (b,), self.device, torch.float32)
        chunk, held, rng = state.chunk, state.held, state.rng
        changed = self.config.replan_on_change and not torch.equal(action, held)
        if chunk.shape[1] == 0 or changed:
            chunk, rng = self._generate(state, action)
            held = action
        frame = chunk[:, 0]
        frames = torch.cat([state.frames[:, 1:], frames_to_unit(frame)[:, None]], dim=1)
        actions = torch.cat([state.actions[:, 1:], held[:, None].to(state.actions.dtype)], dim=1)
        new = ClipState(frames=frames, actions=actions, chunk=chunk[:, 1:], held=held, rng=rng)
        return new, frame.clone()

    def _generate(self, state: ClipState, action: Tensor) -> tuple[Tensor, Tensor]:
        """A new chunk (B, T, 3, H, W) uint8 from the state's context, holding `action`; and the generator's next state."""
        generator = torch.Generator(device=self.device)
        generator.set_state(state.rng)
        t = int(self.config.chunk)
        held = action[:, None].expand(-1, t, *action.shape[1:]).to(state.actions.dtype)
        actions = torch.cat([state.actions, held], dim=1)  # (B, K+T[, dim])
        with torch.inference_mode():
            chunk = sample_chunk(self.net, self.noise, self.scheduler, self.steps, state.frames, actions, self.config, generator)
            chunk = unit_to_frames(chunk)
        self.chunks_generated += 1
        # outside inference mode, so callers may keep states (and, e.g., cat them) freely
        return chunk.clone(), generator.get_state()

    def debug_state(self, state: ClipState) -> dict[str, Any]:
        """What play shows beside the frame: where in its chunk the model is and which action the chunk holds."""
        t = int(self.config.chunk)
        return {"chunk": t, "chunk_frames_left": int(state.chunk.shape[1]), "held_action": state.held[0].tolist(),
                "sampling_steps": self.steps}


def unwrap(net: nn.Module) -> ClipDenoiser:
    """The bare ClipDenoiser inside a DDP and/or torch.compile wrapper."""
    for _ in range(3):
        net = getattr(net, "module", net)
        net = getattr(net, "_orig_mod", net)
    return net
