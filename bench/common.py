"""What every bench script shares: its start-up (threads, seeds), its JSON report, and the few steps
that more than one bench runs (no bench imports another).

Each script is run from anywhere as `python bench/<group>/<name>.py` and starts the same way:

    parser = argparse.ArgumentParser(description=..., parents=[common.options(threads=1, seed=0)])
    args = parser.parse_args()
    common.start(args)                        # torch + OpenMP threads, seeds of random/numpy/torch
    ...
    common.report("loader", result, args)    # JSON on stdout (and to --json FILE), with the machine facts

`report` adds `"bench"` (the script's name) and `"machine"` (torch version, threads, cores, the CPU's
model and the flags that decide bf16 speed, the load) so a figure read later says where it came from.
Only the JSON goes to stdout; progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playworld.agents.actor_critic import ActorCriticConfig
from playworld.agents.agent import actor_policy, save_agent
from playworld.agents.dream import dream, evaluate_real
from playworld.compute import cpu_count, cpu_flags, machine_load, native_bf16, set_threads
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.data.windows import make_loader
from playworld.eval.api import EvalContext, Windows
from playworld.eval.physical import physics_windows
from playworld.models import get_family
from playworld.models.interface import WorldSpec
from playworld.runs.checkpoints import resolve_checkpoint
from playworld.runs.load import load_world_model
from playworld.runs.presets import load_preset, make_model_config, resolve_context
from playworld.train.loop import train

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
"""the x86 flags reported with every result: what decides fp32 and bf16 speed on a CPU"""


# -- start-up -----------------------------------------------------------------------------------------


def options(threads: int | None = None, seed: int | None = None, out: str | None = None,
            out_help: str = "working folder (datasets, runs); reused when the bench runs again") -> argparse.ArgumentParser:
    """A parent parser (`parents=[common.options(...)]`) with the options the benches share.

    --threads and --json always; --seed when `seed` is given (its default), --out when `out` is (its default).
    threads None: OMP_NUM_THREADS if set, else the cores not already busy (playworld.compute.set_threads)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", type=int, default=threads,
                   help=f"torch and OpenMP threads (default: {threads if threads else 'OMP_NUM_THREADS, else the free cores'})")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON result to this file")
    if seed is not None:
        p.add_argument("--seed", type=int, default=seed, help="random seed (random, numpy and torch; data and runs)")
    if out is not None:
        p.add_argument("--out", type=Path, default=Path(out), help=out_help)
    return p


def start(args: argparse.Namespace) -> None:
    """Set torch's and OpenMP's threads (child processes inherit them) and seed random, numpy and torch."""
    set_threads(getattr(args, "threads", None), warn=lambda message: print(f"warning: {message}", file=sys.stderr))
    seed = getattr(args, "seed", None)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)


