"""The RSSM network (DreamerV3-style): conv encoder/decoder, recurrent state-space model, heads.

State at time t: h_t (B, deter) deterministic GRU state and z_t (B, stoch, classes) one-hot
categorical latents; the feature the heads read is cat(h_t, flatten(z_t)).

    h_t = GRU(h_{t-1}, MLP(z_{t-1}, a_t))          # a_t led into frame t (playworld's time convention)
    prior      p(z_t | h_t)       = img_out(h_t)     # used to imagine
    posterior  q(z_t | h_t, e_t)  = obs_out(h_t, e_t), e_t = encoder(frame_t)
    frame_t ~ decoder(h_t, z_t);  reward_t, continue_t from heads on (h_t, z_t)

Every categorical mixes in `unimix` of the uniform distribution; samples are drawn by inverse CDF
from uniform noise of an explicit torch.Generator (deterministic for a seed) with straight-through
gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from playworld.models.interface import WorldSpec


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, out))


def _init(module: nn.Module) -> None:
    """DreamerV3's initialisation: truncated normal with variance 1 / fan_avg, zero bias. It gives
    the latent heads unit-scale logits, so prior and posterior differ by more than the free bits at
    step 0 and every part of the model is trained from the first step."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
        std = (2.0 / (fan_in + fan_out)) ** 0.5 / 0.87962566  # 0.8796: std of a unit normal truncated at 2
        nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _stages(resolution: int) -> int:
    """Number of stride-2 conv stages: halve while the side stays even and above 4 (32 -> 4 is 3)."""
    n, r = 0, resolution
    while r > 4 and r % 2 == 0:
        r //= 2
        n += 1
    return n


class Encoder(nn.Module):
    """Frames (N, 3, R, R) in [-1, 1] -> embeddings (N, embed_dim)."""

    def __init__(self, resolution: int, channels: int):
        super().__init__()
        layers, c_in = [], 3
        self.widths = [channels * 2 ** min(i, 3) for i in range(_stages(resolution))]
        for c in self.widths:
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1), nn.GroupNorm(1, c), nn.SiLU()]
            c_in = c
        if not layers:  # odd resolution: one stride-1 stage so the embedding is still learned
            layers = [nn.Conv2d(3, channels, 3, padding=1), nn.GroupNorm(1, channels), nn.SiLU()]
            self.widths = [channels]
        self.net = nn.Sequential(*layers)
        self.n_stages = _stages(resolution)
        self.out_side = resolution // 2**self.n_stages
        self.embed_dim = self.widths[-1] * self.out_side**2

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


