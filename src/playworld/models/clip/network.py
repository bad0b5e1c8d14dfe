"""The clip denoiser: diffusers' LatteTransformer3DModel over K context frames and T future frames at once.

    sequence   (B, K+T, C, H, W)  the K context frames (clean, or noised to a small timestep), then the T noisy future ones
    timesteps  (B, K+T)           each frame's own timestep (context: 0 or its context noise; future: the chunk's)
    actions    (B, K+T[, dim])    actions[:, i] led into frame i
    -> (B, K+T, C, H, W)          the scheduler's prediction (v, epsilon or the sample) for every frame

Latte (Ma et al. 2024) factorises space-time attention as VDM does: each layer is a spatial block
(attention among the patches of one frame) then a temporal block (attention among the frames at one
patch position). Its blocks, patch embedding and adaLN-single are diffusers' own, with its weights;
only the forward is written out here, because two things differ from diffusers' `forward`:

- every frame has its own timestep, so the context frames sit in the sequence as (almost) clean
  frames that the future ones attend to (in-context conditioning, as in diffusion forcing);
- every frame has its own condition, DiT's way: its timestep embedding plus an embedding of its
  action and of its role (context or future). It modulates that frame's tokens in every spatial block
  and in the output layer. diffusers' temporal block takes one modulation per sequence, so temporal
  blocks get the chunk's timestep, as in Latte; per-frame facts reach them through the tokens.

With the condition embedding's last layer zeroed (`zero_new_inputs`, what --init does) the network
computes exactly what the loaded transformer computes, frame timesteps given.
"""

from __future__ import annotations

import torch
from diffusers.models.transformers.latte_transformer_3d import LatteTransformer3DModel
from torch import Tensor, nn

from playworld.models.clip.config import ClipConfig
from playworld.models.interface import WorldSpec
from playworld.models.nn import ActionScale


def transformer_config(config: ClipConfig, spec: WorldSpec) -> dict:
    """The LatteTransformer3DModel arguments of a clip config (what a saved backbone's config.json must match)."""
    width = int(config.heads) * int(config.head_dim)
    return {
        "num_attention_heads": int(config.heads), "attention_head_dim": int(config.head_dim),
        "in_channels": spec.channels, "out_channels": spec.channels, "num_layers": int(config.layers),
        "sample_size": spec.resolution, "patch_size": int(config.patch), "activation_fn": config.activation,
        "norm_type": "ada_norm_single",  # adaLN-single: the timestep modulates every block (Latte-1, PixArt)
        "cross_attention_dim": width if config.caption_channels else None,
        "caption_channels": int(config.caption_channels) or 1,  # diffusers always builds the projection
        "video_length": spec.context + int(config.chunk),
    }


class FrameCondition(nn.Module):
    """Each frame's action and role (context or future) -> (B, F, width), added to its timestep embedding."""

    def __init__(self, spec: WorldSpec, emb: int, width: int):
        super().__init__()
        space = spec.action_space
        self.continuous = space.kind == "continuous"
        if self.continuous:
            self.scale = ActionScale(space.low, space.high)
            self.action = nn.Linear(space.dim, emb)
        else:
            self.action = nn.Embedding(max(space.n, 1), emb)
        self.role = nn.Embedding(2, emb)  # 0: context frame, 1: future frame
        self.mlp = nn.Sequential(nn.Linear(emb, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, actions: Tensor, context: int) -> Tensor:
        """actions (B, F) int64 or (B, F, dim) float; the first `context` frames are context."""
        f = actions.shape[1]
        a = self.action(self.scale(actions)) if self.continuous else self.action(actions.long())
        role = (torch.arange(f, device=actions.device) >= context).long()
        return self.mlp(a + self.role(role)[None])  # (B, F, width)

    def zero_output(self) -> None:
        """Zero the last layer, so the condition adds nothing until training moves it (--init)."""
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)


