"""The episode store at scale: collect explorer episodes into the default (compressed) store, verify
it, read it as training does; prints JSON.

    python bench/speed/store_scale.py --out /tmp/store1m                  # 5,000 episodes x 200 steps = 1M frames
    python bench/speed/store_scale.py --out /tmp/store1m --reuse          # measure an existing OUT/data again

Each phase runs in a process of its own, so its peak RSS (os.wait4's ru_maxrss) is its alone:
- collect: `playworld.data.collect.collect` into OUT/data, with every `add_episode` (the append:
  compress, checksum, rename, one table line) timed and the RSS sampled along the way;
- append: reopen the full dataset and add one episode (what appending costs at full size);
- verify: `Dataset.verify()` (every checksum; every chunk decoded and its frames' hash compared);
- loader: `make_loader`, the training loader, at the preset's (`small`) context and batch, windows/s;
- step: what one training step of the preset's diffusion model consumes, windows/s (`common.training_step_rate`).
Sizes: bytes on disk (allocated blocks) and file bytes, against the same arrays as raw .npy
(schema 1's layout: frames uncompressed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from playworld.data import store
from playworld.data.collect import collect, run_episode
from playworld.data.store import Dataset, create_or_append
from playworld.data.windows import make_loader
from playworld.runs.presets import load_preset, resolve_context
from playworld.worlds.base import make_world
from playworld.worlds.policies import make_policy

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

PRESET = "small"
"""the preset whose context, batch and diffusion model stand for training"""


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def phase_collect(args) -> dict:
    times, rss = [], []
    add = store.EpisodeWriter.add_episode

    def timed(self, *a, **kw):  # the real append, timed
        t0 = time.perf_counter()
        out = add(self, *a, **kw)
        times.append(time.perf_counter() - t0)
        if len(times) % max(1, args.episodes // 20) == 0:
            rss.append([len(times), round(rss_mb(), 1)])
        return out

    store.EpisodeWriter.add_episode = timed
    t0, c0 = time.perf_counter(), time.process_time()
    collect("explorer", args.out / "data", args.episodes, policy="random", seed=args.seed, resolution=args.resolution,
            steps=args.steps, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    ms = np.array(times) * 1000
    k = max(1, min(50, len(ms) // 10))
    slope = float(np.polyfit(np.arange(len(ms)), ms, 1)[0] * 1000) if len(ms) > 1 else 0.0
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "episodes": len(ms),
            "frames_per_s": round(args.episodes * (args.steps + 1) / seconds, 1),
            "append_ms": {f"first_{k}_mean": round(float(ms[:k].mean()), 2), f"last_{k}_mean": round(float(ms[-k:].mean()), 2),
                          "median": round(float(np.median(ms)), 2), "p99": round(float(np.percentile(ms, 99)), 2),
                          "slope_ms_per_1000_episodes": round(slope, 3), "total_s": round(float(ms.sum() / 1000), 1)},
            "rss_mb_by_episode": rss}


def phase_append(args) -> dict:
    t0 = time.perf_counter()
    world = make_world("explorer", resolution=args.resolution)
    ep = run_episode(world, make_policy("random", world.action_space, seed=args.seed + 1), args.steps, seed=args.seed + 1)
    ep.pop("capped")
    t1 = time.perf_counter()
    with create_or_append(args.out / "data", "explorer", args.resolution, world.action_space, world.fps) as writer:
        t2 = time.perf_counter()
        writer.add_episode(**ep)
        t3 = time.perf_counter()
    return {"episode_s": round(t1 - t0, 3), "open_for_append_s": round(t2 - t1, 3), "append_ms": round((t3 - t2) * 1000, 2),
            "episodes_after": len(Dataset(args.out / "data"))}


def phase_verify(args) -> dict:
    t0 = time.perf_counter()
    ds = Dataset(args.out / "data")
    t1 = time.perf_counter()
    problems = ds.verify()
    return {"open_s": round(t1 - t0, 3), "seconds": round(time.perf_counter() - t1, 1), "problems": len(problems),
            "first_problem": problems[0] if problems else None, "frames": ds.num_frames}


def phase_loader(args) -> dict:
    ds = Dataset(args.out / "data")
    preset = load_preset(args.preset)
    context, batch = resolve_context(preset), int(preset["train"]["batch_size"])
    loader = make_loader(ds, context, 1, batch, split="train", seed=args.seed)
    for _ in range(5):
        next(loader)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.loader_seconds:
        next(loader)
        n += 1
    dt = time.perf_counter() - t0
    return {"context": context, "batch": batch, "batches": n, "windows_per_s": round(n * batch / dt, 1)}


def phase_step(args) -> dict:
    preset = load_preset(args.preset)
    return common.training_step_rate(Dataset(args.out / "data"), args.preset, int(preset["train"]["batch_size"]))


PHASES = {"collect": phase_collect, "append": phase_append, "verify": phase_verify, "loader": phase_loader, "step": phase_step}


def run_phase(name: str, args) -> dict:
    """`name` in a child process: its JSON, wall seconds and peak RSS."""
    cmd = [sys.executable, __file__, "--phase", name, "--out", str(args.out), "--episodes", str(args.episodes),
           "--steps", str(args.steps), "--resolution", str(args.resolution), "--seed", str(args.seed),
           "--loader-seconds", str(args.loader_seconds), "--threads", str(args.threads or 1), "--preset", args.preset]
    print(f"[store_scale] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {name} failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(out)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # ru_maxrss is in KB on Linux
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    print(f"[store_scale] {name}: {json.dumps(result)[:300]}", file=sys.stderr, flush=True)
    return result


def sizes(path: Path) -> dict:
    """Bytes on disk and in files, against the same arrays stored raw (.npy, frames uncompressed)."""
    allocated = apparent = files = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            allocated, apparent, files = allocated + st.st_blocks * 512, apparent + st.st_size, files + 1
    ds = Dataset(path)
    frames = sum(int(e["length"]) for e in ds.entries) * ds.resolution**2 * 3
    arrays = 0
    for e in ds.entries:
        for meta in e["files"].get("arrays.npz", {}).get("arrays", {}).values():
            arrays += int(np.prod(meta["shape"])) * np.dtype(meta["dtype"]).itemsize + 128  # + the .npy header
    raw = frames + 128 + arrays
    return {"files": files, "bytes_on_disk": allocated, "bytes_in_files": apparent, "raw_frames_bytes": frames,
            "raw_bytes": raw, "raw_over_on_disk": round(raw / allocated, 1), "raw_frames_over_frame_files": round(
                frames / sum(int(e["files"]["frames.chunks"]["bytes"]) for e in ds.entries), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 parents=[common.options(threads=1, seed=0, out="/tmp/store_scale")])
    ap.add_argument("--episodes", type=int, default=5000, help="explorer episodes to collect")
    ap.add_argument("--steps", type=int, default=200, help="steps per episode (an episode holds steps + 1 frames)")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--loader-seconds", type=float, default=20.0, help="seconds to time the loader")
    ap.add_argument("--preset", default=PRESET, help="preset whose context, batch and diffusion model stand for training")
    ap.add_argument("--reuse", action="store_true", help="keep OUT/data if it holds the episodes already (skip collect)")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)  # internal: run one phase, print its JSON
    args = ap.parse_args()
    common.start(args)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)), flush=True)
        return
    data = args.out / "data"
    have = len(Dataset(data)) if (data / "manifest.json").exists() else 0
    result = {"world": "explorer", "episodes": args.episodes, "steps": args.steps, "resolution": args.resolution,
              "frames": args.episodes * (args.steps + 1), "layout": store.DEFAULT_LAYOUT}
    if not (args.reuse and have >= args.episodes):  # (an earlier run's append phase added one)
        if data.exists():
            import shutil  # only here: clearing a previous run

            shutil.rmtree(data)
        result["collect"] = run_phase("collect", args)
    result["sizes"] = sizes(data)
    for name in ("verify", "loader", "step", "append"):
        result[name] = run_phase(name, args)
    need = result["step"]["windows_per_s"]
    result["loader_headroom"] = round(result["loader"]["windows_per_s"] / need, 1)
    common.report("store_scale", result, args)


if __name__ == "__main__":
    main()
