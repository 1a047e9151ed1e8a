"""vqclip.video: the bundled ffmpeg, probe, and write_video's browser-safe output."""

from __future__ import annotations


import numpy as np
import pytest

from vqclip.errors import PostError
from vqclip.video import crf_for_quality, frame_at, probe, write_video

from helpers_media import make_tone


def _frames(n=24, w=64, h=48):
    return [np.full((h, w, 3), (i * 10) % 256, np.uint8) for i in range(n)]




def test_write_video_is_browser_safe_mp4(tmp_path):
    out = write_video(_frames(), tmp_path / "v.mp4", fps=12)
    info = probe(out)
    assert (info.codec, info.pix_fmt, info.size) == ("h264", "yuv420p", (64, 48))
    assert info.fps == 12 and info.n_frames == 24
    assert info.video_duration == pytest.approx(2.0)
    assert not info.has_audio
    # +faststart puts the moov index before the media data
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temp file left


def test_odd_size_is_cropped_to_even_and_float_frames_accepted(tmp_path):
    frames = (f.astype(np.float32) / 255 for f in _frames(6, 65, 47))
    info = probe(write_video(frames, tmp_path / "odd.mp4", fps=6))
    assert info.size == (64, 46)
    assert info.n_frames == 6


def test_frames_come_back_in_order(tmp_path):
    out = write_video(_frames(), tmp_path / "v.mp4", fps=12, quality="lossless")
    assert abs(int(frame_at(out, 1.0)[10, 10, 0]) - 120) <= 3


def test_webm_and_audio(tmp_path):
    tone = make_tone(tmp_path / "tone.wav", secs=3.0)
    info = probe(write_video(_frames(), tmp_path / "v.webm", fps=12, audio=tone))
    assert info.codec == "vp9" and info.pix_fmt == "yuv420p"
    assert info.has_audio and info.audio_codec == "opus"
    info = probe(write_video(_frames(), tmp_path / "a.mp4", fps=12, audio=tone))
    assert info.audio_codec == "aac"
    assert info.audio_duration == pytest.approx(2.0, abs=0.05)  # cut to the video's length


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fps": 0}, "fps"),
        ({"fps": -3}, "fps"),
        ({"fps": 12, "quality": "ultra"}, "quality"),
        ({"fps": 12, "quality": 70}, "quality"),
    ],
)
def test_bad_settings_raise_one_clear_error(tmp_path, kwargs, match):
    with pytest.raises(PostError, match=match):
        write_video(_frames(2), tmp_path / "v.mp4", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs(tmp_path):
    with pytest.raises(PostError, match="empty"):
        write_video([], tmp_path / "v.mp4", fps=12)
    with pytest.raises(PostError, match="suffix"):
        write_video(_frames(2), tmp_path / "v.avi", fps=12)
    with pytest.raises(PostError, match="one size"):
        write_video(_frames(2) + [np.zeros((8, 8, 3), np.uint8)], tmp_path / "v.mp4", fps=12)
    with pytest.raises(PostError, match="does not exist"):
        probe(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(PostError, match="not a readable video"):
        probe(junk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4"]


def test_existing_output_untouched_on_failure(tmp_path):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"previous")
    with pytest.raises(PostError):
        write_video(_frames(2) + [np.zeros((8, 8, 3), np.uint8)], out, fps=12)
    assert out.read_bytes() == b"previous"


def test_quality_levels():
    assert crf_for_quality("high") == 18
    assert crf_for_quality(23) == 23
