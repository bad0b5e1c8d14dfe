"""Writing checkpoints: one folder per saved step, written to a temporary name then renamed, so a crash
or Ctrl-C never leaves a half-written checkpoint under its final name. The layout and how a run is
read back are in runs/checkpoints.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model
from torch import nn

from playworld.runs.checkpoints import list_checkpoints


def save_checkpoint(
    run_dir: Path, step: int, meta: dict[str, str], ema_net: nn.Module, raw_net: nn.Module,
    training_state: dict[str, Any], keep: int = 0,
) -> Path:
    """Write checkpoints/<step>/ atomically, point `last` at it, drop old ones beyond `keep`."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{step:08d}"
    tmp = root / f".tmp-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(ema_net, str(tmp / "model.safetensors"), metadata=meta)
    save_model(raw_net, str(tmp / "raw.safetensors"), metadata=meta)
    torch.save(training_state, tmp / "training_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _point_last(root, final.name)
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _point_last(root: Path, name: str) -> None:
    last, tmp = root / "last", root / ".last-tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(name, tmp)
    except OSError:  # file systems without symlinks: a small file holding the folder's name
        tmp.write_text(name + "\n")
    os.replace(tmp, last)
