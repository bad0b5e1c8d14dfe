"""The `jepa` objective (V-JEPA 2-AC's, with the encoder learned at the same time) on a playworld `Batch`.

A window of T = K + F frames is encoded three ways: by the EMA target encoder under stop-gradient
(the targets), by the online encoder (clean), and by the online encoder with a share of each
frame's patches blanked (masked). With z the representations and a[i] the action that led into
frame i (mean over batch, tokens and channels):

    tf      = | P(masked z[i-K+1 .. i], a[i+1]) - target[i+1] |        i = K-1 .. T-2   teacher forcing
    rollout = | P^j(clean z[0 .. K-1], a[K .. K+j-1]) - target[K+j-1] |   j = 1 .. F     its own predictions fed back
    var     = mean over (token, channel) of relu(var_floor - std over the batch of clean z)
    probe   = (decoder(sg(clean z[i])) - frame[i])^2  and  (decoder(sg(rollout j)) - frame[i])^2   i = K+j-1

    loss = tf_scale*tf + rollout_scale*rollout + var_scale*var + probe_scale*probe

Collapse (every frame mapped to one representation, which makes tf and rollout 0) is guarded three
ways: the targets come from a slow EMA copy under stop-gradient, the predictor must see through masks,
and the variance hinge. The logs carry `std` (of the target representation over the batch, per token
and channel, averaged) and `erank` (the effective rank of its token covariance): both fall to ~0 / 1 on
a collapsed encoder.

The target encoder takes its EMA step at the start of each training call of this loss (under grad,
in training mode): the online weights it moves toward are those of the previous optimiser step, so
the shared trainer needs no hook of its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from playworld.data.batch import Batch
from playworld.models.interface import frames_to_unit
from playworld.models.jepa.network import JEPANet


def spread(z: Tensor) -> Tensor:
    """z (N, D, h, w) -> () the std over N of each token channel, averaged: ~0 when every input maps to one grid."""
    return z.float().std(0).mean() if len(z) > 1 else z.new_zeros(())


def effective_rank(z: Tensor) -> Tensor:
    """z (N, D, h, w) -> () exp(entropy) of the normalised singular values of the centred tokens (1 to D)."""
    tokens = z.float().movedim(1, -1).reshape(-1, z.shape[1])
    s = torch.linalg.svdvals(tokens - tokens.mean(0))
    p = s / s.sum().clamp_min(1e-12)
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())


def jepa_loss(
    net: JEPANet, batch: Batch, config, step: int = 0, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, float]]:
    device = net.decoder.net[0].weight.device
    batch = batch.to(device)
    k = net.context
    frames = frames_to_unit(torch.cat([batch.context_frames, batch.future_frames], 1))  # (B, T, 3, R, R)
    actions = torch.cat([batch.context_actions, batch.future_actions], 1)  # (B, T) or (B, T, dim)
    b, t = frames.shape[:2]
    f = t - k
    if torch.is_grad_enabled() and net.training:
        net.update_target(config.target_decay)
    with torch.no_grad():
        target = net.target(frames.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, D, h, w)

    clean = net.encode(frames)  # (B, T, D, h, w)
    masked = net.encode(net.mask(frames[:, :-1], config.mask_ratio, generator)) if net.mask_token is not None else clean[:, :-1]
    windows = masked.unfold(1, k, 1).movedim(-1, 2)  # (B, F, K, D, h, w): the K frames before each future one
    nxt = actions[:, k:]  # (B, F[, dim]): the action into each future frame
    pred = net.predict(windows.flatten(0, 1), nxt.flatten(0, 1)).unflatten(0, (b, f))
    tf = (pred - target[:, k:]).abs().mean()

    window, rolled = clean[:, :k], []
    for j in range(f):
        z = net.predict(window, nxt[:, j])
        rolled.append(z)
        window = torch.cat([window[:, 1:], z[:, None]], 1)
    rolled = torch.stack(rolled, 1)  # (B, F, D, h, w)
    rollout = (rolled - target[:, k:]).abs().mean()

    std = (clean.flatten(0, 1).float().var(0) + 1e-4).sqrt()  # (D, h, w)
    var = F.relu(config.var_floor - std).mean()

    # the future frames, from their encodings and from the rollout's predictions (what play shows), under
    # stop-gradient: the probe only reads (the context frames' encodings are left out: they cost as much again)
    seen = torch.cat([clean[:, k:].flatten(0, 1), rolled.flatten(0, 1)]).detach()  # (2 B F, D, h, w)
    truth = frames[:, k:].flatten(0, 1).repeat(2, 1, 1, 1)
    recon = net.decoder(seen).float()
    probe = (recon - truth).pow(2).mean()

    loss = config.tf_scale * tf + config.rollout_scale * rollout + config.var_scale * var + config.probe_scale * probe
    with torch.no_grad():
        mse = (recon[: b * f].clamp(-1, 1) - truth[: b * f]).pow(2).mean()  # from the encodings
        tz = target.flatten(0, 1)
        logs = {
            "loss": float(loss), "tf": float(tf), "rollout": float(rollout), "var": float(var), "probe": float(probe),
            "std": float(spread(tz)), "erank": float(effective_rank(tz)),
            "psnr_probe": float(10 * torch.log10(4.0 / mse.clamp_min(1e-10))),
        }
    return loss, logs
