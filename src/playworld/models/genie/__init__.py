"""The `genie` family: video tokenizer (FSQ), latent action model, spatio-temporal MaskGIT transformer (Genie).

    config.py     GenieConfig (every option, documented)
    tokenizer.py  FSQ and the conv tokenizer (frames <-> token grids), reconstruction PSNR
    lam.py        the latent action model: a VQ code per transition, learned from frames alone
    dynamics.py   the ST transformer (spatial attention with a 2D rotary code, causal banded temporal
                  attention with a rotary time code), MaskGIT output tied to the token embeddings
    network.py    GenieNet: all parts in one module; true vs latent action conditioning
    loss.py       the objective (tokenizer recon + LAM + MaskGIT cross-entropy), joint or in stages
    sampler.py    MaskGIT decoding and streaming generation with (or without) the KV cache
    here          the Family registration and `GenieWorldModel`, the sampler behind `WorldModel`

Latent-action models (trained with `actions: latent`, or `auto` on an action-free dataset) present
the action space discrete(codebook) named 'latent 0', 'latent 1', ... to play, eval and agents:
`step(state, a)` takes a latent action index. Their `reset` infers the context's latent actions from
the context frames with the LAM, so the actions passed to `reset` (for action-free data, zeros)
are checked for shape and range but not used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from playworld.data.batch import Batch
from playworld.errors import PlayworldError
from playworld.models.genie.config import GenieConfig
from playworld.models.genie.network import GenieNet, resolve_actions
from playworld.models.genie.sampler import Stream, generate_frame, start_stream
from playworld.models.interface import WorldSpec, check_actions, context_window, unit_to_frames
from playworld.models.registry import Family, register_family
from playworld.spaces import ActionSpace


def latent_action_space(codebook: int) -> ActionSpace:
    """The action space a latent-action genie model presents: discrete(codebook), 'latent 0'.. 'latent n-1'."""
    return ActionSpace.discrete(int(codebook), [f"latent {i}" for i in range(int(codebook))])


@dataclass
class GenieState:
    stream: Stream  # the temporal context: KV cache or token history
    rng: Tensor  # the sampler's generator state, so a state always samples the same next frame


class GenieWorldModel:
    """Tokenize the context, then per `step` decode the next frame's tokens with MaskGIT and detokenize them."""

    def __init__(self, net: GenieNet, config: GenieConfig, spec: WorldSpec):
        self.net, self.config = net, config
        self.latent = net.mode == "latent"
        self.spec = dataclasses.replace(spec, action_space=latent_action_space(config.codebook)) if self.latent else spec

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def _actions(self, actions: Any, lead: tuple[int, ...]) -> Tensor:
        """Validate and move actions of leading shape `lead` ((B,) or (B, T)) to the model's device."""
        return check_actions(actions, self.spec.action_space, lead, self.device, self.dtype)

    def reset(self, frames: Tensor, actions: Tensor, seed: int | None = None) -> GenieState:
        """frames (B, T, 3, H, W) uint8 (or float in [0, 1]) and their actions (B, T[, dim]).

        The newest K frames are kept; fewer than K are padded by repeating the oldest with no-op actions.
        """
        with torch.inference_mode():
            x, actions = context_window(frames, actions, self.spec, self.device, self.dtype)
            b = x.shape[0]
            if self.latent:
                actions = self.net.infer_actions(x)  # (B, K): what the LAM reads off the frames
            tokens = self.net.tokenizer.encode(x.flatten(0, 1)).view(b, self.spec.context, -1)  # (B, K, N)
            stream = start_stream(self.net, tokens, actions, bool(self.config.cache))
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        rng = torch.Generator(device=self.device).manual_seed(int(seed)).get_state()
        return GenieState(stream=_detach(stream), rng=rng)

    def step(self, state: GenieState, action: Tensor) -> tuple[GenieState, Tensor]:
        """action (B,) or (B, dim) taken at the newest frame (a latent action index for latent models) -> (B, 3, H, W) uint8."""
        b = _batch_size(state.stream, self.net.dynamics.tokens)
        action = self._actions(action, (b,))
        generator = torch.Generator(device=self.device)
        generator.set_state(state.rng)
        c = self.config
        with torch.inference_mode():
            stream, tokens = generate_frame(
                self.net, state.stream, action, int(c.steps), float(c.temperature), float(c.choice_temperature), generator
            )
            frame = unit_to_frames(self.net.tokenizer.decode(tokens, self.net.side))  # (B, 3, H, W)
        # clones made outside inference mode, so callers may keep and reuse states freely
        return GenieState(stream=_detach(stream), rng=generator.get_state()), frame.clone()


def _batch_size(stream: Stream, tokens_per_frame: int) -> int:
    if stream.cache is not None:
        return stream.cache.k[0].shape[0] // tokens_per_frame  # keys are (B * N, heads, T, dh)
    return stream.tokens.shape[0]


def _detach(stream: Stream) -> Stream:
    """Copies of inference-mode tensors, usable outside inference mode."""
    clone = lambda t: None if t is None else t.clone()  # noqa: E731
    cache = stream.cache
    if cache is not None:
        cache = type(cache)([k.clone() for k in cache.k], [v.clone() for v in cache.v], cache.pos.clone())
    return Stream(clone(stream.tokens), clone(stream.actions), cache, stream.next_pos)


def _unwrap(net: nn.Module) -> GenieNet:
    """The bare GenieNet inside a DDP and/or torch.compile wrapper."""
    for _ in range(3):
        net = getattr(net, "module", net)
        net = getattr(net, "_orig_mod", net)
    return net


@register_family
class Genie(Family):
    name = "genie"
    Config = GenieConfig
    capabilities = ("OnDevice",)

    def future_length(self, config: GenieConfig) -> int:
        return 1  # a window is K clean frames + 1 masked frame: exactly what the sampler sees

    def build(self, config: GenieConfig, spec: WorldSpec) -> nn.Module:
        return GenieNet(config, spec)

    def loss(
        self, net: nn.Module, batch: Batch, config: GenieConfig, step: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        return net(batch, config, generator, step)  # GenieNet.forward is the loss, so DDP and compile wrap it

    def skips_parameters(self, config: GenieConfig) -> bool:
        return int(config.tokenizer_steps) > 0  # the tokenizer's stage leaves the dynamics idle, and after it the tokenizer

    def world_model(self, net: nn.Module, config: GenieConfig, spec: WorldSpec) -> GenieWorldModel:
        return GenieWorldModel(_unwrap(net), config, spec)

    def check_dataset(self, config: GenieConfig, spec: WorldSpec, dataset) -> None:
        """PlayworldError when `dataset` cannot train this config (called before training; see check_data)."""
        check_data(config, spec, dataset)


def check_data(config: GenieConfig, spec: WorldSpec, dataset) -> None:
    """Reject data that cannot support the config: true actions on action-free data, or a latent
    codebook larger than the number of training transitions (some latent actions could never be used)."""
    mode = resolve_actions(config, spec)
    if mode != "latent":
        return
    split = "train" if dataset.episode_ids("train") else None
    transitions = sum(max(0, dataset.episode_length(e) - 1) for e in dataset.episode_ids(split))
    if int(config.codebook) > transitions:
        raise PlayworldError(
            f"genie codebook of {config.codebook} latent actions is larger than the {transitions} training transitions in {dataset.path}",
            f"lower --set model.codebook (to {max(2, min(8, transitions))} or less) or collect more video",
        )


__all__ = ["Genie", "GenieConfig", "GenieNet", "GenieState", "GenieWorldModel", "check_data", "latent_action_space"]
