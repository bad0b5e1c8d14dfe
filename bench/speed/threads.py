"""How many CPU threads one model step should use, alone and beside another busy process.

    python bench/speed/threads.py [--preset small] [--steps 20]

Times generation steps of the preset's diffusion model (64x64, batch 1, the model `playworld play`
steps) with 1 thread and with every core, first on an otherwise idle machine, then beside a
competing process that keeps one core busy with matrix products (another training job, as on a
shared laptop). OpenMP threads that outnumber the free cores spin and wait for each other, so the
figure to read is the median step time per setting and their ratio; `playworld.compute.default_threads`
picks the cores not already busy, and this bench is the measurement behind that choice.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `from bench import common`, run from anywhere
from bench import common  # noqa: E402

from playworld.compute import cpu_count, default_threads  # noqa: E402
from playworld.models.interface import WorldSpec  # noqa: E402
from playworld.models.registry import get_family  # noqa: E402
from playworld.runs.presets import load_preset, make_model_config, resolve_context  # noqa: E402
from playworld.spaces import ActionSpace  # noqa: E402


def _busy(stop: mp.Event) -> None:
    """A competing job: one thread of matrix products until told to stop."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _model(preset: str):
    family = get_family("diffusion")
    p = load_preset(preset)
    config = make_model_config(family, p)
    spec = WorldSpec(resolution=64, action_space=ActionSpace.discrete(5), context=resolve_context(p))
    torch.manual_seed(0)
    model = family.world_model(family.build(config, spec).eval(), config, spec)
    k = spec.context
    state = model.reset(torch.randint(0, 256, (1, k, 3, 64, 64), dtype=torch.uint8), torch.zeros(1, k, dtype=torch.long), seed=0)
    return model, state


def step_times(model, state, threads: int, steps: int) -> list[float]:
    """Seconds of each of `steps` generation steps with `threads` torch threads (after one to warm up)."""
    torch.set_num_threads(threads)
    action = torch.ones(1, dtype=torch.long)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        state, _ = model.step(state, action)
        if i >= 1:
            times.append(time.perf_counter() - start)
    return times


def measure(preset: str, steps: int) -> dict:
    model, state = _model(preset)
    settings = sorted({1, cpu_count()})
    out: dict = {"cores": cpu_count(), "default_threads_idle": default_threads(0.0), "default_threads_beside_one_job":
                 default_threads(1.0), "ms_per_step": {}}
    for busy in (False, True):
        stop, job = mp.Event(), None
        if busy:
            job = mp.get_context("fork").Process(target=_busy, args=(stop,), daemon=True)
            job.start()
            time.sleep(0.5)
        try:
            for threads in settings:
                t = step_times(model, state, threads, steps)
                out["ms_per_step"][f"{'beside_one_job' if busy else 'alone'}_{threads}_threads"] = round(
                    1000 * statistics.median(t), 2)
        finally:
            stop.set()
            if job is not None:
                job.join(5)
    ms = out["ms_per_step"]
    if cpu_count() > 1:
        n = cpu_count()
        out["all_cores_over_1_alone"] = round(ms[f"alone_{n}_threads"] / ms["alone_1_threads"], 3)
        out["all_cores_over_1_beside_one_job"] = round(ms[f"beside_one_job_{n}_threads"] / ms["beside_one_job_1_threads"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(threads=1)])
    ap.add_argument("--preset", default="small", help="preset whose diffusion model is stepped")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per setting (medians are reported)")
    args = ap.parse_args()
    common.start(args)
    result = measure(args.preset, args.steps)  # each setting sets its own thread count
    torch.set_num_threads(args.threads or 1)  # the report's machine facts name the bench's own setting
    common.report("threads", {"preset": args.preset, "steps": args.steps, **result}, args)


if __name__ == "__main__":
    main()
