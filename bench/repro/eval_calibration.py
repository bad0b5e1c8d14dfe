"""Every metric of the fidelity and controllability groups on the three calibration baselines, as JSON.

    python bench/repro/eval_calibration.py    # prints group -> baseline -> metric -> [value, floor]
    python bench/repro/eval_calibration.py --episodes 40 --steps 32 --horizon 4 --helper-steps 20   # seconds

The defaults are the data and settings of tests/eval (120 explorer episodes x 64 steps at 32x32,
context 2, horizon 16, helper networks trained briefly: tests/eval/eval_fixtures.py, imported so the
two cannot drift apart); the oracle should sit on every floor, copy-last and ignore-actions below.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

from playworld.data.collect import collect
from playworld.eval.api import DatasetOracle, get_groups
from playworld.models.baselines import CopyLast, IgnoreActions

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: the repo root, for bench.common
sys.path.insert(0, str(ROOT / "tests" / "eval"))  # the tests' calibration settings and their replaying oracle
from bench import common
from eval_fixtures import FAST, HORIZON, RES, LookupOracle, make_ctx, spec_of

GROUPS = ("fidelity", "controllability")


def helper_options(steps: int | None) -> dict:
    """The tests' helper-network settings, with every training run cut to `steps` when given."""
    options = copy.deepcopy(FAST)
    if steps is not None and steps <= 10:
        raise SystemExit("--helper-steps must be above 10 (the helpers' one-cycle schedule warms up over a tenth of them)")
    if steps is not None:
        options["fidelity"]["encoder"]["steps"] = options["controllability"]["idm"]["steps"] = steps
    return options


def calibrate(ds, ctx) -> dict:
    """group -> baseline -> {metric: [value, floor], skipped, seconds}."""
    models = {"oracle": DatasetOracle(ds, spec_of(ds)), "copy-last": CopyLast(spec_of(ds)),
              "ignore-actions": IgnoreActions(LookupOracle(ds), mode="random", seed=0)}
    out: dict = {}
    for group in GROUPS:
        for name, model in models.items():
            t0 = time.perf_counter()
            res = get_groups()[group](model, ctx)
            out.setdefault(group, {})[name] = {
                **{k: [round(m.value, 4), None if m.floor is None else round(m.floor, 4)] for k, m in res.metrics.items()},
                "skipped": res.skipped, "seconds": round(time.perf_counter() - t0, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1, seed=0)])
    ap.add_argument("--episodes", type=int, default=120, help="explorer episodes collected (the tests': 120)")
    ap.add_argument("--steps", type=int, default=64, help="steps per episode (the tests': 64)")
    ap.add_argument("--horizon", type=int, default=HORIZON, help=f"rollout horizon (the tests': {HORIZON})")
    ap.add_argument("--eval-episodes", type=int, default=24, help="windows / clips per metric (the tests': 24)")
    ap.add_argument("--helper-steps", type=int, default=None, help="training steps of the encoder and the "
                    "inverse-dynamics model (default: the tests')")
    args = ap.parse_args()
    common.start(args)
    with tempfile.TemporaryDirectory() as tmp:
        ds = collect("explorer", Path(tmp) / "explorer", episodes=args.episodes, steps=args.steps, resolution=RES,
                     seed=args.seed, progress=False)
        ctx = make_ctx(ds, options=helper_options(args.helper_steps), cache={}, horizon=args.horizon,
                       episodes=args.eval_episodes)
        result = calibrate(ds, ctx)
    common.report("eval_calibration", {"episodes": args.episodes, "steps": args.steps, "horizon": args.horizon,
                                       "eval_episodes": args.eval_episodes, **result}, args)


if __name__ == "__main__":
    main()
