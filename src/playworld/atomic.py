"""Atomic file writes: a file is either its old content or its new content, never half of each.

    write_atomic(run_dir / "config.yaml", yaml.safe_dump(config))
    fsync_dir(folder)      # after renaming a folder into place

The new content goes to a temporary file beside the target (same folder, so the same file system),
is flushed to disk, then renamed over the target with `os.replace`, which POSIX and Windows make
atomic; the folder is synced so the rename itself survives a power cut. A kill at any moment leaves
either the old file or the new one (and perhaps a `.name.*.tmp` file, which `clean_temporaries`
removes). Every file of a run directory (config.yaml, meta.json, a rewritten metrics.jsonl) is
written through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".tmp"


def fsync_dir(path: str | Path) -> None:
    """Make a rename or a new file inside `path` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one atomic step."""
    path = Path(path)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def clean_temporaries(folder: str | Path) -> None:
    """Remove the temporary files a write killed half-way left in `folder`."""
    with contextlib.suppress(OSError):
        for p in Path(folder).glob(f".*{TMP_SUFFIX}"):
            if p.is_file():
                with contextlib.suppress(OSError):
                    p.unlink()
