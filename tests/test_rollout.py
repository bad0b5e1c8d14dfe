"""`playworld rollout` and the rollout library: the real world beside autoregressive frames, mp4 and gif."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "train"))
import tiny_family  # noqa: E402  (registers the 'tiny-test' family)

from playworld.data.collect import collect  # noqa: E402
from playworld.data.store import Dataset  # noqa: E402
from playworld.media import read_video  # noqa: E402
from playworld.models.baselines import CopyLast  # noqa: E402
from playworld.models.interface import WorldSpec  # noqa: E402
from playworld.media import comparison_frames, split_comparison  # noqa: E402
from playworld.data.windows import dataset_windows  # noqa: E402
from playworld.models.rollout import rollout  # noqa: E402



@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return Path(collect("explorer", tmp_path_factory.mktemp("d") / "ex", episodes=4, steps=20, resolution=32, progress=False).path)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data) -> Path:
    from playworld.train.loop import train

    out = tmp_path_factory.mktemp("r") / "tiny"
    train(out, data=data, model=tiny_family.NAME, preset="debug", steps=2, progress=False)
    return out


def test_dataset_windows_follow_the_time_convention(data):
    ds = Dataset(data)
    b = dataset_windows(ds, context=3, horizon=5, episodes=2, split="train", seed=1)
    assert b.context_frames.shape == (2, 3, 3, 32, 32) and b.future_frames.shape == (2, 5, 3, 32, 32)
    assert b.context_actions.shape == (2, 3) and b.future_actions.shape == (2, 5)
    # seeded: the same arguments give the same windows
    assert torch.equal(dataset_windows(ds, 3, 5, 2, "train", seed=1).future_frames, b.future_frames)
    # each window is a real consecutive slice of one episode (frames and the actions that led into them)
    for row in range(2):
        found = False
        for ep_id in ds.episode_ids("train"):
            ep = ds.load_episode(ep_id)
            frames = torch.from_numpy(ep.frames[:].copy()).permute(0, 3, 1, 2)
            actions = torch.from_numpy(ep.actions[:].copy())
            for t in range(3, len(frames) - 4):
                if torch.equal(frames[t - 3 : t + 5], torch.cat([b.context_frames[row], b.future_frames[row]])):
                    assert torch.equal(actions[t - 3 : t + 5], torch.cat([b.context_actions[row], b.future_actions[row]]))
                    found = True
        assert found
    # a horizon longer than the episodes is shortened to what fits
    assert dataset_windows(ds, 3, 1000, 2, "train").future_frames.shape[1] == 21 - 3


def test_rollout_feeds_back_its_own_frames(data):
    ds = Dataset(data)
    spec = WorldSpec(resolution=32, action_space=ds.action_space, context=2)
    b = dataset_windows(ds, 2, 6, 3, "train", seed=0)
    generated = rollout(CopyLast(spec), b, horizon=6)
    assert generated.shape == (3, 6, 3, 32, 32) and generated.dtype == torch.uint8
    assert torch.equal(generated, b.context_frames[:, -1:].expand(-1, 6, -1, -1, -1))
    video = comparison_frames(generated, b.future_frames, scale=2)
    strip = 7 + 2 * 2  # the label strip: 7 px glyphs and a 2 px margin above and below
    assert video.shape == (6, strip + 3 * 64 + 2 * 2, 2 * 64 + 2, 3)
    real, gen = split_comparison(video, 32)[::-1]
    assert torch.equal(torch.from_numpy(real), b.future_frames) and torch.equal(torch.from_numpy(gen), generated)


def test_rollout_cli_writes_mp4_and_gif(run, data, tmp_path, capsys):
    from playworld.cli import main

    for name in ("r.mp4", "r.gif"):
        with pytest.raises(SystemExit) as e:
            main(["rollout", str(run), "--data", str(data), "--horizon", "5", "--episodes", "2", "--out", str(tmp_path / name)])
        assert e.value.code == 0
        frames, _ = read_video(tmp_path / name)
        # 5 frames; 2 rows of 32x32 real | model under a label strip, upscaled 8x in mp4, 2x in GIF (64 px:
        # just room for "model" and "5/5")
        scale, strip = (8, 2 * 7 + 2 * 3) if name.endswith(".mp4") else (2, 7 + 2 * 2)
        assert frames.shape == (5, strip + 2 * 32 * scale + 2, 2 * 32 * scale + 2, 3)
    assert "left: real, right: model" in capsys.readouterr().out
    # the same seed gives the same video
    shutil.copy(tmp_path / "r.gif", tmp_path / "first.gif")
    with pytest.raises(SystemExit):
        main(["rollout", str(run), "--data", str(data), "--horizon", "5", "--episodes", "2", "--out", str(tmp_path / "r.gif")])
    assert (tmp_path / "r.gif").read_bytes() == (tmp_path / "first.gif").read_bytes()


def test_rollout_cli_defaults_to_the_runs_dataset_and_rejects_bad_suffix(run, capsys):
    from playworld.cli import main

    with pytest.raises(SystemExit) as e:
        main(["rollout", str(run), "--horizon", "3", "--episodes", "1"])
    assert e.value.code == 0 and (run / "rollout.mp4").is_file()
    with pytest.raises(SystemExit) as e:
        main(["rollout", str(run), "--out", str(run / "x.avi")])
    assert e.value.code != 0 and "use .mp4, .webm or .gif" in capsys.readouterr().err
