import numpy as np
import pytest

from playworld.data.store import Dataset
from playworld.data.video import export_videos, import_videos
from playworld.errors import PlayworldError
from playworld.media import (
    GAP,
    TEXT_COLOR,
    comparison_frames,
    labelled_panels,
    read_video,
    side_by_side,
    split_comparison,
    text_mask,
    upscale_nearest,
    write_comparison,
    write_video,
)


def _clip(t=12, h=48, w=48):
    x = np.full((t, h, w, 3), 240, np.uint8)
    for i in range(t):
        x[i, 8:24, 2 + i : 18 + i] = (220, 30, 30)
        x[i, 30:, :, 2] = 40 + 10 * i
    return x


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".webm"])
def test_write_read(tmp_path, suffix):
    x = _clip()
    write_video(tmp_path / f"a{suffix}", x, fps=10)  # GIF delays are whole centiseconds
    frames, fps = read_video(tmp_path / f"a{suffix}")
    assert frames.shape == x.shape and frames.dtype == np.uint8 and fps == pytest.approx(10, rel=0.02)
    assert np.abs(frames.astype(int) - x).mean() < 3


def test_mp4_is_browser_playable(tmp_path):
    import av

    write_video(tmp_path / "odd.mp4", _clip(h=33, w=35), fps=10)
    with av.open(str(tmp_path / "odd.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.format.name == "yuv420p"
        assert s.width % 2 == 0 and s.height % 2 == 0


def test_gif_repeated_frames_expand(tmp_path):
    x = _clip(t=6)
    x = np.concatenate([x[:2], x[2:3].repeat(3, 0), x[3:]])  # frames 2..4 identical: merged in the file
    write_video(tmp_path / "r.gif", x, fps=10)
    frames, fps = read_video(tmp_path / "r.gif")
    assert fps == 10 and frames.shape == x.shape


def test_undecodable(tmp_path):
    write_video(tmp_path / "a.mp4", _clip(), fps=8)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "a.mp4").read_bytes()[:300])
    with pytest.raises(PlayworldError, match="cut.mp4"):
        read_video(tmp_path / "cut.mp4")


def test_side_by_side_and_upscale():
    a, b = _clip(h=40, w=30), _clip(h=48, w=20)
    s = side_by_side(a, b, gap=2)
    assert s.shape == (12, 48, 52, 3)
    np.testing.assert_array_equal(s[:, 4:44, :30], a)
    u = upscale_nearest(a, 3)
    assert u.shape == (12, 120, 90, 3) and (u[:, ::3, ::3] == a).all()
    with pytest.raises(ValueError):
        side_by_side(a, a[:5])


def has_text(frame: np.ndarray, text: str, x: int, right: bool = False) -> bool:
    """Does `frame`'s label strip show `text` in the built-in font starting at x (ending at x if right)?"""
    for size in (1, 2, 3, 4):
        mask = text_mask(text, size)
        x0 = x - mask.shape[1] if right else x
        box = frame[size + 1:size + 1 + mask.shape[0], x0:x0 + mask.shape[1]]
        if box.shape[:2] == mask.shape and ((box == TEXT_COLOR).all(-1) == mask).all():
            return True
    return False


def _pair(b=2, t=5, res=16):
    rng = np.random.default_rng(0)
    truth = (rng.integers(0, 4, (b, t, 3, res, res)) * 80).astype(np.uint8)  # 64 colours, like a flat world
    return truth // 2, truth  # generated: darker, so the panels differ


def test_comparison_puts_real_left_and_labels_both_panels():
    generated, truth = _pair()
    video = comparison_frames(generated, truth, scale=4)  # 16 px frames -> 64 px panels
    gen_back, real_back = split_comparison(video, 16)
    np.testing.assert_array_equal(real_back, truth)  # the left panel is the real world
    np.testing.assert_array_equal(gen_back, generated)
    top = video.shape[1] - (2 * 64 + GAP)  # the label strip above the two rows
    assert top > 0
    left = np.moveaxis(truth[0], 1, -1)  # (T, H, W, 3)
    np.testing.assert_array_equal(video[:, top:top + 64, :64], upscale_nearest(left, 4))
    for t, frame in enumerate(video):
        assert has_text(frame, "real", 2) and has_text(frame, "model", 64 + GAP + 2)
        assert has_text(frame, f"{t + 1}/5", video.shape[2] - 2, right=True)  # the frame counter
    assert not np.array_equal(video[0, :top], video[1, :top])  # the counter changes per frame


def test_labels_fit_small_frames_and_a_single_panel():
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    video = labelled_panels({"model": clip}, scale=1)  # 8 px: the scale grows until "model" and "3/3" fit
    assert video.shape[2] % 8 == 0 and video.shape[2] >= 8 * 6
    assert has_text(video[0], "model", 2) and has_text(video[2], "3/3", video.shape[2] - 2, right=True)
    with pytest.raises(ValueError, match="no glyph"):
        text_mask("Real!")


def test_gif_comparison_is_small_and_reads_back(tmp_path):
    generated, truth = _pair(b=4, t=8, res=32)
    gif = write_comparison(generated, truth, tmp_path / "c.gif", fps=10)
    mp4 = write_comparison(generated, truth, tmp_path / "c.mp4", fps=10)
    frames, fps = read_video(gif)
    assert frames.shape[0] == 8 and fps == pytest.approx(10)
    assert frames.shape[2] < read_video(mp4)[0].shape[2] / 2  # a GIF is upscaled at most 2x (the mp4 8x)
    np.testing.assert_array_equal(split_comparison(frames, 32)[1], truth)  # one palette: few colours stay exact


def test_import_export_round_trip(tmp_path, synthetic):
    src = Dataset(synthetic([10, 15, 6], resolution=48))
    paths = export_videos(src.path, tmp_path / "videos", progress=False)
    assert [p.name for p in paths] == ["episode_000000.mp4", "episode_000001.mp4", "episode_000002.mp4"]
    # smooth content codes well; replace the random frames with a moving shape for the pixel check
    write_video(paths[0], _clip(t=10), fps=src.fps)
    ds = import_videos(tmp_path / "videos", tmp_path / "imported", resolution=48, progress=False)
    assert ds.world == "video:videos" and ds.action_space.kind == "none" and ds.fps == src.fps
    assert [ds.episode_length(e) for e in ds.episode_ids()] == [10, 15, 6]
    assert ds.verify() == []
    assert np.abs(np.asarray(ds.load_episode(0).frames, int) - _clip(t=10)).mean() < 3
    assert (ds.load_episode(1).actions == 0).all()
    small = import_videos(tmp_path / "videos", tmp_path / "small", resolution=32, progress=False)
    assert small.load_episode(0).frames.shape == (10, 32, 32, 3)


def test_import_undecodable_stores_nothing(tmp_path):
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "a.mp4", _clip(), fps=8)
    (tmp_path / "v" / "b.mp4").write_bytes(b"not a video" * 50)
    with pytest.raises(PlayworldError, match="b.mp4"):
        import_videos(tmp_path / "v", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
