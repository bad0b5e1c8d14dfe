"""Resume equivalence, for every registered family: 2N steps straight == N, resume, N."""

from __future__ import annotations

import itertools

import pytest
import torch
from safetensors.torch import load_file

import tiny_family
from playworld.models.registry import list_families
from playworld.data.windows import make_loader
from playworld.runs.checkpoints import resolve_checkpoint
from playworld.train.loop import train

FAMILIES = sorted(set(list_families()) | {tiny_family.NAME})
N = 2


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=[] if f == tiny_family.NAME else pytest.mark.slow) for f in FAMILIES]
)
def test_resume_gives_the_same_weights_as_a_straight_run(family, tmp_path, tiny_data):
    # checkpoints only where the budget ends; validation and media on, to show they do not disturb
    # training (every step for the tiny family; only at the ends of the budgets for the real, slower ones)
    every = "1" if family == tiny_family.NAME else "0"
    sets = ["train.ckpt_every=1000", f"train.val_every={every}", f"train.media_every={every}", "train.media_horizon=1",
            "train.val_batches=1", "train.warmup_steps=2", "train.batch_size=2"]
    common = dict(data=tiny_data, model=family, preset="debug", sets=sets, progress=False)
    straight = train(tmp_path / "straight", steps=2 * N, **common)
    first = train(tmp_path / "resumed", steps=N, **common)
    assert first.step == N
    resumed = train(tmp_path / "resumed", resume=True, steps=2 * N, sets=sets, progress=False)
    assert straight.step == resumed.step == 2 * N
    for weights in ("raw", "model"):  # the optimised weights and the EMA weights
        a = load_file(resolve_checkpoint(tmp_path / "straight") / f"{weights}.safetensors")
        b = load_file(resolve_checkpoint(tmp_path / "resumed") / f"{weights}.safetensors")
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=f"{weights}:{key}")
    # and the resumed run really trained: its weights moved away from the checkpoint it resumed from
    start = load_file(tmp_path / "resumed" / "checkpoints" / f"{N:08d}" / "raw.safetensors")
    end = load_file(resolve_checkpoint(tmp_path / "resumed") / "raw.safetensors")
    assert any(not torch.equal(start[k], end[k]) for k in start if start[k].is_floating_point())


@pytest.mark.slow
def test_the_batch_stream_resumes_mid_way_with_and_without_workers(tiny_data):
    def take(start, workers, n):
        stream = make_loader(tiny_data, 2, 1, 3, "train", seed=5, rank=0, world_size=1, num_workers=workers, start=start)
        return [b.future_frames for b in itertools.islice(stream, n)]

    straight = take(0, 0, 7)
    for later, expected in zip(take(4, 0, 3), straight[4:]):
        assert torch.equal(later, expected)
    for later, expected in zip(take(4, 2, 3), straight[4:]):
        assert torch.equal(later, expected)
