"""Generation: MaskGIT iterative parallel decoding of one frame's tokens, streamed with a KV cache.

`maskgit_decode` (Chang et al. 2022) starts from a fully masked frame; each of `steps` iterations
samples every masked token, keeps the most confident ones and re-masks the rest, so that after
iteration s a fraction cos(pi/2 * (s+1)/steps) stays masked (none after the last).

`Stream` holds the temporal context of a generation. With the cache, it holds per layer the temporal
keys/values of the last K frames (`dynamics.KVCache`): each decoding iteration runs the transformer
on the new frame's N tokens only, and one more pass commits the finished frame's keys/values. Without
it, it holds the last `receptive_field` frames' tokens and actions and re-runs the transformer over
all of them at every iteration. Both compute the same function (temporal attention is a causal band
with relative time positions), which tests/models/test_genie.py checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from playworld.models.genie.dynamics import KVCache


def _gumbel(shape, generator: torch.Generator, device) -> Tensor:
    u = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return -torch.log(-torch.log(u.clamp(1e-20, 1.0 - 1e-7)))


def maskgit_decode(
    logits_fn: Callable[[Tensor], Tensor], b: int, n: int, mask_token: int, steps: int, temperature: float,
    choice_temperature: float, generator: torch.Generator, device,
) -> Tensor:
    """logits_fn(tokens (B, N) with masks) -> logits (B, N, V); returns the decoded tokens (B, N) int64."""
    tokens = torch.full((b, n), mask_token, dtype=torch.long, device=device)
    masked = torch.ones(b, n, dtype=torch.bool, device=device)
    for s in range(steps):
        logits = logits_fn(tokens).float()  # (B, N, V)
        if temperature > 0:
            sampled = (logits / temperature + _gumbel(logits.shape, generator, device)).argmax(-1)
        else:
            sampled = logits.argmax(-1)
        confidence = logits.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]  # (B, N) log-prob of the pick
        if choice_temperature > 0:  # MaskGIT's annealed randomness in which tokens are kept
            confidence = confidence + choice_temperature * (1 - (s + 1) / steps) * _gumbel(confidence.shape, generator, device)
        confidence = torch.where(masked, confidence, torch.inf)  # decided tokens are never re-masked
        still = masked.sum(1)  # (B,) masked now
        remain = torch.full_like(still, math.floor(n * math.cos(math.pi / 2 * (s + 1) / steps)))
        remain = torch.minimum(remain, still - 1).clamp_min(0) if s < steps - 1 else torch.zeros_like(still)
        order = confidence.argsort(dim=1)  # least confident first
        rank = order.argsort(dim=1)
        new_masked = rank < remain[:, None]
        tokens = torch.where(masked & ~new_masked, sampled, tokens)
        masked = new_masked
    return tokens


@dataclass
class Stream:
    """The temporal context of a generation (immutable: generating returns a new Stream)."""

    tokens: Tensor | None  # (B, H, N) without cache: the last `receptive_field` frames' tokens
    actions: Tensor | None  # (B, H[, dim]) their actions
    cache: KVCache | None  # with cache: temporal keys/values of the last K frames
    next_pos: int  # time position of the next frame (frames since reset)


def start_stream(net, tokens: Tensor, actions: Tensor, use_cache: bool) -> Stream:
    """A stream over context frames' tokens (B, K, N) and the actions that led into them (B, K[, dim])."""
    k = tokens.shape[1]
    dyn = net.dynamics
    if not use_cache:
        return Stream(tokens[:, -dyn.receptive_field :], actions[:, -dyn.receptive_field :], None, k)
    pos = torch.arange(k, device=tokens.device)
    _, kvs = dyn(tokens, net.actions(actions), pos)
    return Stream(None, None, KVCache.start(kvs, pos, dyn.band - 1), k)


def generate_frame(
    net, stream: Stream, action: Tensor, steps: int, temperature: float, choice_temperature: float,
    generator: torch.Generator,
) -> tuple[Stream, Tensor]:
    """Decode the tokens (B, N) of the frame that `action` (B[, dim]) leads into; return the advanced stream too."""
    dyn = net.dynamics
    b, n, device = action.shape[0], dyn.tokens, action.device
    cond = net.actions(action[:, None])  # (B, 1, D)
    p = stream.next_pos

    if stream.cache is not None:
        pos = torch.tensor([p], device=device)

        def logits_fn(tokens: Tensor) -> Tensor:
            hidden, _ = dyn(tokens[:, None], cond, pos, stream.cache)
            return dyn.logits(hidden[:, 0])

        tokens = maskgit_decode(logits_fn, b, n, dyn.mask_token, steps, temperature, choice_temperature, generator, device)
        _, kvs = dyn(tokens[:, None], cond, pos, stream.cache)  # commit: the finished frame's keys/values
        return Stream(None, None, stream.cache.append(kvs, pos, dyn.band - 1), p + 1), tokens

    h = stream.tokens.shape[1]
    pos = torch.arange(p - h, p + 1, device=device)
    conds = torch.cat([net.actions(stream.actions), cond], dim=1)  # (B, H+1, D)

    def logits_fn(tokens: Tensor) -> Tensor:
        hidden, _ = dyn(torch.cat([stream.tokens, tokens[:, None]], dim=1), conds, pos)
        return dyn.logits(hidden[:, -1])

    tokens = maskgit_decode(logits_fn, b, n, dyn.mask_token, steps, temperature, choice_temperature, generator, device)
    keep = dyn.receptive_field
    new_tokens = torch.cat([stream.tokens, tokens[:, None]], dim=1)[:, -keep:]
    new_actions = torch.cat([stream.actions, action[:, None]], dim=1)[:, -keep:]
    return Stream(new_tokens, new_actions, None, p + 1), tokens
