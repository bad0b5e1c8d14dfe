"""The `rssm` training objective (DreamerV3's world-model loss) on a playworld `Batch`.

The K context and F future frames of a window form one sequence of T = K + F frames, filtered by
the posterior. Per step (mean over batch and time):

    recon  = sum over pixels of (decoder(h, z) - frame)^2          frames in [-1, 1]
    dyn    = max(free, KL(sg(post) || prior))                      summed over latents
    rep    = max(free, KL(post || sg(prior)))
    reward = (reward_head(h, z) - symlog(r))^2                      future steps only (rewards known there)
    cont   = BCE(continue_head(h, z), 1 - terminated)               future steps only

    loss = recon_scale*recon + kl_dyn*dyn + kl_rep*rep + reward_scale*reward + continue_scale*cont
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from playworld.data.batch import Batch
from playworld.models.interface import frames_to_unit
from playworld.models.nn import symlog
from playworld.models.rssm.network import RSSMNet


def categorical_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p || q) of categoricals given as log-probs (..., stoch, classes), summed over latents -> (...)."""
    return (p_logits.exp() * (p_logits - q_logits)).sum(-1).sum(-1)


def kl_terms(post: Tensor, prior: Tensor, free_nats: float) -> tuple[Tensor, Tensor, Tensor]:
    """(dyn, rep, raw KL), each (...): the balanced, free-bits-clipped terms and the unclipped KL."""
    dyn = categorical_kl(post.detach(), prior)
    rep = categorical_kl(post, prior.detach())
    return dyn.clamp_min(free_nats), rep.clamp_min(free_nats), dyn.detach()


def rssm_loss(
    net: RSSMNet, batch: Batch, config, step: int = 0, generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, float]]:
    device = net.h0.device
    batch = batch.to(device)
    k = batch.context_frames.shape[1]
    frames = frames_to_unit(torch.cat([batch.context_frames, batch.future_frames], 1))  # (B, T, 3, R, R)
    actions = torch.cat([batch.context_actions, batch.future_actions], 1)  # (B, T) or (B, T, dim)
    out = net.observe(frames, actions, generator)
    b, t = frames.shape[:2]
    feat = net.feature(out["h"].flatten(0, 1), out["z"].flatten(0, 1))  # (B*T, feat)

    recon = net.decoder(feat).float().view_as(frames)
    recon_loss = (recon - frames).pow(2).sum((2, 3, 4)).mean()
    dyn, rep, kl = kl_terms(out["post"], out["prior"], config.free_nats)  # (B, T)

    future = feat.view(b, t, -1)[:, k:]  # (B, F, feat): rewards and terminations are known there
    reward_pred = net.reward_head(future).squeeze(-1).float()
    reward_loss = (reward_pred - symlog(batch.future_rewards.float())).pow(2).mean()
    cont_logit = net.continue_head(future).squeeze(-1).float()
    cont_target = 1.0 - batch.future_terminated.float()
    cont_loss = F.binary_cross_entropy_with_logits(cont_logit, cont_target)

    loss = (
        config.recon_scale * recon_loss + config.kl_dyn * dyn.mean() + config.kl_rep * rep.mean()
        + config.reward_scale * reward_loss + config.continue_scale * cont_loss
    )
    with torch.no_grad():
        mse = (recon.clamp(-1, 1) - frames).pow(2).mean()
        logs = {
            "loss": float(loss), "recon": float(recon_loss), "kl": float(kl.mean()), "dyn": float(dyn.mean()),
            "rep": float(rep.mean()), "reward": float(reward_loss), "continue": float(cont_loss),
            "psnr_recon": float(10 * torch.log10(4.0 / mse.clamp_min(1e-10))),
        }
    return loss, logs
