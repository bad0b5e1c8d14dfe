"""Fidelity and controllability of the calibration baselines on the tiny explorer data of the tests.

    .venv/bin/python bench/eval_calibration.py    # prints JSON: group -> baseline -> metric -> [value, floor]

Same data and settings as tests/eval (120 episodes x 64 steps at 32x32, context 2, horizon 16, helper
networks trained briefly); the oracle should sit on every floor, copy-last and ignore-actions below.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "eval"))
from eval_fixtures import LookupOracle, make_ctx, spec_of, tiny_explorer  # noqa: E402

from playworld.eval.api import DatasetOracle, get_groups  # noqa: E402
from playworld.models.baselines import CopyLast, IgnoreActions  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    ds = tiny_explorer()
    ctx = make_ctx(ds)
    models = {"oracle": DatasetOracle(ds, spec_of(ds)), "copy-last": CopyLast(spec_of(ds)),
              "ignore-actions": IgnoreActions(LookupOracle(ds), mode="random", seed=0)}
    out: dict = {}
    for group in ("fidelity", "controllability"):
        for name, model in models.items():
            t0 = time.perf_counter()
            res = get_groups()[group](model, ctx)
            out.setdefault(group, {})[name] = {
                **{k: [round(m.value, 4), None if m.floor is None else round(m.floor, 4)] for k, m in res.metrics.items()},
                "skipped": res.skipped, "seconds": round(time.perf_counter() - t0, 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
