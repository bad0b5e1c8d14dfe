"""Teacher-forced next-frame PSNR of a run on a dataset's val split, beside copy-last, as JSON.

    python bench/diagnose/teacher_forced_psnr.py RUN DATA [--windows 512]

The PSNR of the MSE pooled over evenly spaced val windows (the definition training validation and
the eval suite use), so the issue's quality target can be checked on any run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import playworld
from playworld.data.store import Dataset
from playworld.models.baselines import CopyLast
from playworld.train.validation import teacher_forced_psnr, validation_windows

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=2)])
    ap.add_argument("run", help="a run folder written by `playworld train`")
    ap.add_argument("data", help="the dataset it was trained on")
    ap.add_argument("--windows", type=int, default=512, help="val windows, evenly spaced")
    args = ap.parse_args()
    common.start(args)
    model = playworld.load(args.run)
    windows = validation_windows(Dataset(args.data), model.spec.context, args.windows, "val")
    if windows is None:
        raise SystemExit(f"{args.data} has no val window of {model.spec.context} + 1 frames")
    common.report("teacher_forced_psnr", {
        "run": args.run, "data": args.data, "context": model.spec.context, "windows": int(windows.size),
        "model_psnr": teacher_forced_psnr(model, windows, 64),
        "copy_last_psnr": teacher_forced_psnr(CopyLast(model.spec), windows, 64),
    }, args)


if __name__ == "__main__":
    main()
