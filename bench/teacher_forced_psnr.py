"""Teacher-forced next-frame PSNR of a run on a dataset's val split, beside copy-last, as JSON.

    python bench/teacher_forced_psnr.py RUN DATA [--windows 512]

The PSNR of the MSE pooled over evenly spaced val windows (the definition training validation and
the eval suite use), so the issue's quality target can be checked on any run.
"""

from __future__ import annotations

import argparse
import json

import torch

import playworld
from playworld.data.store import Dataset
from playworld.models.baselines import CopyLast
from playworld.train.validation import teacher_forced_psnr, validation_windows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run folder written by `playworld train`")
    ap.add_argument("data", help="the dataset it was trained on")
    ap.add_argument("--windows", type=int, default=512, help="val windows, evenly spaced")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = playworld.load(args.run)
    windows = validation_windows(Dataset(args.data), model.spec.context, args.windows, "val")
    if windows is None:
        raise SystemExit(f"{args.data} has no val window of {model.spec.context} + 1 frames")
    print(json.dumps({
        "run": args.run, "data": args.data, "windows": int(windows.size),
        "model_psnr": teacher_forced_psnr(model, windows, 64),
        "copy_last_psnr": teacher_forced_psnr(CopyLast(model.spec), windows, 64),
    }, indent=1))


if __name__ == "__main__":
    main()
