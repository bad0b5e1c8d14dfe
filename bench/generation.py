"""Generation frames/s of the `small` diffusion model vs a DIAMOND-size reference, printed as JSON.

    .venv/bin/python bench/generation.py [--threads 2] [--repeats 5] [--frames 20] [--preset small]

64x64, batch 1, default sampler, fp32 and bf16 autocast; achieved GFLOP/s over a matmul GFLOP/s
measured in the same run; the ratio small/reference. See playworld.benchmarks for the details.
(`playworld bench` prints the same figures.)
"""

from __future__ import annotations

import argparse
import json

from playworld.benchmarks import generation_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the target is 2 cores)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--frames", type=int, default=20, help="consecutive frames generated per repeat")
    parser.add_argument("--preset", default="small", help="preset whose diffusion model is measured")
    args = parser.parse_args()
    result = generation_benchmark(threads=args.threads, repeats=args.repeats, frames=args.frames, preset=args.preset)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
