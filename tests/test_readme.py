"""The README's Python example runs exactly as written (on a tiny run in the layout `make demo` leaves)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from playworld.data.collect import collect
from playworld.train.loop import train

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- readme-example -->"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    assert MARKER in text, f"README.md lost the {MARKER} line that marks its runnable example"
    m = re.search(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, re.S)
    assert m, f"no ```python block right after {MARKER}"
    return m.group(1)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path):
    code = readme_example()
    # the layout `make demo` leaves: data/explorer and runs/quickstart, here tiny
    collect("explorer", tmp_path / "data" / "explorer", 6, policy="explore", seed=0, steps=24, resolution=32, progress=False)
    train(tmp_path / "runs" / "quickstart", data=tmp_path / "data" / "explorer", preset="debug", steps=2, progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, f"the README example failed:\n{code}\n{res.stderr[-3000:]}"
