"""Loader throughput next to what a `small` training step consumes; prints JSON.

    .venv/bin/python bench/loader.py [--data DATA] [--seconds 3]

Without --data it collects a temporary explorer dataset (40 episodes x 200 steps, 64x64).
The consumer is the registered `diffusion` family with the `small` preset's model options when
it is available, else a small conv U-Net stand-in; its rate is windows/s = batch / (forward +
backward time) on this CPU. The loader should deliver at least 10x that (`headroom` >= 10).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.data.windows import make_loader

BATCH, K, F = 32, 4, 1


def loader_rate(ds: Dataset, num_workers: int, seconds: float) -> dict:
    loader = make_loader(ds, K, F, BATCH, split="train", seed=0, num_workers=num_workers)
    for _ in range(5):  # warm-up: worker start, page cache, episode cache
        next(loader)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        next(loader)
        n += 1
    dt = time.perf_counter() - t0
    del loader  # stops the workers
    return {"num_workers": num_workers, "batches_per_s": round(n / dt, 1), "windows_per_s": round(n * BATCH / dt, 1)}


class _StandIn(nn.Module):
    """A small conv U-Net: (K+1)*3 channels in (context + noisy target), 3 out, 64 -> 16 -> 64."""

    def __init__(self, c: int = 64):
        super().__init__()
        act = nn.SiLU()
        self.down = nn.Sequential(nn.Conv2d(3 * (K + 1), c, 3, padding=1), act, nn.Conv2d(c, c, 3, padding=1), act)
        self.mid = nn.Sequential(nn.Conv2d(c, 2 * c, 3, 2, 1), act, nn.Conv2d(2 * c, 2 * c, 3, 2, 1), act,
                                 nn.Conv2d(2 * c, 2 * c, 3, padding=1), act,
                                 nn.ConvTranspose2d(2 * c, 2 * c, 4, 2, 1), act, nn.ConvTranspose2d(2 * c, c, 4, 2, 1), act)
        self.up = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), act, nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, x):  # (B, 3(K+1), H, W) -> (B, 3, H, W)
        h = self.down(x)
        return self.up(torch.cat([h, self.mid(h)], 1))


def _consumer(ds: Dataset):
    """(name, step(batch) -> None): one forward + backward + optimizer step of the training model."""
    try:
        import yaml

        from playworld.models import get_family
        from playworld.models.interface import WorldSpec

        family = get_family("diffusion")
        preset = Path(__import__("playworld").__file__).parent / "configs" / "small.yaml"
        data = yaml.safe_load(preset.read_text()) if preset.exists() else {}
        overrides = ((data or {}).get("model") or {}).get("diffusion") or {}
        config = family.make_config(overrides)
        spec = WorldSpec(resolution=ds.resolution, action_space=ds.action_space, context=K, fps=ds.fps, world=ds.world)
        net = family.build(config, spec)
        opt = torch.optim.AdamW(net.parameters(), 1e-4)
        generator = torch.Generator().manual_seed(0)

        def step(batch):
            loss, _ = family.loss(net, batch, config, 0, generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        name = f"diffusion family, small preset model ({sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params)"
        return name, step
    except Exception as e:  # the family may not be registered yet: time the stand-in instead
        net = _StandIn()
        opt = torch.optim.AdamW(net.parameters(), 1e-4)

        def step(batch):
            x = torch.cat([batch.context_frames.flatten(1, 2), batch.future_frames[:, 0]], 1).float() / 127.5 - 1
            loss = (net(x) - x[:, -3:]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return f"conv U-Net stand-in ({sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params; diffusion unavailable: {e})", step


def consumer_rate(ds: Dataset, steps: int = 3) -> dict:
    name, step = _consumer(ds)
    batch = next(make_loader(ds, K, F, BATCH, seed=1))
    step(batch)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step(batch)
    dt = (time.perf_counter() - t0) / steps
    return {"model": name, "step_s": round(dt, 3), "windows_per_s": round(BATCH / dt, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="dataset to read (default: collect a temporary explorer dataset)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds to time each loader setting")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.data is None:
            ds = collect("explorer", Path(tmp) / "explorer", 40, policy="random", seed=0, resolution=64, steps=200, progress=False)
        else:
            ds = Dataset(args.data)
        loaders = [loader_rate(ds, w, args.seconds) for w in (0, 2)]
        consumer = consumer_rate(ds)
        best = max(r["windows_per_s"] for r in loaders)
        print(json.dumps({
            "dataset": {"world": ds.world, "episodes": len(ds), "frames": ds.num_frames, "resolution": ds.resolution},
            "batch": BATCH, "context": K, "horizon": F, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loader": loaders, "training_step": consumer,
            "headroom": round(best / consumer["windows_per_s"], 1),
            "headroom_single_process": round(loaders[0]["windows_per_s"] / consumer["windows_per_s"], 1),
        }, indent=2))


if __name__ == "__main__":
    main()
