"""Generation frames/s of the `small` diffusion model vs a DIAMOND-size reference, printed as JSON.

    python bench/speed/generation.py [--threads 2] [--repeats 5] [--frames 20] [--preset small] [--dtypes fp32,bf16]

64x64, batch 1, default sampler, fp32 and bf16 autocast (bf16 is skipped, with a note, on a CPU that
only emulates it); achieved GFLOP/s over a matmul GFLOP/s measured in the same run; the ratio
small/reference; each model's sampling steps, stem patch and attention, read from the built networks.
See playworld.benchmarks for the details. (`playworld bench` prints the same figures.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playworld.benchmarks import generation_benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=2)])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--frames", type=int, default=20, help="consecutive frames generated per repeat")
    parser.add_argument("--preset", default="small", help="preset (or .yaml) whose diffusion model is measured")
    parser.add_argument("--dtypes", default="fp32,bf16", help="comma-separated precisions to time: fp32, bf16")
    args = parser.parse_args()
    common.start(args)
    result = generation_benchmark(threads=args.threads, repeats=args.repeats, frames=args.frames, preset=args.preset,
                                  dtypes=tuple(args.dtypes.split(",")))
    common.report("generation", result, args)


if __name__ == "__main__":
    main()
