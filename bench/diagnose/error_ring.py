"""Where a model's rollout error lies: the share of squared error in the frame's outer ring, step by step, as JSON.

    python bench/diagnose/error_ring.py RUN DATA [--ring 8] [--horizon 16] [--windows 32]

The model rolls out over test windows of DATA (at most 2 non-overlapping per episode, the quality
bench's windows) with the recorded actions. At each reported step: the share of the pooled squared
error that lies within `ring` pixels of the frame's edge, beside the share of pixels there (what an
error spread evenly would give), and the same for copy-last-frame. In a world whose view scrolls
(explorer), ground the view moves onto enters at the edge, shown by no context frame: a share far
above the ring's area says the error is new ground, which no better next-frame predictor can fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import playworld
from playworld.data.store import Dataset
from playworld.eval.api import EvalContext

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

STEPS = (1, 4, 8, 16, 32, 64)


def ring_share(sq: torch.Tensor, ring: int) -> torch.Tensor:
    """sq (N, H, C, R, R) squared errors -> the share of each step's total within `ring` pixels of the edge (H,)."""
    inner = torch.zeros(sq.shape[-2:], dtype=torch.bool)
    inner[ring:-ring, ring:-ring] = True
    total = sq.sum(dim=(0, 2, 3, 4))
    return sq[..., ~inner].sum(dim=(0, 2, 3)) / total.clamp_min(1e-12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=2, seed=0)])
    ap.add_argument("run", help="a run folder written by `playworld train`")
    ap.add_argument("data", help="a dataset with a test split (not the one the run trained on, for a fair figure)")
    ap.add_argument("--ring", type=int, default=8, help="width in pixels of the edge band")
    ap.add_argument("--horizon", type=int, default=16, help="rollout steps")
    ap.add_argument("--windows", type=int, default=32, help="test windows at most")
    args = ap.parse_args()
    common.start(args)
    model = playworld.load(args.run)
    ds, K, res = Dataset(args.data), model.spec.context, model.spec.resolution
    if not 0 < 2 * args.ring < res:
        raise SystemExit(f"--ring {args.ring} does not fit a {res}-pixel frame: give 1 to {(res - 1) // 2}")
    w = common.non_overlapping(ds, "test", K, args.horizon, args.windows, args.seed)
    batch = w.batch()
    real = batch.future_frames.float()
    ctx = EvalContext(dataset=ds, spec=model.spec, split="test", episodes=len(w), horizon=args.horizon,
                      seed=args.seed)
    shares = {
        "model": ring_share((ctx.generate(model, w).float() - real) ** 2, args.ring),
        "copy_last": ring_share((batch.context_frames[:, -1:].float() - real) ** 2, args.ring),
    }
    steps = [s for s in STEPS if s <= args.horizon]
    common.report("error_ring", {
        "run": args.run, "data": args.data, "context": K, "windows": len(w), "ring": args.ring,
        "ring_area_share": round(1 - ((res - 2 * args.ring) / res) ** 2, 4),
        **{name: {str(s): round(float(v[s - 1]), 4) for s in steps} for name, v in shares.items()},
    }, args)


if __name__ == "__main__":
    main()
