"""Latent-action quality of genie on unlabeled video, printed as JSON (issue 6's benchmark).

    python bench/repro/genie_latent_actions.py --out bench_runs/genie_latent [--episodes 64 --steps-per-episode 100]
        [--preset small] [--train-steps 1200 | --minutes 20] [--resolution 32] [--recipe staged | preset]

The default recipe is the measured one (README): on top of the preset, cell-aligned tokens
(tok_channels [32, 64]: 16 x 16 tokens of one explorer cell each at 32 px, so a move is an exact token
shift), FSQ levels [5, 5, 5], and Genie's stages: 300 steps of tokenizer + LAM (whose codebook starts
when its 300-step warm-up ends), then the dynamics on the frozen tokens. `--recipe preset` trains the
preset as it is; `--set` overrides either (it is applied after the recipe).

1. collect explorer with the `random` policy (labelled), export it to mp4 and import it back, so the
   model sees video only (action space 'none');
2. train genie with latent actions on the imported video, and the same model with the true actions
   on the labelled data, for comparison;
3. on the val split (episodes paired by order: export/import keep it):
   - majority mapping: each latent action is mapped to the true action it most often coincides
     with on the train split; accuracy of that mapping on val transitions (target >= 0.9);
   - delta-PSNR_4 (Genie's controllability metric): PSNR of the 4th generated frame when the model
     is driven by the actions inferred from the real video (latent) or the real actions (true), minus
     the PSNR when driven by random actions of the same space. Clearly > 0 means the actions steer.
     Beside it: its standard error over the windows (real and random share each window and seed), and the PSNR
     of copying the last context frame 4 steps ahead (a model that does not move the view scores that);
   - next-token accuracy from a fully masked frame with the real action, another action, and copying the
     previous frame's tokens, on frames where the view moved and where it did not (where the dynamics stands).
Steps already done (datasets, finished runs) are reused when the bench is run again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import playworld
from playworld.data.collect import collect
from playworld.data.store import Dataset
from playworld.data.video import export_videos, import_videos
from playworld.metrics import psnr
from playworld.models.interface import frames_to_unit
from playworld.runs.checkpoints import list_checkpoints
from playworld.train.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repo root, for bench.common
from bench import common

HORIZON = 4  # Genie's delta-PSNR is taken 4 frames ahead; --horizon changes it (the keys then say so)


def _episodes(ds: Dataset) -> list[int]:
    return sorted(ds.episode_ids())


@torch.no_grad()
def latent_actions(model, frames: torch.Tensor) -> torch.Tensor:
    """The LAM's latent action of every transition of one episode (T,) (index 0: unknown)."""
    x = frames_to_unit(frames)[None].to(model.device)
    return model.net.infer_actions(x)[0].cpu()


def majority_mapping(model, video: Dataset, labelled: Dataset, pairs: dict[str, list[tuple[int, int]]]) -> dict:
    codebook = model.spec.action_space.n
    n_true = labelled.action_space.n
    counts = {s: np.zeros((codebook, n_true), np.int64) for s in pairs}
    for split, eps in pairs.items():
        for vid_ep, lab_ep in eps:
            z = latent_actions(model, common.episode_frames(video, vid_ep))[1:].numpy()  # transitions t-1 -> t, t >= 1
            a = np.asarray(labelled.load_episode(lab_ep).actions)[1 : 1 + len(z)]
            counts[split] += common.confusion(z, a, codebook, n_true)
    return common.score_mapping(counts["train"], counts["val"])


@torch.no_grad()
def delta_psnr(model, ds: Dataset, eps: list[int], latent: bool, windows_per_episode: int, seed: int,
               horizon: int = HORIZON) -> dict:
    k, space = model.spec.context, model.spec.action_space
    rng = np.random.default_rng(seed)
    real, rand, copy = [], [], []
    for ep in eps:
        frames = common.episode_frames(ds, ep)
        actions = torch.from_numpy(np.asarray(ds.load_episode(ep).actions))
        if latent:
            actions = latent_actions(model, frames).clamp_max(space.n - 1)  # index 0 ('unknown') is never used below
        t_max = len(frames) - horizon
        if t_max <= k:
            continue
        for t in rng.choice(np.arange(k, t_max + 1), size=min(windows_per_episode, t_max + 1 - k), replace=False):
            ctx, ctx_a = frames[None, t - k : t], actions[None, t - k : t]
            copy.append(float(psnr(frames[None, t - 1].numpy(), frames[None, t + horizon - 1].numpy())[0]))
            future = actions[None, t : t + horizon]
            random_future = torch.from_numpy(rng.integers(space.n, size=(1, horizon)))
            for driven, out in ((future, real), (random_future, rand)):
                state = model.reset(ctx, ctx_a if not latent else torch.zeros_like(ctx_a), seed=seed)
                for j in range(horizon):
                    state, frame = model.step(state, driven[:, j])
                out.append(float(psnr(frame.cpu().numpy(), frames[None, t + horizon - 1].numpy())[0]))
    h = horizon
    return {f"psnr_{h}_real_actions": float(np.mean(real)), f"psnr_{h}_random_actions": float(np.mean(rand)),
            f"delta_psnr_{h}": float(np.mean(real) - np.mean(rand)),
            f"delta_psnr_{h}_stderr": float(np.std(np.subtract(real, rand), ddof=1) / np.sqrt(len(real))) if len(real) > 1 else None,
            f"psnr_{h}_copy_last": float(np.mean(copy)), "windows": len(real)}


