"""The trainer in separate processes: DDP under torchrun on CPU (gloo) keeps the ranks in step and trains
as one process with the ranks' batches together (and a DDP that does not all-reduce fails both checks);
Ctrl-C saves a checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from playworld.data.windows import WindowSampler, window_order
from playworld.models.registry import list_families
from playworld.runs.checkpoints import list_checkpoints, resolve_checkpoint
from playworld.train.loop import train

SCRIPT = Path(__file__).parent / "cli_with_tiny.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(run: Path, data, family: str, batch_size: int, extra: list[str] = (), env: dict | None = None) -> str:
    """`playworld train` on 2 CPU processes (gloo) for STEPS steps -> stdout; each rank dumps its weights."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           "train", "--data", str(data), "--model", family, "--preset", "debug", "--steps", str(STEPS),
           "--out", str(run), "--device", "cpu", "--no-progress", "--set", f"train.batch_size={batch_size}", *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                         env={**ENV, "PLAYWORLD_TEST_DUMP_WEIGHTS": str(run / "ranks"), **(env or {})})
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _ranks(run: Path) -> tuple[dict, dict]:
    return torch.load(run / "ranks" / "rank0.pt"), torch.load(run / "ranks" / "rank1.pt")


def _same(a: dict, b: dict, **tolerance) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].double(), b[k].double(), **tolerance) for k in a)


STEPS = 3


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in list_families() if f != "tiny-test"] or ["tiny-test"])
def test_torchrun_two_processes_on_cpu(family, tmp_path, tiny_data):
    run = tmp_path / "ddp"
    out = _torchrun(run, tiny_data, family, batch_size=2)
    assert out.count(f"step budget reached at step {STEPS}") == 1  # only rank 0 reports
    assert resolve_checkpoint(run).name == f"{STEPS:08d}"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["started"]["world_size"] == 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]  # written once, by rank 0
    rank0, rank1 = _ranks(run)  # gradients all-reduced: every rank took the same steps
    assert _same(rank0, rank1, rtol=0, atol=0), "the ranks' weights disagree after training"


# -- 2 ranks x batch b == 1 process x batch 2b -------------------------------------------------------
# Rank r's batch i holds windows perm[r::2][i*b:(i+1)*b] of the epoch's permutation (data/windows.py),
# so the two ranks' batch i together are the single process's batch i of 2b (within the first epoch).
# With a deterministic loss (the tiny family, noise 0), all-reduced gradients are the mean over the 2b
# windows, so both train the same weights up to float rounding.

B = 2
DETERMINISTIC = ["--set", "model.noise=0"]


@pytest.fixture(scope="module")
def one_process_2b(tiny_data, tmp_path_factory) -> dict:
    run = tmp_path_factory.mktemp("single") / "run"
    train(run, data=tiny_data, model="tiny-test", preset="debug", steps=STEPS, device="cpu", progress=False,
          sets=[f"train.batch_size={2 * B}", "model.noise=0"])
    return load_file(resolve_checkpoint(run) / "raw.safetensors")


def _matches_one_process(run: Path, single: dict) -> bool:
    ddp = load_file(resolve_checkpoint(run) / "raw.safetensors")
    return _same(ddp, single, rtol=1e-5, atol=1e-6)  # float rounding: ~3e-8 here; without all-reduce ~5e-3


def test_two_ranks_see_together_the_windows_one_process_sees_with_twice_the_batch(tiny_data):
    n = len(WindowSampler(tiny_data, 2, 1, "train"))
    assert STEPS * 2 * B <= 2 * (n // 2)  # the comparison stays inside the first epoch
    ranks = [list(itertools.islice(window_order(n, B, 0, r, 2), STEPS)) for r in (0, 1)]
    single = list(itertools.islice(window_order(n, 2 * B, 0, 0, 1), STEPS))
    for i in range(STEPS):
        assert sorted(np.concatenate([ranks[0][i], ranks[1][i]]).tolist()) == sorted(single[i].tolist())


@pytest.mark.slow
def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(tmp_path, tiny_data, one_process_2b):
    run = tmp_path / "ddp"
    _torchrun(run, tiny_data, "tiny-test", batch_size=B, extra=DETERMINISTIC)
    rank0, rank1 = _ranks(run)
    assert _same(rank0, rank1, rtol=0, atol=0)
    assert _matches_one_process(run, one_process_2b)


@pytest.mark.slow
def test_the_ddp_checks_fail_when_gradients_are_not_all_reduced(tmp_path, tiny_data, one_process_2b):
    """The trainer with DDP swapped for a wrapper that never synchronises: each rank steps on its own
    batch, so the ranks drift apart and neither is the one-process run."""
    run = tmp_path / "ddp"
    _torchrun(run, tiny_data, "tiny-test", batch_size=B, extra=DETERMINISTIC, env={"PLAYWORLD_TEST_NO_ALLREDUCE": "1"})
    rank0, rank1 = _ranks(run)
    assert not _same(rank0, rank1, rtol=0, atol=0)
    assert not _matches_one_process(run, one_process_2b)


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
