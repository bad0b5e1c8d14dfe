"""Learned transport: the newest frame moved to where the next frame will have it, the origin of the residual.

Most of what changes from one frame to the next is content that moves: a view that scrolls, a ball that
flies, a sprite that walks. A U-Net that must redraw moved content from its features learns it slowly and
draws it blurred; a prediction made of shifted copies of the newest frame is sharp from the first step.
So, as the dynamic-filter video predictors do (Finn et al. 2016's CDNA, Jia et al. 2016's dynamic filter
networks), a small network reads the context and the actions and gives, for every `patch` x `patch` block
of the frame, a softmax over the (2r + 1)^2 displacements within `radius` r pixels; the newest frame,
shifted by each displacement (edges repeated) and mixed with those weights, is the transported frame.
A softmax over candidate shifts learns where a flow field would not: every candidate's error is seen at
once, so even a large displacement gets a gradient, and a flat region (where any shift is right) costs
nothing. Pixels brought in from beyond the frame's edge are unknown: `move` also returns, per pixel, the
share of its weight that came from inside the frame, which the denoiser sees beside the moved frame
(where it is low, new content must be drawn).

A global transport (`transport_global`) gives the whole frame one displacement, as a camera moves a view. Read
from the frames, it also follows what moves inside them (on a blank background the best frame-wide shift is a
ball's); read from the keys alone (`transport_keys_only`, the `small` preset's) and scored by the error of the one
move play makes (`transport_score: expected`), it learns each key's move where the keys move the view and 'stay'
where they do not, and leaves what moves inside the frame to the U-Net. With `transport_gate` (also the preset's)
the frames say whether the keys' move happens: a move into a wall leaves the view where it was.

The transport net is trained by its own loss, the mean squared error of the transported frame against the
true next frame (`DiffusionConfig.transport_loss`); the denoiser's target takes it as a constant.

Shapes: context (B, K, 3, H, W) in [-1, 1]; actions (B, K+1) or (B, K+1, dim); weights (B, (2r+1)^2, H/p, W/p),
displacement (dy, dx) at index (dy + r) * (2r + 1) + dx + r.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from playworld.models.interface import WorldSpec
from playworld.models.nn import ActionEmbedding, ActionScale, ResBlock

# the keys' logits are a table (or a linear map) read at this gain: Adam moves each entry by about the learning rate a
# step, so at 1e-3 a logit read at gain 1 moves by about 1 in the ~1,000 steps of 10 CPU-minutes, too little to leave
# 'stay' (a linear map of a 64-wide condition moves each logit through 64 weights at once). At 16 the keys of both
# explorer seeds measured learned their moves (docs/results.md, `tkt`)
KEY_GAIN = 16.0


class Transport(nn.Module):
    def __init__(self, spec: WorldSpec, radius: int, patch: int, channels: int, action_dim: int, groups: int,
                 hard: bool = False, hard_always: bool = False, edge: str = "replicate", flow: bool = False,
                 remainder: bool = False, global_: bool = False, action_logits: bool = False, warp: str = "bilinear",
                 position: bool = False, keys_only: bool = False, expected: bool = False, gate: bool = False):
        super().__init__()
        if gate and not keys_only:
            raise ValueError("the transport's gate says whether the keys' move happens: it needs keys_only")
        self.gate = bool(gate)  # keys_only: the frames say how likely the keys' move is to happen (not blocked)
        if keys_only and not global_:
            raise ValueError("a transport read from the keys alone moves the frame as one: it needs global")
        if expected and not (hard_always or flow):
            raise ValueError("the expected score trains the one move play makes: it needs hard_always or flow")
        self.keys_only = bool(keys_only)  # the move read from the actions alone, not from the frames
        self.expected = bool(expected)  # the own loss: the squared error expected under the weights, not the mixture's
        if position and not global_:
            raise ValueError("the transport's position readout gives the frame one move: it needs global")
        if warp not in ("bilinear", "fourier"):
            raise ValueError(f"unknown transport warp {warp!r}")
        if warp == "fourier" and not (flow and global_):
            raise ValueError("the Fourier warp shifts the whole frame by one displacement: it needs flow and global")
        self.fourier = warp == "fourier"  # flow: the frame shifted in the Fourier domain (sharp) instead of resampled
        self.global_ = bool(global_)  # one displacement for the whole frame (the blocks' logits averaged)
        if flow and (hard or hard_always):
            raise ValueError("transport flow and hard are two ways to move: choose one")
        if remainder and not hard_always:
            raise ValueError("the transport's remainder is what a whole-pixel move leaves out: it needs hard_always")
        self.remainder = bool(remainder)  # also return each block's expected less its most likely displacement
        self.planes = 3 if remainder else 1  # the side planes beside the moved frame: inside share (+ dy, dx remainder)
        self.flow = bool(flow)  # training and play: each block warped by its expected displacement (sub-pixel)
        if edge not in ("replicate", "zeros"):
            raise ValueError(f"unknown transport edge {edge!r}")
        self.edge = edge  # what is moved in from beyond the frame: its edge repeated, or 0 (mid-grey)
        self.hard = bool(hard)  # outside training, move each block by its most likely displacement alone
        self.hard_always = bool(hard_always)  # in training too (the transport's own loss then uses `both`)
        if spec.resolution % patch:
            raise ValueError(f"transport_patch {patch} must divide the frame size {spec.resolution}")
        self.radius, self.patch = int(radius), int(patch)
        self.spec_blocks = spec.resolution // self.patch  # blocks along each side
        k, c, n = spec.context, spec.channels, (2 * radius + 1) ** 2
        space = spec.action_space
        self.action_embed = None  # the network's condition (a transport of the keys alone reads the newest key only)
        if not keys_only or gate:
            self.action_embed = ActionEmbedding(
                space.kind, space.n, space.dim, space.low, space.high, steps=k + 1, emb=action_dim, out_dim=channels
            )
        if self.keys_only:  # the camera the keys move: logits over the displacements from the newest action alone
            # (a row per discrete key, a linear map of a continuous action scaled to [-1, 1]). From every action in
            # the context, as the transport network reads them, a key seen rarely (a noop after a run of moves)
            # took the move of the keys before it, and one key's logits could settle on a shift next to the right one
            # (explorer, seed 0: 'right' moved 3 px, not 4) where they share weights with the others
            self.continuous = space.kind == "continuous"
            if self.continuous:
                self.scale = ActionScale(space.low, space.high)
                self.action_logits = nn.Linear(space.dim, n)
                self.action_logits.weight.data.zero_()
                table = self.action_logits.bias
            else:
                self.action_logits = nn.Embedding(max(space.n, 1), n)
                table = self.action_logits.weight
            with torch.no_grad():  # 'no displacement' the most likely at the start, the weight spread over every shift
                table.zero_()
                table[..., n // 2] = 1.0 / KEY_GAIN
            self.position = None
            if not self.gate:
                return
        self.stem = nn.Conv2d(k * c * patch * patch, channels, 3, padding=1)
        # a block that looks around (attention over the whole block grid: is the move blocked? where does it go?)
        self.blocks = nn.ModuleList(
            [ResBlock(channels, channels, channels, groups, attention=True), ResBlock(channels, channels, channels, groups, False)]
        )
        if self.gate:  # a logit read from the whole block grid, each block by where it is (the agent facing a wall),
            # one readout per key (a discrete key picks its row; a continuous action weighs one row per dimension, a
            # last row its bias): which block decides that a move is blocked depends on the key (the wall on the left
            # stops 'left'), a choice a linear readout shared by every key could make only through the blocks' adaptive
            # norms (explorer, 10 CPU-min: PSNR at step 8 22.42 against 20.97 for one shared readout; docs/results.md)
            rows = space.dim + 1 if self.continuous else max(space.n, 1)
            self.gate_out = nn.Linear(channels * self.spec_blocks**2, rows)
            with torch.no_grad():  # the keys' move at the start (sigmoid(3) = 0.95), as without the gate
                self.gate_out.weight.zero_()
                self.gate_out.bias.zero_()
                self.gate_out.bias[-1 if self.continuous else slice(None)] = 3.0
            return
        self.out = nn.Conv2d(channels, n, 1)
        # the keys' own say over the move, beside what the blocks read: a linear map of the actions' embedding to a logit
        # per displacement, the same for every block (a key's usual move learned as a prior in a few steps, where
        # otherwise the key reaches the logits only through the blocks' adaptive norms)
        self.action_logits = nn.Linear(channels, n) if action_logits else None
        # global: beside the blocks' averaged logits, a linear map of the whole block grid, each block read by where it
        # is: what decides the frame's move may sit at one place (the agent facing a wall), and in a mean over the
        # blocks one block's say is one part in (H/p)^2
        grid = (spec.resolution // patch) ** 2
        self.position = nn.Linear(channels * grid, n) if position else None
        with torch.no_grad():  # start as the identity: (almost) all weight on 'no displacement'
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()
            # global: 'no displacement' only the most likely at the start (the hard move is the identity) with the
            # weight spread over every shift, so the mixture's loss reaches all of them: one frame-wide choice
            # started at 4.0 learns the camera's move too slowly to commit to it (a half-moved mixture after 850 steps)
            self.out.bias[n // 2] = 1.0 if self.global_ else 4.0
            for extra in (self.action_logits, self.position):  # no say at the start: the transport as without them
                if extra is not None:
                    extra.weight.zero_()
                    extra.bias.zero_()

    def weights(self, context: Tensor, actions: Tensor) -> Tensor:
        """Softmax weights over the displacements, (B, (2r+1)^2, H/patch, W/patch)."""
        cond = None if self.action_embed is None else self.action_embed(actions)
        if self.keys_only:
            keys, happens = self._keys(context, actions, cond)
            return self._gated(keys, happens)
        h = self.stem(F.pixel_unshuffle(context.flatten(1, 2), self.patch))
        for block in self.blocks:
            h = block(h, cond)
        logits = self.out(h).float()
        if self.global_:  # the camera's move: every block votes alike, one displacement for the frame (a vote weighted
            # by a learned say follows what moves most, a ball, and moves the whole view with it: physics/uniform 4.1x)
            pooled = logits.mean(dim=(2, 3), keepdim=True)
            if self.position is not None:
                pooled = pooled + self.position(h.flatten(1)).float()[:, :, None, None]
            logits = pooled.expand_as(logits)
        if self.action_logits is not None:
            logits = logits + self.action_logits(cond).float()[:, :, None, None]
        return logits.softmax(dim=1)

    def _keys(self, context: Tensor, actions: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """keys_only: the softmax over the displacements the keys say (B, N), and with `gate` the logit of the
        probability that their move happens, read from the frames (B, 1); else None."""
        newest = actions[:, -1]
        scaled = self.scale(newest) if self.continuous else None
        if self.continuous:
            keys = self.action_logits(scaled)
        else:
            keys = self.action_logits(newest.long())
        keys = (KEY_GAIN * keys.float()).softmax(dim=1)
        if not self.gate:
            return keys, None
        h = self.stem(F.pixel_unshuffle(context.flatten(1, 2), self.patch))
        for block in self.blocks:
            h = block(h, cond)
        rows = self.gate_out(h.flatten(1)).float()
        if self.continuous:  # the dimensions' rows weighed by the scaled action, plus the bias row
            return keys, (rows[:, :-1] * scaled).sum(1, keepdim=True) + rows[:, -1:]
        return keys, rows.gather(1, newest.long().view(-1, 1))

    def _gated(self, keys: Tensor, happens: Tensor | None) -> Tensor:
        """The keys' weights (B, N), or with the gate's logit `happens` (B, 1) the keys' most likely move where the
        gate says it happens (logit > 0) and 'no displacement' where not (one-hot), as every block's weights
        (B, N, H/p, W/p)."""
        if happens is not None:
            move = keys.argmax(dim=1).masked_fill(happens.squeeze(1) <= 0, keys.shape[1] // 2)
            keys = F.one_hot(move, keys.shape[1]).to(keys.dtype)
        grid = self.spec_blocks
        return keys[:, :, None, None].expand(-1, -1, grid, grid)

    def gate_loss(self, newest: Tensor, keys: Tensor, happens: Tensor, target: Tensor) -> Tensor:
        """The gate's own loss: a classifier between the keys' most likely move and 'no displacement', each frame's
        label the one nearer the next frame (`target`), its binary cross-entropy weighted by how much nearer (the
        two squared errors' difference, so a frame where both are the same, a noop or an untrained key that says
        'stay', counts nothing, and the loss is in the units of an MSE).

        Scored as the expected error of a mixture of the gate's two outcomes (or of the keys' spread weights and
        'stay') the gate is linear in the error: while the keys are untrained every shift they spread their weight
        over is worse than 'stay', the gate is pushed shut, and a saturated sigmoid has no gradient left to reopen
        it (explorer: 'stay' on all 520 windows, docs/results.md `tkg2`). Against the most likely move it starts
        indifferent (the untrained keys' most likely move is 'stay'), and the cross-entropy's gradient does not
        vanish where the gate is confidently wrong."""
        with torch.no_grad():
            moved = self.scored(newest, most_likely(self._gated(keys, None)))
            err_move = (moved - target.float()).pow(2).flatten(1).mean(1)
            err_stay = (newest.float() - target.float()).pow(2).flatten(1).mean(1)
            label = (err_move < err_stay).to(happens.dtype)
            weight = (err_move - err_stay).abs()
        return (weight * F.binary_cross_entropy_with_logits(happens.squeeze(1), label, reduction="none")).mean()

    def move(self, frame: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """frame (B, C, H, W) shifted by every displacement and mixed by `weights` -> the moved frame
        (B, C, H, W) and the share of each pixel's weight from inside the frame (B, 1, H, W).
        Displacement (dy, dx) fills pixel (y, x) from (y + dy, x + dx); beyond the frame, its edges are repeated
        (`edge` 'replicate') or 0 ('zeros')."""
        r = self.radius
        padded = F.pad(frame.float(), (r, r, r, r), mode="replicate") if self.edge == "replicate" else F.pad(frame.float(), (r, r, r, r))
        ones = F.pad(torch.ones_like(frame[:, :1], dtype=torch.float32), (r, r, r, r))
        if self.global_:  # every block has the same weights: one shift of the whole frame (half the time of `_mix`)
            return _mix_global(padded, weights), _mix_global(ones, weights)
        return _mix(padded, weights, self.patch), _mix(ones, weights, self.patch)

    def forward(self, context: Tensor, actions: Tensor, newest: Tensor) -> tuple[Tensor, Tensor]:
        """The newest frame (B, 3, H, W) moved to the next step, given the context and the K+1 actions, and
        the share of each pixel that came from inside the frame (B, 1, H, W)."""
        weights = self.weights(context, actions)
        if self.flow:
            return self.warp(newest, weights)
        if self.hard_always or (self.hard and not self.training):  # one displacement per block: moved content stays sharp
            return self._move_hard(newest, weights)
        return self.move(newest, weights)

    def _move_hard(self, frame: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """frame moved by each block's most likely displacement -> the moved frame and its side planes: the inside
        share, and with `remainder` each block's expected displacement less the one it was moved by (dy, dx in
        pixels, (B, 2, H, W)): the sub-pixel part of the motion that the whole-pixel move left for the denoiser."""
        hard = most_likely(weights)
        moved, inside = self.move(frame, hard)
        if not self.remainder:
            return moved, inside
        left = torch.stack(expected_displacement(weights), 1) - torch.stack(expected_displacement(hard), 1)
        left = left.repeat_interleave(self.patch, 2).repeat_interleave(self.patch, 3)
        return moved, torch.cat([inside, left.to(inside.dtype)], dim=1)

    def warp(self, frame: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """frame (B, C, H, W) warped by each block's expected displacement under `weights` (bilinear, so a speed of
        1.5 pixels a step stays 1.5, where the most likely shift rounds it to a whole pixel and the mixture blurs
        it) -> the moved frame and the share of each pixel from inside the frame (B, 1, H, W)."""
        _, _, h, w = frame.shape
        dy, dx = expected_displacement(weights)  # (B, h/p, w/p) each
        if self.fourier:
            return self._fourier_shift(frame, dy[:, 0, 0], dx[:, 0, 0])
        dy = dy.repeat_interleave(self.patch, 1).repeat_interleave(self.patch, 2)  # (B, H, W)
        dx = dx.repeat_interleave(self.patch, 1).repeat_interleave(self.patch, 2)
        ys = torch.arange(h, device=frame.device, dtype=torch.float32).view(1, h, 1)
        xs = torch.arange(w, device=frame.device, dtype=torch.float32).view(1, 1, w)
        # pixel (y, x) reads (y + dy, x + dx); grid_sample's coordinates run from -1 to 1 over pixel edges
        sample = torch.stack([(xs + dx + 0.5) / w * 2 - 1, (ys + dy + 0.5) / h * 2 - 1], dim=-1)  # (B, H, W, 2)
        pad = "border" if self.edge == "replicate" else "zeros"
        moved = F.grid_sample(frame.float(), sample, mode="bilinear", padding_mode=pad, align_corners=False)
        ones = torch.ones_like(frame[:, :1], dtype=torch.float32)
        inside = F.grid_sample(ones, sample, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved, inside

    def _fourier_shift(self, frame: Tensor, dy: Tensor, dx: Tensor) -> tuple[Tensor, Tensor]:
        """frame (B, C, H, W) shifted by (dy, dx) pixels (B,) each, pixel (y, x) reading (y + dy, x + dx), by a phase
        ramp in the Fourier domain -> the moved frame and the share of each pixel from inside the frame (B, 1, H, W).

        A bilinear warp by a fractional shift averages neighbouring pixels: repeated every step of play it blurs the
        frame, and a model reads a soft ball as a fast one (physics/uniform: the ball sped up 16% by step 16, 3.7x the
        velocity floor). A Fourier shift keeps every frequency's amplitude (nothing blurs; a sharp edge rings a
        little at a fractional shift), and shifts add: n steps of 0.6 px are one shift of 0.6n px, exact at whole
        pixels. The frame is padded by `radius` (the edge repeated or 0) first, so a shift within the radius never
        wraps the far edge into view."""
        r = self.radius
        _, _, h, w = frame.shape
        mode = "replicate" if self.edge == "replicate" else "constant"
        padded = F.pad(frame.float(), (r, r, r, r), mode=mode)
        hp, wp = h + 2 * r, w + 2 * r
        fy = torch.fft.fftfreq(hp, device=frame.device).view(1, hp, 1)
        fx = torch.fft.rfftfreq(wp, device=frame.device).view(1, 1, wp // 2 + 1)
        ramp = torch.exp(2j * math.pi * (fy * dy.float().view(-1, 1, 1) + fx * dx.float().view(-1, 1, 1)))  # (B, hp, wp/2+1)
        moved = torch.fft.irfft2(torch.fft.rfft2(padded) * ramp[:, None], s=(hp, wp))[..., r : r + h, r : r + w]
        ys = torch.arange(h, device=frame.device, dtype=torch.float32).view(1, h, 1) + dy.float().view(-1, 1, 1)
        xs = torch.arange(w, device=frame.device, dtype=torch.float32).view(1, 1, w) + dx.float().view(-1, 1, 1)
        # the share of each pixel's read that lies inside the frame: the overlap of [y+dy, y+dy+1) with [0, h), per axis
        inside = ((ys + 1).clamp(0, h) - ys.clamp(0, h)) * ((xs + 1).clamp(0, w) - xs.clamp(0, w))
        return moved, inside[:, None]

    def scored(self, frame: Tensor, weights: Tensor) -> Tensor:
        """The mixture (B, C, H, W) the transport's own loss scores: `move`'s, or, for a global transport with zero
        edges, the mixture of only the shifts that know each pixel. What a shift brings in from beyond the frame is
        unknown, not mid-grey: scored as 0, the true move loses to 'stay' on every frame whose new strip continues
        the ground (most of them), and the one frame-wide choice hedges between the two (explorer: half-moved after
        850 steps). Used where the scored mixture is not the denoiser's origin (`both`: transport_hard_train or
        flow); a soft transport's mixture is its origin too, and is scored as it is."""
        mixed, inside = self.move(frame, weights)
        if self.global_ and self.edge == "zeros":
            mixed = mixed / inside.clamp_min(1e-3)
        return mixed

    def spread(self, frame: Tensor, weights: Tensor, mixed: Tensor) -> Tensor:
        """The mean over pixels of the variance of the shifted frames under `weights` (what `scored` counts, so with a
        global transport's zero edges only the shifts that know a pixel): added to the MSE of the mixture `mixed`, it
        makes the squared error expected when one displacement is drawn from the weights, E_w[(x_d - t)^2] = (E_w x_d -
        t)^2 + Var_w x_d. The mixture's MSE alone is lowest for a blur: where objects move every way (a ball on a blank
        background), a spread of shifts around the speeds seen, whose most likely shift moves the frame in some
        direction every step. The expected error is lowest for the one shift that is best on average ('stay', there)."""
        return (self.scored(frame.float() ** 2, weights) - mixed**2).clamp_min(0).mean()

    def both(self, context: Tensor, actions: Tensor, newest: Tensor, target: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Training with `hard_always` or `flow`: the mixture (B, 3, H, W), which the transport's own loss scores (its
        gradient reaches every displacement), and, without gradient, the frame moved by each block's most likely
        displacement (or warped by its expected one) with its inside share, the origin the denoiser learns to
        continue from as it will in play; fourth, what the own loss adds to the mixture's MSE against the next frame:
        with `expected` the `spread`, and with `gate` (given `target`) the gate's own loss (`gate_loss`; else 0).

        With `gate` the mixture is the keys' alone: scored through the gate, the keys' weights would learn only as
        fast as the gate lets their move through, and a gate that closes early (every shift the untrained keys
        spread their weight over is worse than 'stay') never opens again. The gate is scored on its own (`gate_loss`),
        the keys' weights taken as given."""
        if self.gate:
            keys, happens = self._keys(context, actions, self.action_embed(actions))  # (the gate has the embedding)
            keys_weights = self._gated(keys, None)
            mixed = self.scored(newest, keys_weights)
            spread = self.spread(newest, keys_weights, mixed)
            if target is not None:
                spread = spread + self.gate_loss(newest, keys.detach(), happens, target)
            with torch.no_grad():
                moved, inside = self._move_hard(newest, self._gated(keys, happens))
            return mixed, moved, inside, spread
        weights = self.weights(context, actions)
        mixed = self.scored(newest, weights)
        spread = self.spread(newest, weights, mixed) if self.expected else mixed.new_zeros(())
        with torch.no_grad():
            moved, inside = self.warp(newest, weights) if self.flow else self._move_hard(newest, weights)
        return mixed, moved, inside, spread