@torch.no_grad()
def token_accuracy(model, ds: Dataset, eps: list[int], latent: bool, every: int = 5, seed: int = 0) -> dict:
    """How well the dynamics predicts the next frame's tokens from a fully masked frame (argmax, one pass),
    driven by the real action and by another action, beside copying the previous frame's tokens (the floor
    a model that ignores actions reaches). Split by whether the frame changed ('moved': the view shifted)
    or not ('still': noops and blocked moves). A dynamics that learned the actions beats the copy on
    moved frames with the real action, and not with another."""
    net, k, n_act = model.net, model.spec.context, model.spec.action_space.n
    dyn, rng, rows = net.dynamics, np.random.default_rng(seed), []
    for ep in eps:
        frames = common.episode_frames(ds, ep)
        actions = latent_actions(model, frames) if latent else torch.from_numpy(np.asarray(ds.load_episode(ep).actions))
        actions = actions.long().to(model.device)
        tokens = net.tokenizer.encode(frames_to_unit(frames).to(model.device)).view(len(frames), -1)  # (T, N)
        for t in range(k, len(frames), every):
            tk, a = tokens[None, t - k : t + 1], actions[None, t - k : t + 1]
            inp = tk.clone()
            inp[:, -1] = dyn.mask_token
            other = (a[0, -1] + 1 + int(rng.integers(n_act - 1))) % n_act
            acc = []
            for last in (a[0, -1], other):
                driven = a.clone()
                driven[0, -1] = last
                hidden, _ = dyn(inp, net.actions(driven), torch.arange(k + 1, device=model.device))
                acc.append(float((dyn.logits(hidden[:, -1]).argmax(-1) == tk[:, -1]).float().mean()))
            rows.append((*acc, float((tk[:, -2] == tk[:, -1]).float().mean()), bool((frames[t] != frames[t - 1]).any())))
    r = np.array(rows)
    out = {}
    for name, sel in (("moved", r[:, 3] > 0), ("still", r[:, 3] == 0)):
        if sel.any():
            out[name] = {"real_action": float(r[sel, 0].mean()), "other_action": float(r[sel, 1].mean()),
                         "copy_previous": float(r[sel, 2].mean()), "frames": int(sel.sum())}
    return out


# the measured recipe (see the module docstring): --set overrides after it
STAGED = ["model.tok_channels=[32,64]", "model.levels=[5,5,5]", "model.tokenizer_steps=300", "model.lam_warmup=300"]


def paired_datasets(out: Path, episodes: int, steps: int, resolution: int) -> tuple[Dataset, Dataset, dict]:
    """The labelled explorer episodes, the same episodes as imported video (no actions), and the
    (video episode, labelled episode) pairs per split."""
    labelled_path, video_dir, video_path = out / "explorer", out / "mp4", out / "explorer_video"
    if not labelled_path.exists():
        collect("explorer", labelled_path, episodes=episodes, policy="random", seed=0, resolution=resolution, steps=steps,
                progress=False)
    if not video_path.exists():
        export_videos(labelled_path, video_dir, progress=False)
        import_videos(video_dir, video_path, resolution=resolution, progress=False)
    labelled, video = Dataset(labelled_path), Dataset(video_path)
    assert video.action_space.kind == "none"
    lab_eps, vid_eps = _episodes(labelled), _episodes(video)
    lengths = [(labelled.episode_length(a), video.episode_length(b)) for a, b in zip(lab_eps, vid_eps)]
    if len(lab_eps) != len(vid_eps) or any(a != b for a, b in lengths):
        raise SystemExit("the imported video does not pair up with the collected episodes")
    pairs = {s: [(v, l) for v, l in zip(vid_eps, lab_eps) if labelled.episode_split(l) == s] for s in ("train", "val")}
    return labelled, video, pairs


