"""How well the keys' transport and its gate learn when a move happens, trained alone on a dataset, as JSON.

    python bench/diagnose/gate_probe.py DATA [--steps 1500] [--every 250] [--flag bumped] [--set model.X=V ...]

`model.transport_gate` (the `small` preset's) reads from the frames whether the keys' most likely move happens; its
loss does not depend on the U-Net, so the transport can be trained on its own in a few CPU-minutes instead of the
quality bench's ten per row: a quick instrument for changes to the gate. The transport is built as the `small`
preset's diffusion model builds it (with `--set` changes), trained with the preset's learning rate and batch on
random windows of DATA's train split (K real context frames, as teacher forcing sees them: no context noise or
blur), and every `--every` steps measured on test windows (random starts, up to `--windows`), raw and as the
exponential moving average training keeps (the preset's `ema_decay` and warm-up: the weights a run is played with):

- `keys_move`: the share of the frames led into by a key other than the first (explorer's noop) where the keys'
  most likely move is not 'stay' (the keys have learned to move the view);
- `stops_flagged`: the share of the frames with the state flag `--flag` (explorer's `bumped`: a move into an
  obstacle, where the view stays) on which the transport stays, the gate's recall;
- `stops_free`: the share of the other frames led into by a key other than the first on which it stays (a free
  move stopped: the whole view left a cell behind).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from playworld.data.store import Dataset
from playworld.eval.api import Windows
from playworld.models import get_family
from playworld.models.diffusion.transport import Transport
from playworld.models.interface import WorldSpec
from playworld.options import parse_sets
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.train.config import make_train_config
from playworld.train.loop import ema_update

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def windows(ds: Dataset, split: str, K: int, n: int, rng: np.random.Generator, flag: str) -> dict[str, torch.Tensor]:
    """Up to `n` windows of K context frames and the next one from `split` (random starts): frames (N, K+1, 3, H, W)
    uint8, actions (N, K+1[, dim]), flagged (N,) bool (the next frame's flag)."""
    index = [(int(ep), t) for ep in ds.episode_ids(split) for t in range(K, ds.episode_length(int(ep)))]
    if not index:
        raise SystemExit(f"no {split} episode of {ds.path} holds {K + 1} frames")
    index = [index[i] for i in rng.permutation(len(index))[:n]]
    b = Windows(ds, index, K, 1).batch()
    flags = {ep: ds.load_episode(ep).state.get(flag) for ep in {ep for ep, _ in index}}
    flagged = torch.tensor([flags[ep] is not None and bool(flags[ep][t]) for ep, t in index])
    return {"frames": torch.cat([b.context_frames, b.future_frames[:, :1]], 1),
            "actions": torch.cat([b.context_actions, b.future_actions[:, :1]], 1), "flagged": flagged}


def scaled(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, K+1, 3, H, W) -> the context (N, K, 3, H, W) and the next frame (N, 3, H, W) in [-1, 1]."""
    x = frames.float() / 127.5 - 1
    return x[:, :-1], x[:, -1]


def measure(t: Transport, test: dict[str, torch.Tensor]) -> dict[str, float]:
    """The shares of the module docstring, from the gate's logit and the keys' weights."""
    stays, keys_stay = [], []
    with torch.no_grad():
        for i in range(0, len(test["frames"]), 256):
            (ctx, _), acts = scaled(test["frames"][i : i + 256]), test["actions"][i : i + 256]
            keys, happens = t._keys(ctx, acts, None if t.action_embed is None else t.action_embed(acts))
            still = keys.argmax(1) == keys.shape[1] // 2
            keys_stay.append(still)
            stays.append(still | (happens.squeeze(1) <= 0) if happens is not None else still)
    stay, keys_still = torch.cat(stays), torch.cat(keys_stay)
    newest = test["actions"][:, -1]
    keyed = newest.flatten(1).abs().sum(1) > 0 if newest.is_floating_point() else newest != 0
    flagged = test["flagged"]

    def share(x: torch.Tensor, m: torch.Tensor) -> float | None:
        return round(float(x[m].float().mean()), 4) if m.any() else None

    return {"keys_move": share(~keys_still, keyed), "stops_flagged": share(stay, flagged),
            "stops_free": share(stay, keyed & ~flagged)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a dataset with train and test splits (explorer: the flag `bumped`)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps")
    ap.add_argument("--every", type=int, default=250, help="steps between measurements")
    ap.add_argument("--flag", default="bumped", help="a state key marking the frames where the keys' move is stopped")
    ap.add_argument("--pool", type=int, default=12000, help="training windows held in memory")
    ap.add_argument("--windows", type=int, default=3000, help="test windows at most")
    ap.add_argument("--preset", default="small", help="the preset the transport and training settings come from")
    ap.add_argument("--set", action="append", default=[], metavar="model.KEY=VALUE",
                    help="change the preset's diffusion model or training (repeatable), e.g. model.transport_patch=4")
    args = ap.parse_args()
    common.start(args)
    if args.steps < 0 or args.every < 1:
        raise SystemExit("--steps must be >= 0 and --every >= 1")
    ds = Dataset(args.data)
    preset, sets = load_preset(args.preset), parse_sets(args.set)
    config = make_model_config(get_family("diffusion"), preset, sets["model"])
    if not (config.transport > 0 and config.transport_keys_only):
        raise SystemExit("the probe trains the keys' transport: set model.transport > 0 and model.transport_keys_only=true")
    K = resolve_context(preset, sets["model"].get("context"))
    cfg = make_train_config(preset, sets["train"], "diffusion")
    lr, batch = float(cfg.lr), int(cfg.batch_size)
    spec = WorldSpec(ds.resolution, ds.action_space, context=K, world=ds.world)
    rng = np.random.default_rng(args.seed)
    train, test = (windows(ds, split, K, n, rng, args.flag) for split, n in (("train", args.pool), ("test", args.windows)))
    t = get_family("diffusion").build(config, spec).transport  # the transport as the diffusion network builds it
    ema = AveragedModel(t, multi_avg_fn=ema_update(cfg.ema_decay, cfg.ema_warmup), use_buffers=True)  # as training does
    opt = torch.optim.Adam(t.parameters(), lr)
    curve = [{"step": 0, "raw": measure(t, test), "ema": measure(ema.module, test)}]
    started = time.process_time()
    for step in range(1, args.steps + 1):
        i = torch.randint(0, len(train["frames"]), (batch,))
        (ctx, nxt), acts = scaled(train["frames"][i]), train["actions"][i]
        mixed, _, _, extra = t.both(ctx, acts, ctx[:, -1], nxt)
        loss = F.mse_loss(mixed, nxt) + extra
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(t.parameters(), 1.0)
        opt.step()
        ema.update_parameters(t)
        if step % args.every == 0 or step == args.steps:
            curve.append({"step": step, "raw": measure(t, test), "ema": measure(ema.module, test)})
            print(f"gate_probe: step {step}: {curve[-1]}", file=sys.stderr, flush=True)
    common.report("gate_probe", {
        "data": args.data, "context": K, "sets": args.set, "gate": bool(config.transport_gate), "lr": lr, "batch": batch,
        "train_windows": len(train["frames"]), "test_windows": len(test["frames"]),
        "flagged_share": round(float(test["flagged"].float().mean()), 4), "train_cpu_s": round(time.process_time() - started, 1),
        "curve": curve,
    }, args)


if __name__ == "__main__":
    main()
