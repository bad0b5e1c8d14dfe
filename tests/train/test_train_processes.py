"""The trainer in separate processes: DDP under torchrun on CPU (gloo), Ctrl-C saves a checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playworld.models.registry import list_families
from playworld.runs.checkpoints import list_checkpoints, resolve_checkpoint

SCRIPT = Path(__file__).parent / "cli_with_tiny.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in list_families() if f != "tiny-test"] or ["tiny-test"])
def test_torchrun_two_processes_on_cpu(family, tmp_path, tiny_data):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           "train", "--data", str(tiny_data), "--model", family, "--preset", "debug", "--steps", "3",
           "--out", str(run), "--device", "cpu", "--no-progress", "--set", "train.batch_size=2"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("step budget reached at step 3") == 1  # only rank 0 reports
    assert resolve_checkpoint(run).name == "00000003"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["started"]["world_size"] == 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]  # written once, by rank 0


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, tiny_data):
    run = tmp_path / "sigint"
    cmd = [sys.executable, str(SCRIPT), "train", "--data", str(tiny_data), "--model", "tiny-test", "--preset", "debug",
           "--steps", "1000000", "--out", str(run), "--no-progress", "--set", "train.ckpt_every=1000000",
           "--set", "train.val_every=0", "--set", "train.log_every=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "interrupted at step" in out and "--resume" in out and "Traceback" not in out
    saved = list_checkpoints(run)
    assert len(saved) == 1 and int(saved[0].name) >= 3
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert rows[-1] == {**rows[-1], "kind": "end", "reason": "interrupted", "step": int(saved[0].name)}