class ClipDenoiser(nn.Module):
    def __init__(self, config: ClipConfig, spec: WorldSpec):
        super().__init__()
        self.config, self.context = config, spec.context
        self.transformer = LatteTransformer3DModel(**transformer_config(config, spec))
        width = int(config.heads) * int(config.head_dim)
        if config.caption_channels:  # a text-to-video backbone: its cross-attention reads a learned caption
            self.caption = nn.Parameter(torch.zeros(1, int(config.caption_tokens), int(config.caption_channels)))
        else:  # no cross-attention: diffusers builds the caption projection anyway; unused, it stays (frozen) so
            self.caption = None  # that `transformer.save_pretrained` writes a folder diffusers (and --init) loads back
            self.transformer.caption_projection.requires_grad_(False)
        self.condition = FrameCondition(spec, int(config.action_dim), width)
        # ClipConfig.action_tokens: each frame's condition also added to its tokens, so the temporal blocks (whose
        # modulation is the chunk's timestep alone) see which action led into which frame; zero at the start
        self.action_tokens = nn.Linear(width, width) if config.action_tokens else None
        if config.latte_init:
            self._latte_init()
        self._zero_action_tokens()

    def _zero_action_tokens(self) -> None:
        if self.action_tokens is not None:  # starts (and, after --init, restarts) as the model without it
            nn.init.zeros_(self.action_tokens.weight)
            nn.init.zeros_(self.action_tokens.bias)

    def _latte_init(self) -> None:
        """Latte's and PixArt-alpha's initialisation (ClipConfig.latte_init): xavier-uniform linears with zero biases,
        the patch embedding as a linear, N(0, 0.02) timestep MLPs and output layer, so the output starts near 0."""
        tr = self.transformer
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        w = tr.pos_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(tr.pos_embed.proj.bias)
        emb = tr.adaln_single.emb.timestep_embedder
        for layer in (emb.linear_1, emb.linear_2, tr.adaln_single.linear, tr.proj_out):
            nn.init.normal_(layer.weight, std=0.02)

    def forward(self, sequence: Tensor, timesteps: Tensor, actions: Tensor) -> Tensor:
        """The prediction for every frame of `sequence`; see the module docstring for the shapes."""
        tr, p = self.transformer, int(self.config.patch)
        b, f, c, h, w = sequence.shape
        ph, pw = h // p, w // p
        x = tr.pos_embed(sequence.flatten(0, 1))  # (B*F, N, D): patches + 2-D sin-cos positions
        n, d = x.shape[1:]

        # per-frame condition: timestep embedding + action/role embedding (DiT's c = t + y)
        t_frame = tr.adaln_single.emb(timesteps.flatten(), None, None, batch_size=b * f, hidden_dtype=x.dtype)  # (B*F, D)
        frame_cond = self.condition(actions, self.context).flatten(0, 1)  # (B*F, D): action and role
        cond = t_frame + frame_cond
        if self.action_tokens is not None:
            x = x + self.action_tokens(frame_cond)[:, None].to(x.dtype)
        mod_spatial = tr.adaln_single.linear(tr.adaln_single.silu(cond))  # (B*F, 6D)
        t_chunk = tr.adaln_single.emb(timesteps[:, -1], None, None, batch_size=b, hidden_dtype=x.dtype)  # (B, D)
        mod_temporal = tr.adaln_single.linear(tr.adaln_single.silu(t_chunk)).repeat_interleave(n, dim=0)  # (B*N, 6D)
        caption = None
        if self.caption is not None:
            caption = tr.caption_projection(self.caption.to(x.dtype)).expand(b * f, -1, -1)  # (B*F, L, D)

        for i, (spatial, temporal) in enumerate(zip(tr.transformer_blocks, tr.temporal_transformer_blocks)):
            x = spatial(x, None, caption, None, mod_spatial, None, None)  # within each frame
            x = x.view(b, f, n, d).transpose(1, 2).reshape(b * n, f, d)  # (B*N, F, D): one sequence per patch
            if i == 0 and f > 1:
                x = x + tr.temp_pos_embed[:, :f].to(x.dtype)
            x = temporal(x, None, None, None, mod_temporal, None, None)  # across the frames
            x = x.view(b, n, f, d).transpose(1, 2).reshape(b * f, n, d)

        shift, scale = (tr.scale_shift_table[None] + cond[:, None]).chunk(2, dim=1)  # per frame, (B*F, 1, D)
        x = tr.proj_out(tr.norm_out(x) * (1 + scale) + shift)  # (B*F, N, p*p*C)
        x = x.view(b * f, ph, pw, p, p, c).permute(0, 5, 1, 3, 2, 4)  # (B*F, C, ph, p, pw, p)
        return x.reshape(b, f, c, h, w).float()

    def zero_new_inputs(self) -> None:
        """Make the inputs a pretrained transformer lacks (actions, roles) start at zero (--init)."""
        self.condition.zero_output()
        self._zero_action_tokens()
