"""Training logs: metrics.jsonl (always), TensorBoard (when installed), a rich progress bar."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from playworld.atomic import write_atomic


class MetricsLog:
    """Appends one JSON object per line to run_dir/metrics.jsonl; mirrors scalars to TensorBoard.

    On resume, lines logged after the checkpoint's step (by the interrupted run) are dropped so the
    file reads as one uninterrupted run; the file is rewritten atomically, so a kill then leaves the old
    file or the new one. Lines that do not parse (half-written by a kill, not UTF-8) are dropped too.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        if self.path.exists():
            text = self.path.read_bytes().decode("utf-8", "replace")
            kept = [ln for ln in text.splitlines() if _step_of(ln) <= resume_step]
            write_atomic(self.path, "".join(ln + "\n" for ln in kept))
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            try:  # when installed (pip install 'playworld[tb]'): tensorboard is an optional dependency
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step + 1 if resume_step else None)
            except Exception:  # tensorboard is optional; its absence is not an error
                self._tb = None

    def write(self, step: int, kind: str, values: dict[str, Any]) -> None:
        row = {"step": step, "kind": kind, **{k: _plain(v) for k, v in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _plain(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf
    return v


def _step_of(line: str) -> int:
    try:
        step = json.loads(line).get("step", 0)
        return step if type(step) is int else 1 << 62
    except (ValueError, AttributeError, RecursionError):
        return 1 << 62  # unreadable (half-written) line: drop it


def progress_bar(enabled: bool) -> Progress:
    """Where training is (the step, and the minutes of a time budget), elapsed and remaining time, then the
    latest loss and samples/s. The bar counts steps, or seconds under a time budget."""
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(bar_width=20),
        TextColumn("{task.fields[where]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not enabled,
        transient=False,
    )