def train_runs(out: Path, labelled: Dataset, video: Dataset, args: argparse.Namespace, sets: list[str]) -> dict[str, Path]:
    """genie with latent actions on the video and with the true actions on the labelled data (finished runs reused)."""
    runs = {}
    for name, data, actions in (("latent", video.path, "latent"), ("true", labelled.path, "true")):
        run = out / f"run_{name}"
        if not list_checkpoints(run):
            train(run, data=data, model="genie", preset=args.preset, sets=[f"model.actions={actions}", *sets],
                  steps=args.train_steps, minutes=args.minutes or None, progress=False)
        runs[name] = run
    return runs


def last_train_log(run: Path) -> dict:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return ([x for x in lines if x.get("kind", x.get("phase")) == "train"] or lines)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.options(out="bench_runs/genie_latent",
                                 out_help="folder for datasets, videos and runs (reused when the bench runs again)")])
    ap.add_argument("--episodes", type=int, default=64, help="explorer episodes to collect")
    ap.add_argument("--steps-per-episode", type=int, default=100, help="steps per episode")
    ap.add_argument("--resolution", type=int, default=32, help="frame size (the staged recipe's tokens are one cell at 32)")
    ap.add_argument("--preset", default="small", help="training preset (debug, small, base or a .yaml)")
    ap.add_argument("--train-steps", type=int, default=1200, help="optimiser steps per model (about 90 minutes each on one CPU thread)")
    ap.add_argument("--recipe", choices=("staged", "preset"), default="staged", help="staged: the measured model settings "
                    "on top of the preset (cell-aligned tokens, FSQ [5,5,5], 300 tokenizer steps first); preset: the preset alone")
    ap.add_argument("--minutes", type=float, default=0.0, help="also stop each training after this many minutes (0 = no limit)")
    ap.add_argument("--windows", type=int, default=16, help="delta-PSNR windows per val episode")
    ap.add_argument("--horizon", type=int, default=HORIZON, help="frames ahead at which delta-PSNR is taken (Genie: 4)")
    ap.add_argument("--temperature", type=float, default=None, help="token sampling temperature for the evaluation "
                    "(default: the runs' own; 0 = argmax)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra --set overrides for both runs")
    args = ap.parse_args()
    common.start(args)
    stages = common.Stages()

    labelled, video, pairs = stages.run("data", lambda: paired_datasets(args.out, args.episodes, args.steps_per_episode,
                                                                        args.resolution))
    sets = [*(STAGED if args.recipe == "staged" else []), *args.sets]
    runs = stages.run("train", lambda: train_runs(args.out, labelled, video, args, sets))
    latent_model, true_model = playworld.load(runs["latent"]), playworld.load(runs["true"])
    if args.temperature is not None:
        latent_model.config.temperature = true_model.config.temperature = args.temperature
    val_video, val_labelled = [v for v, _ in pairs["val"]], [l for _, l in pairs["val"]]

    def evaluate():
        latent = {"majority_mapping": majority_mapping(latent_model, video, labelled, pairs),
                  **delta_psnr(latent_model, video, val_video, True, args.windows, seed=0, horizon=args.horizon),
                  "next_token_accuracy": token_accuracy(latent_model, video, val_video[:8], True)}
        true = {**delta_psnr(true_model, labelled, val_labelled, False, args.windows, seed=0, horizon=args.horizon),
                "next_token_accuracy": token_accuracy(true_model, labelled, val_labelled[:8], False)}
        return latent, true

    latent, true = stages.run("evaluate", evaluate)
    common.report("genie_latent_actions", {
        "episodes": args.episodes, "steps_per_episode": args.steps_per_episode, "resolution": args.resolution,
        "preset": args.preset, "train_steps": args.train_steps, "minutes": args.minutes, "recipe": args.recipe, "sets": sets,
        "horizon": args.horizon, "temperature": float(latent_model.config.temperature),
        "latent": latent | {"last_train_log": last_train_log(runs["latent"])},
        "true": true | {"last_train_log": last_train_log(runs["true"])},
        "wall_s": round(sum(stages.seconds.values()), 1), "cpu_s": round(sum(stages.cpu_seconds.values()), 1),
        "targets": {"accuracy_val": ">= 0.9", "delta_psnr_4_latent": "> 0"},
    }, args)


if __name__ == "__main__":
    main()
