"""How much of a scrolling world's future frame no context frame showed, and what that alone costs, as JSON.

    python bench/diagnose/seen_ground.py DATA [RUN ...] [--horizon 64] [--windows 32] [--cell 4]

For a dataset whose recorded state has a `camera` (the cell at the view's centre, as explorer records it),
over the quality bench's test windows (`bench.common.non_overlapping`, the same seed): at each reported step,
the share of the frame's pixels that none of the K context frames showed (ground the view has scrolled onto
since), and the pooled PSNR of two references that know everything the context showed and nothing else:

- `seen_oracle_mean_fill`: the real frame wherever a context frame showed that ground, and elsewhere the mean
  colour of the real unseen pixels of that frame (an oracle constant, better than any fixed colour);
- `seen_oracle_last_fill`: the same, unseen ground filled with the newest context frame's mean colour (what a
  predictor can know).

Beside them copy-last-frame, and for each RUN given (a trained model, rolled out with the recorded actions as
the quality bench does): its PSNR on the seen and on the unseen pixels alone, and `with_seen_real`, its frames
with the seen ground replaced by the real one (what it would score if it knew seen ground perfectly): where
the gap to a target lies, in ground it was shown or in ground it was not. Neither reference is a strict ceiling (a model may extrapolate structure into
unseen ground: a wall that continues), but a next-frame predictor that beats `seen_oracle_mean_fill` at a step
must know unseen ground better than its average colour. The target "4 dB above copy-last at step 8" can be read
against them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import playworld
from playworld import metrics as M
from playworld.data.store import Dataset
from playworld.eval.api import EvalContext

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

STEPS = (1, 2, 4, 8, 16, 32, 64)


def seen_mask(cameras: np.ndarray, context: int, size: int, cell: int) -> np.ndarray:
    """cameras (K + H, 2) cells (x, y) at the view's centre -> (H, size, size) bool: pixel (y, x) of future frame t
    shows ground some context frame showed (the view is a `size`-pixel window that moves `cell` pixels a cell)."""
    future, ctx = cameras[context:], cameras[:context]
    pix = np.arange(size)
    out = np.zeros((len(future), size, size), dtype=bool)
    for t, cam in enumerate(future):
        for c in ctx:
            ox, oy = pix + cell * (cam[0] - c[0]), pix + cell * (cam[1] - c[1])  # where the pixel sat in frame c
            out[t] |= ((oy >= 0) & (oy < size))[:, None] & ((ox >= 0) & (ox < size))[None, :]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("data", help="a dataset with a test split whose state records `camera` (explorer)")
    ap.add_argument("runs", nargs="*", help="run folders to decompose (their context must equal --context)")
    ap.add_argument("--context", type=int, default=4, help="context frames K (the models' context)")
    ap.add_argument("--horizon", type=int, default=64, help="future steps")
    ap.add_argument("--windows", type=int, default=32, help="test windows at most")
    ap.add_argument("--cell", type=int, default=0, help="pixels the view moves per cell (0: resolution // 16, explorer's)")
    args = ap.parse_args()
    common.start(args)
    ds = Dataset(args.data)
    if "camera" not in ds.state_keys:
        raise SystemExit(f"{args.data} records no `camera` state (it has {ds.state_keys}): this diagnosis needs a "
                         "world whose view follows a camera, such as explorer")
    K, H = args.context, args.horizon
    w = common.non_overlapping(ds, "test", K, H, args.windows, args.seed)
    batch = w.batch()
    real = batch.future_frames.float()  # (N, H, C, R, R)
    size = real.shape[-1]
    cell = args.cell or size // 16
    seen = torch.from_numpy(np.stack([
        seen_mask(np.asarray(ds.load_episode(ep).state["camera"][t - K : t + H]), K, size, cell) for ep, t in w.index
    ]))[:, :, None]  # (N, H, 1, R, R)
    last = batch.context_frames[:, -1:].float()
    unseen = (~seen).float()
    count = unseen.sum(dim=(-1, -2)).clamp_min(1)
    oracle_mean = (real * unseen).sum(dim=(-1, -2)) / count  # (N, H, C)
    refs = {
        "copy_last": last.expand_as(real),
        "seen_oracle_mean_fill": torch.where(seen, real, oracle_mean[..., None, None]),
        "seen_oracle_last_fill": torch.where(seen, real, last.mean(dim=(-1, -2), keepdim=True).expand_as(real)),
    }
    steps = [s for s in STEPS if s <= H]

    def by_step(curve, digits: int = 2) -> dict[str, float]:
        return {str(s): round(float(curve[s - 1]), digits) for s in steps}

    result = {"data": args.data, "context": K, "windows": len(w), "cell": cell,
              "unseen_share": by_step(unseen.mean(dim=(0, 2, 3, 4)), 4)}
    result |= {name: by_step(M.pooled_psnr(v, real, axis=0)) for name, v in refs.items()}
    pixels = {"seen": seen.expand_as(real).sum(dim=(0, 2, 3, 4)).clamp_min(1),  # per step, pooled over windows
              "unseen": unseen.expand_as(real).sum(dim=(0, 2, 3, 4)).clamp_min(1)}
    kinds = {"seen": seen, "unseen": unseen}
    models = {}
    for run in args.runs:
        model = playworld.load(run)
        if model.spec.context != K:
            raise SystemExit(f"{run} has context {model.spec.context}, not --context {K}")
        ctx = EvalContext(dataset=ds, spec=model.spec, split="test", episodes=len(w), horizon=H, seed=args.seed)
        gen = ctx.generate(model, w).float()
        sq = (gen - real) ** 2
        # pooled over windows: the mean squared error over the pixels of each kind, per step
        masked = {kind: (sq * mask).sum(dim=(0, 2, 3, 4)) / pixels[kind] for kind, mask in kinds.items()}
        models[run] = {
            "psnr": by_step(M.pooled_psnr(gen, real, axis=0)),
            "psnr_seen": by_step(M.psnr_from_mse(masked["seen"].numpy())),
            "psnr_unseen": by_step(M.psnr_from_mse(masked["unseen"].numpy())),
            "with_seen_real": by_step(M.pooled_psnr(torch.where(seen, real, gen), real, axis=0)),
        }
    if models:
        result["models"] = models
    common.report("seen_ground", result, args)


if __name__ == "__main__":
    main()
