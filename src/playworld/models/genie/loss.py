"""The genie objective on a window of K + 1 frames, all parts trained jointly in one loss.

    loss = recon_scale    * tokenizer reconstruction MSE (every frame)
         + lam_scale      * (LAM next-frame MSE + VQ loss)  (every transition; latent mode only)
         + dynamics_scale * MaskGIT cross-entropy on the masked tokens of the last frame

The dynamics reads the tokenizer's token *indices*, which carry no gradient (a stop-gradient by
construction), so the cross-entropy never pulls the tokenizer toward codes that are easy to predict;
in one joint loss it chases the tokenizer as it improves. Genie trains in stages instead, and so does
this loss with `tokenizer_steps` > 0: the first steps train the tokenizer (and the LAM) alone, without
the dynamics' cost; afterwards the tokenizer is frozen (no reconstruction loss, tokens computed without
gradient) and the LAM and the dynamics train on fixed token ids. The latent actions fed to the
dynamics are the LAM's indices, likewise without gradient.

Masking (MaskGIT, Chang et al. 2022): the K context frames stay clean (exactly what the sampler
sees), and the last frame's tokens are masked at a rate gamma(u) = cos(pi u / 2), u ~ U(0, 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from playworld.data.batch import Batch
from playworld.metrics import unit_psnr
from playworld.models.draw import rand as _rand
from playworld.models.genie.config import GenieConfig
from playworld.models.interface import frames_to_unit


def cosine_mask(b: int, n: int, generator: torch.Generator | None, device) -> Tensor:
    """(B, N) bool: for each example, ceil(cos(pi u / 2) * N) random positions (at least 1) are masked."""
    u = _rand((b,), generator, device)
    count = torch.ceil(torch.cos(math.pi / 2 * u) * n).clamp(1, n)  # (B,)
    rank = _rand((b, n), generator, device).argsort(dim=1).argsort(dim=1)  # a random permutation per row
    return rank < count[:, None]


def window(batch: Batch, k: int) -> tuple[Tensor, Tensor]:
    """The last K + 1 frames (B, K+1, 3, H, W) in [-1, 1] and their actions (B, K+1[, dim])."""
    frames = torch.cat([batch.context_frames, batch.future_frames], dim=1)[:, -(k + 1) :]
    actions = torch.cat([batch.context_actions, batch.future_actions], dim=1)[:, -(k + 1) :]
    if frames.shape[1] < k + 1:
        raise ValueError(f"the batch has {frames.shape[1]} frames, genie needs K + 1 = {k + 1}")
    return frames_to_unit(frames), actions


def genie_loss(
    net: torch.nn.Module, batch: Batch, config: GenieConfig, generator: torch.Generator | None = None, step: int = 0
) -> tuple[Tensor, dict[str, float]]:
    """The loss at training step `step` (0-based; with `tokenizer_steps` it picks the stage)."""
    frames, actions = window(batch, batch.context_frames.shape[1])  # K: the loader cut the spec's
    b, t = frames.shape[:2]
    device = frames.device
    logs: dict[str, float] = {}
    stages = int(config.tokenizer_steps)
    train_tokenizer = stages == 0 or step < stages  # the tokenizer trains jointly, or in its own stage
    train_dynamics = stages == 0 or step >= stages
    if not train_tokenizer and next(net.tokenizer.parameters()).requires_grad:
        net.tokenizer.requires_grad_(False)  # frozen from here on (the training loop copies it into the EMA model)

    # -- tokenizer: reconstruct every frame through the FSQ bottleneck ----------------------------
    flat = frames.flatten(0, 1)  # (B*T, 3, H, W)
    if train_tokenizer:
        codes = net.tokenizer.quantize(flat)  # (B*T, d, h, w)
        recon = net.tokenizer.decode_codes(codes)
        recon_loss = F.mse_loss(recon, flat)
        tokens = net.tokenizer.fsq.codes_to_indices(codes.detach())  # no gradient
        logs.update(recon_mse=recon_loss.item(), recon_psnr=unit_psnr(recon.detach(), flat))
        loss = float(config.recon_scale) * recon_loss
    else:  # frozen: only its tokens are needed (no graph: its parameters no longer require gradients)
        tokens = net.tokenizer.encode(flat)
        loss = flat.new_zeros(())
    tokens = tokens.reshape(b, t, -1)  # (B, T, N)

    # -- latent actions: infer a code per transition, reconstruct frame t+1 from frame t and it ----
    if net.lam is not None:
        prev, nxt = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
        lam_loss, idx, lam_logs = net.lam(prev, nxt)
        first = torch.full((b, 1), net.unknown_action, dtype=torch.long, device=device)
        actions = torch.cat([first, idx.view(b, t - 1)], dim=1)  # (B, T); no gradient through indices
        logs.update({key: float(v) for key, v in lam_logs.items()})
        loss = loss + float(config.lam_scale) * lam_loss

    # -- dynamics: MaskGIT on the last frame's tokens, clean context ------------------------------
    if not train_dynamics:  # the tokenizer's own stage: the dynamics waits for tokens that hold still
        logs["loss"] = loss.item()
        return loss, logs
    mask = cosine_mask(b, tokens.shape[2], generator, device)  # (B, N)
    inputs = tokens.clone()
    inputs[:, -1] = torch.where(mask, net.dynamics.mask_token, tokens[:, -1])
    pos = torch.arange(t, device=device)
    hidden, _ = net.dynamics(inputs, net.actions(actions), pos)
    logits = net.dynamics.logits(hidden[:, -1][mask])  # (masked, vocab)
    target = tokens[:, -1][mask]
    ce = F.cross_entropy(logits.float(), target)
    logs.update(dynamics_ce=ce.item(), token_acc=float((logits.argmax(-1) == target).float().mean()))
    loss = loss + float(config.dynamics_scale) * ce
    logs["loss"] = loss.item()
    return loss, logs
