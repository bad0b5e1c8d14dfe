"""What a dataset holds: counts, sizes, splits, actions, rewards; and a contact sheet of frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from playworld.data.layout import FRAMES_FILE
from playworld.data.store import SPLITS, Dataset, stored_bytes
from playworld.errors import PlayworldError


def _as_dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else Dataset(dataset)


def dataset_info(dataset: Dataset | str | Path) -> dict:
    """A JSON-ready summary: world, shapes, episode/frame counts per split, bytes on disk,
    episode-length range, action histogram (discrete) or per-dimension mean/std (continuous),
    and reward statistics."""
    ds = _as_dataset(dataset)
    ids = ds.episode_ids()
    lengths = np.array([ds.episode_length(e) for e in ids], dtype=np.int64)
    stored = sum(stored_bytes(e) for e in ds.entries)
    on_disk = sum(p.stat().st_size for p in ds.path.rglob("*") if p.is_file())
    splits = {}
    for split in SPLITS:
        sids = ds.episode_ids(split)
        splits[split] = {"episodes": len(sids), "frames": int(sum(ds.episode_length(e) for e in sids))}

    space = ds.action_space
    rewards, actions = [], []
    for ep in ids:
        e = ds.load_episode(ep)
        rewards.append(e.rewards[1:])  # rewards[0] belongs to the reset, always 0
        actions.append(e.actions[1:])  # actions[0] is the no-op that leads into the reset frame
    rewards_all = np.concatenate(rewards) if rewards else np.zeros(0, np.float32)
    if space.kind == "continuous":
        acts = np.concatenate(actions) if actions else np.zeros((0, space.dim), np.float32)
        action_stats = {"mean": acts.mean(0).round(4).tolist() if len(acts) else [],
                        "std": acts.std(0).round(4).tolist() if len(acts) else []}
    else:
        acts = np.concatenate(actions) if actions else np.zeros(0, np.int64)
        counts = np.bincount(acts, minlength=space.n).tolist()
        names = list(space.names) if len(space.names) == space.n else [str(i) for i in range(space.n)]
        action_stats = {"histogram": dict(zip(names, counts))}
    return {
        "path": str(ds.path), "world": ds.world, "world_options": ds.manifest.get("world_options", {}),
        "resolution": ds.resolution, "fps": ds.fps, "action_space": ds.action_space.describe(),
        "schema_version": ds.manifest["schema_version"], "fingerprint": ds.fingerprint,
        "episodes": len(ids), "frames": int(lengths.sum()),
        "episode_length": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2), "max": int(lengths.max())}
        if len(ids) else None,
        "splits": splits, "bytes_stored": int(stored), "bytes_on_disk": int(on_disk), "storage": storage(ds),
        "state_keys": ds.state_keys, "actions": action_stats,
        "rewards": {
            "total": float(rewards_all.sum()), "mean_per_step": float(rewards_all.mean()) if len(rewards_all) else 0.0,
            "min": float(rewards_all.min()) if len(rewards_all) else 0.0,
            "max": float(rewards_all.max()) if len(rewards_all) else 0.0,
            "nonzero_steps": int(np.count_nonzero(rewards_all)),
        },
    }


def storage(ds: Dataset) -> dict:
    """How the frames are stored: layout, codec, whether lossless, bytes against raw uint8."""
    frames_file = FRAMES_FILE[ds.layout]
    frame_bytes = sum(int(e["files"][frames_file]["bytes"]) for e in ds.entries if frames_file in e["files"])
    raw = sum(int(e["length"]) for e in ds.entries) * ds.resolution**2 * 3
    codec = ds.manifest.get("frames", {})
    return {
        "schema_version": ds.manifest["schema_version"], "layout": ds.layout,
        "frames_codec": f"{codec['codec']}-{codec['level']}" if codec else "npy (uncompressed)",
        "lossless": True,  # both layouts store the frames bit for bit; `data verify` checks the decoded bytes' sha256
        "frame_bytes": frame_bytes, "raw_frame_bytes": raw,
        "frames_smaller_than_raw": round(raw / frame_bytes, 1) if frame_bytes else None,
    }


def contact_sheet(dataset: Dataset | str | Path, out_png: str | Path, n: int = 16, seed: int = 0) -> Path:
    """Save a grid of `n` frames (evenly spread over episodes and time) as a PNG; returns its path."""

    ds = _as_dataset(dataset)
    ids = ds.episode_ids()
    if not ids:
        raise PlayworldError(f"dataset {ds.path} has no episodes", "collect some first with `playworld collect`")
    rng = np.random.default_rng(seed)
    picks = [ids[i * len(ids) // n] for i in range(n)]  # episodes spread evenly (repeated when n > episodes)
    tiles = []
    for ep in picks:
        frames = ds.load_episode(ep).frames
        tiles.append(np.asarray(frames[int(rng.integers(len(frames)))]))
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    r, gap = ds.resolution, 2
    scale = max(1, 128 // r)  # small frames are shown enlarged, pixels kept crisp
    sheet = np.full((rows * (r + gap) + gap, cols * (r + gap) + gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        y, x = gap + (i // cols) * (r + gap), gap + (i % cols) * (r + gap)
        sheet[y : y + r, x : x + r] = tile
    image = Image.fromarray(sheet)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    image.save(out_png)
    return out_png