def machine() -> dict[str, Any]:
    """Facts about where a figure was measured, cheap to read (no timing)."""
    flags = cpu_flags()
    return {
        "torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
        "cores": cpu_count(), "cpu": _cpu_model(), "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "native_bf16": native_bf16(), "load_average_1min": machine_load(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(name: str, result: dict[str, Any], args: argparse.Namespace | None = None) -> dict[str, Any]:
    """Print `result` as JSON with the bench's name and the machine facts; also write it to --json."""
    full = {"bench": name, **result, "machine": machine()}
    text = json.dumps(full, indent=1)
    print(text, flush=True)
    target = getattr(args, "json", None)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")
    return full


@dataclass
class Stages:
    """Wall and CPU seconds per named stage (CPU: this process and its finished children):
    `value = stages.run("train", fn)`, then `stages.seconds` and `stages.cpu_seconds`."""

    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def clock() -> tuple[float, float]:
        t = os.times()
        return time.perf_counter(), t.user + t.system + t.children_user + t.children_system

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        (w0, c0) = self.clock()
        value = fn()
        (w1, c1) = self.clock()
        self.seconds[name], self.cpu_seconds[name] = round(w1 - w0, 1), round(c1 - c0, 1)
        return value


# -- what a training step consumes (the loader benches) -----------------------------------------------


def training_step_rate(ds: Dataset, preset_name: str, batch: int, horizon: int = 1, steps: int = 3) -> dict[str, Any]:
    """Windows per second one training step of the preset's diffusion model consumes on `ds`'s windows:
    batch / (forward + backward + optimiser step), timed over `steps` steps after one warm-up."""
    family, preset = get_family("diffusion"), load_preset(preset_name)
    config = make_model_config(family, preset)
    spec = WorldSpec(resolution=ds.resolution, action_space=ds.action_space, context=resolve_context(preset), fps=ds.fps,
                     world=ds.world)
    net = family.build(config, spec)
    opt = torch.optim.AdamW(net.parameters(), 1e-4)
    generator = torch.Generator().manual_seed(0)
    windows = next(make_loader(ds, spec.context, horizon, batch, seed=1))

    def step():
        loss, _ = family.loss(net, windows, config, 0, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = (time.perf_counter() - t0) / steps
    return {"model": f"diffusion, {preset_name} preset", "params": sum(p.numel() for p in net.parameters()),
            "context": spec.context, "step_s": round(dt, 3), "windows_per_s": round(batch / dt, 1)}


# -- episodes and latent actions (the genie benches) --------------------------------------------------


def episode_frames(ds: Dataset, ep: int) -> torch.Tensor:
    """One episode's frames as (T, 3, H, W) uint8."""
    return torch.from_numpy(np.asarray(ds.load_episode(ep).frames).transpose(0, 3, 1, 2).copy())


def confusion(codes: np.ndarray, actions: np.ndarray, codebook: int, n_actions: int) -> np.ndarray:
    """(codebook, n_actions) counts of how often each latent code coincides with each true action."""
    counts = np.zeros((codebook, n_actions), np.int64)
    np.add.at(counts, (codes, actions), 1)
    return counts


def score_mapping(train_counts: np.ndarray, val_counts: np.ndarray) -> dict[str, Any]:
    """Majority mapping latent -> true action fitted on the train confusion, scored on the val one."""
    mapping = train_counts.argmax(1)
    total = max(1, val_counts.sum())
    acc = float(val_counts[np.arange(len(val_counts)), mapping].sum() / total)
    oracle = float(val_counts.max(1).sum() / total)  # mapping fitted on val itself
    return {"accuracy_val": acc, "accuracy_val_mapping_fitted_on_val": oracle, "mapping": mapping.tolist(),
            "latent_usage_val": val_counts.sum(1).tolist(), "val_transitions": int(val_counts.sum()),
            "confusion_val": val_counts.tolist()}


# -- the dream pipeline (the dream benches) -----------------------------------------------------------


def add_dream_arguments(ap: argparse.ArgumentParser, train_minutes: float, round_episodes: int,
                        eval_episodes: int = 10) -> None:
    """The options both dream benches share: budgets (CPU minutes), Dreamer's rounds, actor inputs, evaluation."""
    ap.add_argument("--tiny", action="store_true", help="a few seconds per stage: checks the pipeline, not the target")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--train-minutes", type=float, default=train_minutes,
                    help="CPU minutes of model training on the first episodes")
    ap.add_argument("--dream-minutes", type=float, default=3.0, help="CPU minutes of the first dream")
    ap.add_argument("--rounds", type=int, default=3, help="Dreamer rounds: 1 = no agent episodes; each further round "
                    "collects with the agent, retrains the model and dreams again")
    ap.add_argument("--round-episodes", type=int, default=round_episodes, help="real episodes collected with the agent per round")
    ap.add_argument("--round-train-minutes", type=float, default=4.0, help="CPU minutes of model training per round")
    ap.add_argument("--round-dream-minutes", type=float, default=3.0, help="CPU minutes of dreaming per round")
    ap.add_argument("--inputs", default="auto", help="what the actor sees: auto, latent or pixels")
    ap.add_argument("--eval-episodes", type=int, default=eval_episodes, help="real episodes for the agent and for random")
    ap.add_argument("--gamma", type=float, default=None, help="the actor-critic's discount (default: the bench's)")
    ap.add_argument("--horizon", type=int, default=None, help="imagined steps per start context (default: the bench's)")
    ap.add_argument("--model", default="rssm", help="world model family to train and dream in (rssm reads rewards "
                    "from its heads; other families from a reward model learned on the dataset)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra --set overrides for the model's run "
                    "(e.g. model.reward_scale=10)")


def dream_budget(args: argparse.Namespace, dream_config: dict, tiny_round_episodes: int, **tiny_extra) -> dict[str, Any]:
    """dream_pipeline() keyword arguments from the shared options; with --tiny, a few seconds per stage."""
    if args.tiny:
        return {"train_minutes": 1.0, "dream_minutes": 1.0, "eval_episodes": 2, "train_steps": 3, "dream_steps": 3,
                "dream_config": {"horizon": 4, "batch": 4, "inputs": args.inputs}, "rounds": 2,
                "round_episodes": tiny_round_episodes, "round_train_minutes": 0.02, "round_dream_minutes": 0.02,
                "family": args.model, "reward_steps": 20, **tiny_extra}
    config = {**dream_config, "inputs": args.inputs, **({"gamma": args.gamma} if args.gamma else {}),
              **({"horizon": args.horizon} if args.horizon else {})}
    return {"train_minutes": args.train_minutes, "dream_minutes": args.dream_minutes, "eval_episodes": args.eval_episodes,
            "dream_config": config, "rounds": args.rounds, "round_episodes": args.round_episodes,
            "round_train_minutes": args.round_train_minutes, "round_dream_minutes": args.round_dream_minutes,
            "sets": args.sets, "family": args.model}


@dataclass
class DreamWorld:
    """Where the dream pipeline collects: the world, its options and frame size, episode length, seed, folder."""

    world: str
    options: dict
    resolution: int
    steps_per_episode: int
    out: Path
    seed: int = 0

    def collect(self, policy, episodes: int, seed: int) -> Dataset:
        """Append `episodes` episodes played by `policy` to OUT/data."""
        collect(self.world, self.out / "data", episodes=episodes, policy=policy, seed=seed, resolution=self.resolution,
                steps=self.steps_per_episode, world_options=self.options, progress=False)
        return Dataset(self.out / "data")

    def collect_each(self, collect_with: list[tuple[str, object, int]]) -> Dataset:
        """The first collection: (name, policy, episodes) in turn, seeds seed, seed + 1, ..."""
        for i, (_, policy, episodes) in enumerate(collect_with):
            data = self.collect(policy, episodes, self.seed + i)
        return data


def dream_pipeline(
    world: DreamWorld, collect_with: list[tuple[str, object, int]], train_minutes: float, dream_minutes: float,
    eval_episodes: int, target: dict, train_steps: int | None = None, dream_steps: int | None = None,
    dream_config: dict | None = None, max_steps: int | None = None, sets: list[str] | None = None, rounds: int = 1,
    reward_steps: int | None = None, round_episodes: int = 0, round_train_minutes: float = 0.0,
    round_dream_minutes: float = 0.0, family: str = "rssm",
) -> dict[str, Any]:
    """collect -> train a world model of `family` -> dream -> real-world evaluation; returns the JSON-able report.

    With rounds > 1, Dreamer's loop follows the first dream: each further round collects
    `round_episodes` real episodes with the current agent (sampling its actions), appends them to the
    dataset, resumes the model's run for `round_train_minutes` on the grown dataset, and continues the
    same actor-critic in the retrained model for `round_dream_minutes`. The agent still learns only
    in imagination; the real episodes only teach the model the states the agent reaches."""
    out, seed, stages = world.out, world.seed, Stages()
    shutil.rmtree(out, ignore_errors=True)
    report: dict[str, Any] = {"world": world.world, "world_options": world.options, "resolution": world.resolution,
                              "seed": seed, "family": family, "target": target}

    data = stages.run("collect", lambda: world.collect_each(collect_with))
    report["dataset"] = _dataset_summary(data, collect_with)
    # budgets count CPU time, so the figures hold on a shared machine ("within 30 CPU-minutes")
    result = stages.run("train", lambda: train(out / "run", data=out / "data", model=family, preset="small",
                                               sets=["train.budget_clock=cpu", *(sets or [])], minutes=train_minutes,
                                               steps=train_steps, progress=False))
    report["train"] = {"steps": result.step, "val_psnr": result.val_psnr, "reason": result.reason}

    model = load_world_model(out / "run")
    config = ActorCriticConfig(**(dream_config or {}))
    dream_kw = {"progress": False, "cache_dir": out / "run" / "agents" / "reward_model", "budget_clock": "cpu",
                **({"reward_steps": reward_steps} if reward_steps else {})}  # families without reward heads
    dreamt = stages.run("dream", lambda: dream(model, data, config, steps=dream_steps, minutes=dream_minutes,
                                               seed=seed, **dream_kw))
    report["dream"] = _dream_summary(dreamt)
    learner, report["rounds"] = dreamt.learner, []
    for r in range(1, rounds):
        model, data, row = _dreamer_round(world, r, model, learner, config, round_episodes, round_train_minutes,
                                          round_dream_minutes, dream_kw, stages)
        report["rounds"].append(row)

    save_agent(out / "agent", learner.actor, model.spec, {"world_options": world.options, "run": str((out / "run").resolve()),
                                                          "checkpoint": resolve_checkpoint(out / "run").name})
    ev = stages.run("evaluate", lambda: evaluate_real(model.spec, learner.actor, world.options, episodes=eval_episodes,
                                                      seed=10_000 + seed, max_steps=max_steps, progress=False, model=model))
    report["real"] = {"agent_mean": ev["agent"]["mean"], "agent_std": ev["agent"]["std"],
                      "random_mean": ev["random"]["mean"], "random_std": ev["random"]["std"],
                      "ratio_to_random": ev["ratio_to_random"], "episodes": eval_episodes}
    report["met"] = _target_met(ev, target)
    report.update(seconds=stages.seconds, cpu_seconds=stages.cpu_seconds,
                  total_cpu_minutes=round(sum(stages.cpu_seconds.values()) / 60, 2),
                  total_wall_minutes=round(sum(stages.seconds.values()) / 60, 2))
    return report


def _dataset_summary(data: Dataset, collect_with: list[tuple[str, object, int]]) -> dict[str, Any]:
    rewards = np.concatenate([data.load_episode(e).rewards for e in data.episode_ids()])
    return {"episodes": len(data), "frames": data.num_frames, "rewarded_frames": int((rewards != 0).sum()),
            "reward_sum": float(rewards.sum()), "collected_with": [(n, e) for n, _, e in collect_with]}


def _dream_summary(dreamt) -> dict[str, Any]:
    hist = dreamt.history
    return {"steps": dreamt.steps, "config": dreamt.learner.config.to_dict(),
            "imagined_return_first": hist[0]["imagined_return"] if hist else None,
            "imagined_return_last": hist[-1]["imagined_return"] if hist else None}


def _dreamer_round(world: DreamWorld, r: int, model, learner, config, episodes: int, train_minutes: float,
                   dream_minutes: float, dream_kw: dict, stages: Stages):
    """One round of Dreamer's loop: collect with the agent, resume the model's training, dream on."""
    out, seed = world.out, world.seed + 100 + r
    policy = actor_policy(learner.actor, model.spec, seed=seed, model=model)
    before = len(Dataset(out / "data"))
    data = stages.run(f"collect_{r}", lambda: world.collect(policy, episodes, seed))
    new = sorted(data.episode_ids())[before:]
    got = [float(np.sum(data.load_episode(e).rewards)) for e in new]
    trained = stages.run(f"train_{r}", lambda: train(out / "run", resume=True, sets=["train.budget_clock=cpu"],
                                                     minutes=train_minutes, progress=False))
    model = load_world_model(out / "run")
    dreamt = stages.run(f"dream_{r}", lambda: dream(model, data, config, minutes=dream_minutes, seed=world.seed + r,
                                                    learner=learner, **dream_kw))
    row = {"round": r, "episodes_collected": len(new), "collected_mean_return": float(np.mean(got)),
           "train_step": trained.step, "dream_steps": dreamt.steps}
    return model, data, row


def _target_met(ev: dict, target: dict) -> bool:
    if "ratio_to_random" in target:
        return ev["ratio_to_random"] is not None and ev["ratio_to_random"] >= target["ratio_to_random"]
    return ev["agent"]["mean"] >= target["mean_return"]


def non_overlapping(ds: Dataset, split: str, K: int, H: int, n: int, seed: int) -> Windows:
    """Up to `n` windows of K + H frames from `split`, at most 2 per episode, none overlapping."""
    rng = np.random.default_rng(seed)
    index = []
    for ep in rng.permutation(ds.episode_ids(split)):
        T = ds.episode_length(int(ep))
        index += [(int(ep), i * (K + H) + K) for i in range(min(2, T // (K + H)))]
    if not index:
        raise SystemExit(f"no {split} episode of {ds.path} holds {K + H} frames")
    return Windows(ds, index[:n], K, H)


def physics_test_windows(data: str, runs: list[str], clips: int, horizon: int, seed: int,
                         context: int | None = None) -> tuple[Dataset, dict[str, Any], EvalContext, Windows]:
    """The physics group's windows (`eval.physical.physics_windows`) of a physics/* dataset's test split, for runs
    that share one context K (`context` when no run is given): the dataset, the loaded models by run, the eval
    context and the windows. Exits with a message on another world or on runs of different contexts."""
    ds = Dataset(data)
    if not ds.world.startswith("physics/"):
        raise SystemExit(f"{data} is a {ds.world!r} dataset: this diagnosis parses the balls of a physics/* world")
    models = {run: load_world_model(run) for run in runs}
    contexts = {m.spec.context for m in models.values()} or {context}
    if len(contexts) > 1:
        raise SystemExit(f"the runs have different contexts {sorted(contexts)}: measure them one at a time")
    K = contexts.pop()
    spec = WorldSpec(resolution=ds.resolution, action_space=ds.action_space, context=K, fps=ds.fps, world=ds.world)
    ctx = EvalContext(dataset=ds, spec=spec, split="test", episodes=clips, horizon=horizon, seed=seed)
    return ds, models, ctx, physics_windows(ctx)