class Decoder(nn.Module):
    """Features (N, feat) -> frames (N, 3, R, R), unbounded (the loss compares them with [-1, 1] targets)."""

    def __init__(self, feat: int, encoder: Encoder):
        super().__init__()
        widths = encoder.widths[::-1]
        self.side, self.c0 = encoder.out_side, widths[0]
        self.inp = nn.Linear(feat, self.c0 * self.side**2)
        layers: list[nn.Module] = []
        stages = encoder.n_stages
        for i in range(stages):
            c_in, c_out = widths[i], (widths[i + 1] if i + 1 < len(widths) else 3)
            last = i == stages - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if not last:
                layers += [nn.GroupNorm(1, c_out), nn.SiLU()]
        if stages == 0:
            layers = [nn.SiLU(), nn.Conv2d(self.c0, 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        x = self.inp(feat).view(-1, self.c0, self.side, self.side)
        return self.net(x)


class RSSMNet(nn.Module):
    """Every trainable parameter of the family: encoder, RSSM core, decoder, reward and continue heads."""

    def __init__(self, config, spec: WorldSpec):
        super().__init__()
        space = spec.action_space
        self.stoch, self.classes, self.unimix = config.stoch, config.classes, config.unimix
        self.continuous = space.kind == "continuous"
        self.act_dim = space.dim if self.continuous else space.n
        if self.continuous:
            low, high = torch.tensor(space.low), torch.tensor(space.high)
            finite = torch.isfinite(low) & torch.isfinite(high)
            center = torch.where(finite, (low + high) / 2, torch.zeros_like(low))
            half = torch.where(finite, ((high - low) / 2).clamp_min(1e-6), torch.ones_like(low))
            self.register_buffer("act_center", center, persistent=False)
            self.register_buffer("act_half", half, persistent=False)
        z_dim = config.stoch * config.classes
        self.feat_dim = config.deter + z_dim
        self.encoder = Encoder(spec.resolution, config.channels)
        self.h0 = nn.Parameter(torch.zeros(config.deter))  # learned initial deterministic state
        self.img_in = nn.Sequential(nn.Linear(z_dim + self.act_dim, config.hidden), nn.LayerNorm(config.hidden), nn.SiLU())
        self.gru = nn.GRUCell(config.hidden, config.deter)
        self.img_out = _mlp(config.deter, config.hidden, z_dim)  # prior logits
        self.obs_out = _mlp(config.deter + self.encoder.embed_dim, config.hidden, z_dim)  # posterior logits
        self.decoder = Decoder(self.feat_dim, self.encoder)
        self.reward_head = _mlp(self.feat_dim, config.hidden, 1)  # symlog(reward)
        self.continue_head = _mlp(self.feat_dim, config.hidden, 1)  # logit of 1 - terminated
        self.apply(_init)

    # -- pieces ---------------------------------------------------------------------------------
    def action_input(self, action: Tensor) -> Tensor:
        """(B,) int or (B, dim) float -> (B, act_dim) float: one-hot, or scaled to [-1, 1] by the bounds."""
        if self.continuous:
            return ((action.float() - self.act_center) / self.act_half).clamp(-1, 1)
        return F.one_hot(action.long(), self.act_dim).float()

    def initial(self, batch: int) -> tuple[Tensor, Tensor]:
        """h (B, deter), z (B, stoch, classes) before the first frame: learned h0, all-zero z."""
        h = torch.tanh(self.h0).expand(batch, -1)
        z = h.new_zeros(batch, self.stoch, self.classes)
        return h, z

    def logits(self, raw: Tensor) -> Tensor:
        """Raw head output (B, stoch*classes) -> log-probs (B, stoch, classes) with unimix."""
        probs = raw.view(-1, self.stoch, self.classes).float().softmax(-1)
        probs = (1 - self.unimix) * probs + self.unimix / self.classes
        return probs.log()

    def sample(self, logits: Tensor, generator: torch.Generator | None) -> Tensor:
        """One-hot samples (B, stoch, classes), straight-through gradients to the probabilities."""
        probs = logits.exp()
        gen_device = generator.device if generator is not None else probs.device
        u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=gen_device).to(probs.device)
        index = (probs.cumsum(-1) < u).sum(-1).clamp_max(self.classes - 1)  # inverse CDF
        onehot = F.one_hot(index, self.classes).to(probs.dtype)
        return onehot + probs - probs.detach()

    def img_step(self, h: Tensor, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Advance the GRU by one action: -> (h_t (B, deter), prior log-probs (B, stoch, classes))."""
        x = self.img_in(torch.cat([z.flatten(1), self.action_input(action)], -1))
        h = self.gru(x, h)
        return h, self.logits(self.img_out(h))

    def posterior(self, h: Tensor, embed: Tensor) -> Tensor:
        return self.logits(self.obs_out(torch.cat([h, embed], -1)))

    def feature(self, h: Tensor, z: Tensor) -> Tensor:
        return torch.cat([h, z.flatten(1)], -1)

    # -- sequences ------------------------------------------------------------------------------
    def observe(
        self, frames: Tensor, actions: Tensor, generator: torch.Generator | None,
        h: Tensor | None = None, z: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Filter a sequence with the posterior.

        frames (B, T, 3, R, R) in [-1, 1]; actions (B, T) or (B, T, dim), actions[:, t] led into frames[:, t].
        Returns h (B, T, deter), z (B, T, stoch, classes), prior and post log-probs (B, T, stoch, classes).
        """
        b, t = frames.shape[:2]
        embed = self.encoder(frames.flatten(0, 1)).view(b, t, -1)  # (B, T, E)
        if h is None or z is None:
            h, z = self.initial(b)
        hs, zs, priors, posts = [], [], [], []
        for i in range(t):
            h, prior = self.img_step(h, z, actions[:, i])
            post = self.posterior(h, embed[:, i])
            z = self.sample(post, generator)
            hs.append(h), zs.append(z), priors.append(prior), posts.append(post)
        return {"h": torch.stack(hs, 1), "z": torch.stack(zs, 1), "prior": torch.stack(priors, 1), "post": torch.stack(posts, 1)}
