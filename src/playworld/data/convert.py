"""`playworld data convert`: copy a dataset into a new one with another layout (or a schema-1 dataset into schema 2).

Every episode keeps its id, split, info and arrays (frames bit for bit: both layouts are lossless);
world, options, action space, state spec, split seed and history carry over, with one more history
entry naming the source. The new dataset is built beside `out` and renamed into place when complete.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from playworld.data.layout import COMPRESSED
from playworld.data.progress import progress_iter
from playworld.data.store import Dataset, building, create_or_append
from playworld.errors import PlayworldError


def convert(src: str | Path | Dataset, out: str | Path, layout: str = COMPRESSED, level: int | None = None,
            progress: bool = True) -> Dataset:
    """Write every episode of `src` into the new dataset `out` in `layout`; returns the new dataset."""
    ds = src if isinstance(src, Dataset) else Dataset(src)
    out = Path(out)
    ids = ds.episode_ids()
    if ids != list(range(len(ids))):
        raise PlayworldError(f"dataset {ds.path} has episode ids {ids[:5]}..., not 0..{len(ids) - 1}",
                             "convert only datasets written by playworld (their ids run 0, 1, 2, ...)")
    source = {"kind": "convert", "src": str(ds.path.resolve()), "from_schema": ds.manifest["schema_version"],
              "from_layout": ds.layout, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "first_episode": 0}
    with building(out) as stage:
        with create_or_append(stage, ds.world, ds.resolution, ds.action_space, ds.fps, ds.manifest.get("world_options") or None,
                              split_seed=int(ds.manifest["split_seed"]), layout=layout, level=level) as writer:
            writer.manifest["history"] = [*ds.manifest.get("history", []), source]
            writer.manifest["state"] = dict(ds.manifest.get("state", {}))
            writer.save_manifest()
            for ep in progress_iter(ids, f"converting to {layout}", enabled=progress):
                e, entry = ds.load_episode(ep), ds.entry(ep)
                writer.add_episode(np.asarray(e.frames), e.actions, e.rewards, e.terminated, e.truncated, e.state,
                                   info=entry.get("info"), split=entry["split"])
    return Dataset(out)

