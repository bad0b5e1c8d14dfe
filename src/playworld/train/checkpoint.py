"""Writing checkpoints: one folder per saved step, written to a temporary name then renamed, so a crash
or Ctrl-C never leaves a half-written checkpoint under its final name. The layout, the digests and how
a run is read back are in runs/checkpoints.py.

A kill can still leave debris, which the next save removes: `.tmp-<step>` folders of a save in flight,
and `.old-<step>` folders of a rotation in flight (an old checkpoint is renamed out of the listing in
one step before it is deleted, so a half-deleted folder is never listed as a checkpoint).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import _remove_duplicate_names, save_file
from torch import nn

from playworld.atomic import fsync_dir
from playworld.errors import PlayworldError
from playworld.runs.checkpoints import DIGEST, STATE_DIGEST, file_sha256, list_checkpoints, tensors_digest

DEBRIS = (".tmp-", ".old-")


def save_checkpoint(
    run_dir: Path, step: int, meta: dict[str, str], ema_net: nn.Module, raw_net: nn.Module,
    training_state: dict[str, Any], keep: int = 0,
) -> Path:
    """Write checkpoints/<step>/ atomically, point `last` at it, drop old ones beyond `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    clean_debris(root)
    final = root / f"{step:08d}"
    tmp = root / f".tmp-{step:08d}"
    tmp.mkdir()
    torch.save(training_state, tmp / "training_state.pt")
    meta = {**meta, STATE_DIGEST: file_sha256(tmp / "training_state.pt")}
    _save_weights(raw_net, tmp / "raw.safetensors", meta)
    _save_weights(ema_net, tmp / "model.safetensors", meta)
    for f in tmp.iterdir():  # on disk before the rename makes them the checkpoint
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fsync_dir(tmp)
    if final.exists():  # the same step saved again (a resume with nothing left to do): out of the way first
        os.replace(final, root / f".old-{step:08d}")
    os.replace(tmp, final)
    fsync_dir(root)
    _point_last(root, final.name)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            _remove(old)
    clean_debris(root)
    return final


def _save_weights(net: nn.Module, path: Path, meta: dict[str, str]) -> None:
    """safetensors' save_model (shared tensors saved once), with the digest of what it writes in the metadata."""
    state = net.state_dict()
    meta = dict(meta)
    for kept, removed in _remove_duplicate_names(state).items():
        for name in removed:
            meta.setdefault(name, kept)
            del state[name]
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise PlayworldError(f"refusing to save a checkpoint: weight {name} is NaN or infinite",
                                 "lower train.lr (--set train.lr=...) and resume from the last good checkpoint")
    save_file(tensors, str(path), metadata={**meta, DIGEST: tensors_digest(tensors, meta)})


def _remove(folder: Path) -> None:
    """Delete a checkpoint folder: renamed out of the listing in one step, then deleted."""
    gone = folder.with_name(f".old-{folder.name}")
    os.replace(folder, gone)
    shutil.rmtree(gone, ignore_errors=True)


def clean_debris(root: Path) -> None:
    """Remove what a killed save or rotation left in checkpoints/: .tmp-* and .old-* folders, a stray .last-tmp."""
    for p in root.iterdir():
        if p.name.startswith(DEBRIS) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    tmp = root / ".last-tmp"
    if tmp.is_symlink() or tmp.is_file():
        tmp.unlink()


def _point_last(root: Path, name: str) -> None:
    last, tmp = root / "last", root / ".last-tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(name, tmp)
    except OSError:  # file systems without symlinks: a small file holding the folder's name
        tmp.write_text(name + "\n")
    os.replace(tmp, last)
    fsync_dir(root)


def drop_checkpoints_after(run_dir: Path, step: int) -> None:
    """Remove the checkpoints saved after `step` (a resume from an earlier one replaces them) and point `last` at `step`."""
    root = Path(run_dir) / "checkpoints"
    later = [p for p in list_checkpoints(run_dir) if int(p.name) > step]
    for p in later:
        _remove(p)
    if later:
        _point_last(root, f"{step:08d}")