def expected_displacement(weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weights (B, (2r+1)^2, h, w) over the displacements -> each block's expected (dy, dx) in pixels, (B, h, w) each."""
    b, n2, h, w = weights.shape
    n = math.isqrt(n2)
    offsets = torch.arange(n, device=weights.device, dtype=weights.dtype).view(1, n, 1, 1) - (n - 1) // 2
    grid = weights.view(b, n, n, h, w)  # (B, dy, dx, h, w)
    return (grid.sum(2) * offsets).sum(1), (grid.sum(1) * offsets).sum(1)


def most_likely(weights: Tensor) -> Tensor:
    """Softmax weights (B, N, h, w) -> one-hot weights on each block's most likely displacement."""
    return F.one_hot(weights.argmax(dim=1), weights.shape[1]).permute(0, 3, 1, 2).to(weights.dtype)


def _mix(padded: Tensor, weights: Tensor, patch: int) -> Tensor:
    """Each patch x patch block of a frame padded by r, mixed over its (2r+1)^2 shifts -> (B, C, H, W).

    One grouped convolution: every (block, channel) is a group whose input is the block with its r-pixel
    border and whose kernel is the block's weights, so the (2r+1)^2 shifted copies of the frame are never
    stored (5x faster than unfolding them, forward and backward, at 64 px and r = 4)."""
    b, c, hp, wp = padded.shape
    n = math.isqrt(weights.shape[1])
    r, nh, nw, side = (n - 1) // 2, weights.shape[2], weights.shape[3], patch + n - 1
    windows = F.unfold(padded, side, stride=patch)  # (B, C * side^2, nh * nw): each block with its border
    windows = windows.view(b, c, side, side, nh * nw).permute(0, 4, 1, 2, 3).reshape(1, -1, side, side)
    kernels = weights.permute(0, 2, 3, 1).reshape(b * nh * nw, 1, n, n).repeat_interleave(c, dim=0)
    out = F.conv2d(windows, kernels, groups=b * nh * nw * c)  # (1, B * blocks * C, patch, patch)
    return out.view(b, nh, nw, c, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(b, c, hp - 2 * r, wp - 2 * r)


def _mix_global(padded: Tensor, weights: Tensor) -> Tensor:
    """A frame padded by r, mixed over its (2r+1)^2 shifts by one set of weights per example (the first block's of
    `weights` (B, (2r+1)^2, h, w), which a global transport gives every block) -> (B, C, H, W): one grouped
    convolution whose groups are the examples' channels, the frame never cut into blocks."""
    b, c, hp, wp = padded.shape
    n = math.isqrt(weights.shape[1])
    kernels = weights[:, :, 0, 0].reshape(b, 1, n, n).repeat_interleave(c, dim=0)
    out = F.conv2d(padded.reshape(1, b * c, hp, wp), kernels, groups=b * c)
    return out.view(b, c, hp - n + 1, wp - n + 1)
