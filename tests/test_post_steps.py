"""vqclip.postproduction.run, one step at a time from Python: each output exported and probed.

Tiny generated renders (64x48, 12 fps, 2 s: a square moving across a coloured field) and a
generated tone; no downloads.
"""

from __future__ import annotations


import numpy as np
import pytest

from vqclip.postproduction import run as post
from vqclip.errors import PostError
from vqclip.video import frame_at, probe

from helpers_media import FPS, make_render, make_tone





@pytest.fixture()
def r1(tmp_path):
    return make_render(tmp_path / "r1")


@pytest.fixture()
def r2(tmp_path):
    return make_render(tmp_path / "r2", color=(40, 160, 40))


def _export(clip, tmp_path, name="out.mp4", **kw):
    path = post.export(clip, tmp_path / name, **kw)
    return path, probe(path)


def _assert_video(info, duration, size=(64, 48), fps=FPS, audio=False):
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.size == size
    assert info.fps == pytest.approx(fps)
    assert info.video_duration == pytest.approx(duration, abs=0.5 / fps)
    assert info.n_frames == round(duration * fps)
    assert info.has_audio is audio


def test_render_folder_round_trip(r1, tmp_path):
    clip = post.load_source(r1)
    assert clip.fps == FPS and clip.size == (64, 48) and clip.duration == pytest.approx(2.0)
    path, info = _export(clip, tmp_path)
    _assert_video(info, 2.0)
    assert path.read_bytes().find(b"moov") < path.read_bytes().find(b"mdat")  # +faststart
    assert sorted(p.name for p in (r1 / "frames").iterdir())[-1] == "000023.png"  # input untouched


@pytest.mark.parametrize("interpolate", ["blend", "none"])
def test_speed_half_doubles_duration(r1, tmp_path, interpolate):
    clip = post.change_speed(post.load_source(r1), 0.5, interpolate=interpolate)
    _, info = _export(clip, tmp_path)
    _assert_video(info, 4.0)


def test_blend_slow_motion_makes_in_between_frames(r1, tmp_path):
    clip = post.change_speed(post.load_source(r1), 0.5, interpolate="blend")
    # Output frame 1 sits halfway between source frames 0 and 1: its index pixel is the mean.
    assert clip.get_frame(1 / FPS)[0, 0, 0] == pytest.approx(5, abs=1)
    assert clip.get_frame(2 / FPS)[0, 0, 0] == 10


def test_motion_interpolation_through_ffmpeg(tmp_path):
    src = post.trim(post.load_source(make_render(tmp_path / "m", n=12)), 0, 0.5)
    _, info = _export(post.change_speed(src, 0.5, interpolate="motion"), tmp_path)
    _assert_video(info, 1.0)


def test_speed_up_and_target_duration(r1, tmp_path):
    assert post.change_speed(post.load_source(r1), 2.0).duration == pytest.approx(1.0)
    clip = post.change_speed(post.load_source(r1), duration=3.0)
    _, info = _export(clip, tmp_path)
    _assert_video(info, 3.0)


def test_negative_speed_is_one_clear_error(r1):
    with pytest.raises(PostError, match=r"speed: -1"):
        post.change_speed(post.load_source(r1), -1)


def test_loop_reverse_boomerang_hold_trim(r1, tmp_path):
    clip = post.load_source(r1)
    assert post.loop(clip, 3).duration == pytest.approx(6.0)
    rev = post.reverse(clip)
    assert rev.get_frame(0)[0, 0, 0] == 230 and rev.get_frame(23 / FPS)[0, 0, 0] == 0
    boom = post.boomerang(clip)
    assert boom.duration == pytest.approx(46 / FPS)  # 24 forward + 22 back: turning frames not doubled
    assert [boom.get_frame(k / FPS)[0, 0, 0] for k in (22, 23, 24, 45)] == [220, 230, 220, 10]
    held = post.hold(clip, first=0.5, last=1.0)
    assert held.duration == pytest.approx(3.5)
    assert held.get_frame(0.4)[0, 0, 0] == 0 and held.get_frame(3.4)[0, 0, 0] == 230
    cut = post.trim(clip, 0.5, 1.5)
    assert cut.duration == pytest.approx(1.0) and cut.get_frame(0)[0, 0, 0] == 60
    _, info = _export(post.loop(post.boomerang(cut), 2), tmp_path)
    _assert_video(info, 2 * 22 / FPS)
    with pytest.raises(PostError, match="trim"):
        post.trim(clip, 1.5, 0.5)


def test_fades_to_black_and_white(r1, tmp_path):
    clip = post.fade_out(post.fade_in(post.load_source(r1), 0.5, "white"), 0.5, "black")
    path, info = _export(clip, tmp_path, quality="lossless")
    _assert_video(info, 2.0)
    assert frame_at(path, 0).mean() > 240  # starts white
    assert frame_at(path, 1.0)[5, 30, 0] > 150  # the red field in the middle
    assert frame_at(path, 23 / FPS).mean() < 20  # ends (almost) black


@pytest.mark.parametrize("kind, d, expected", [("crossfade", 0.5, 3.5), ("crossfade", 1.0, 3.0),
                                               ("fade", 1.0, 4.0), ("cut", 0.0, 4.0)])
def test_join_lengths(r1, r2, tmp_path, kind, d, expected):
    piece = post.join([post.load_source(r1), post.load_source(r2)], [("cut", 0), (kind, d)])
    _, info = _export(piece, tmp_path)
    _assert_video(info, expected)


def test_crossfade_mixes_both_scenes(r1, r2, tmp_path):
    piece = post.concatenate([post.load_source(r1), post.load_source(r2)], crossfade=1.0)
    mid = piece.get_frame(1.5)[5, 30].astype(int)  # halfway through the overlap, away from the squares
    assert abs(mid[0] - 120) < 12 and abs(mid[1] - 100) < 12  # (200,40,40) and (40,160,40) half and half
    with pytest.raises(PostError, match="transition_duration"):
        post.join([post.load_source(r1), post.load_source(r2)], [("cut", 0), ("crossfade", 3.0)])


@pytest.mark.parametrize("aspect, fit, size", [("16:9", "crop", (64, 36)), ("1:1", "crop", (48, 48)),
                                               ("9:16", "crop", (26, 48)), ("16:9", "pad", (84, 48)),
                                               ("9:16", "pad", (64, 114))])
def test_aspect_fit(r1, tmp_path, aspect, fit, size):
    target = post.output_size((64, 48), aspect, fit)
    assert target == size
    clip = post.fit_size(post.load_source(r1), target, fit)
    _, info = _export(clip, tmp_path)
    _assert_video(info, 2.0, size=size)


def test_output_size_width_and_exact():
    assert post.output_size((64, 48), "16:9", "crop", width=128) == (128, 72)
    assert post.output_size((64, 48), exact=[101, 51]) == (100, 50)


def test_titles_overlay_and_blend(r1, r2, tmp_path):
    base = post.load_source(r1)
    titled = post.add_text(base, "Hi", size=0.4, fade=0, position="center")
    f0, f1 = base.get_frame(0.1), titled.get_frame(0.1)
    assert (np.abs(f0.astype(int) - f1.astype(int)).sum(axis=2) > 60).sum() > 40  # text pixels drawn
    pip = post.add_overlay(base, post.load_source(r2), position="bottom-right", scale=0.25, margin=0)
    corner = pip.get_frame(0.1)[-3, -3]
    assert tuple(corner) == (40, 160, 40)  # the second render sits in the corner
    mixed = post.blend(base, post.load_source(r2), opacity=0.5)
    assert np.abs(mixed.get_frame(0.1)[5, 30].astype(int) - [120, 100, 40]).max() <= 2
    _, info = _export(post.add_text(mixed, "Title", size=0.2), tmp_path)
    _assert_video(info, 2.0)


def test_composite_size_mismatch_errors(r1, tmp_path):
    small = make_render(tmp_path / "small", w=32, h=24, n=6)
    with pytest.raises(PostError, match=r"32x24.*64x48.*fit"):
        post.blend(post.load_source(r1), post.load_source(small))
    with pytest.raises(PostError, match="larger than"):
        post.add_overlay(post.load_source(small), post.load_source(r1), scale=None)
    with pytest.raises(PostError, match="does not match"):
        post.join([post.load_source(r1), post.load_source(small)])
    fitted = post.blend(post.load_source(r1), post.load_source(small), fit=True)
    assert fitted.size == (64, 48)


@pytest.mark.parametrize("song_secs, loop", [(1.5, True), (5.0, True), (1.5, False)])
def test_music_matches_video_length(r1, tmp_path, song_secs, loop):
    tone = make_tone(tmp_path / "tone.wav", secs=song_secs)
    clip = post.add_music(post.loop(post.load_source(r1), 2), tone, volume=0.5, fade_in=0.2, fade_out=0.5, loop=loop)
    _, info = _export(clip, tmp_path)
    _assert_video(info, 4.0, audio=True)
    assert info.audio_codec == "aac"
    assert info.audio_duration == pytest.approx(4.0, abs=0.05)


def test_music_bad_files(r1, tmp_path):
    with pytest.raises(PostError, match="does not exist"):
        post.add_music(post.load_source(r1), tmp_path / "missing.mp3")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(PostError, match="not a readable audio"):
        post.add_music(post.load_source(r1), junk)


def test_gif_and_webm_frame_counts(r1, tmp_path):
    tone = make_tone(tmp_path / "tone.wav")
    clip = post.add_music(post.load_source(r1), tone)
    gif = post.export(clip, tmp_path / "a.gif", gif={"fps": 10, "width": 32, "colors": 64})
    info = probe(gif)
    assert (info.codec, info.size, info.n_frames) == ("gif", (32, 24), 20)
    assert info.video_duration == pytest.approx(2.0)
    info = probe(post.export(clip, tmp_path / "a.webm", quality="medium"))
    assert (info.codec, info.pix_fmt, info.size, info.n_frames) == ("vp9", "yuv420p", (64, 48), 24)
    assert info.has_audio and info.audio_codec == "opus"


def test_sources_video_image_glob_and_errors(r1, tmp_path):
    path, _ = _export(post.load_source(r1), tmp_path, name="src.mp4")
    vid = post.load_source(path)
    assert vid.fps == FPS and vid.duration == pytest.approx(2.0, abs=0.1)
    still = post.load_source(r1 / "frames" / "000000.png", image_duration=1.5, fps=FPS)
    assert still.duration == 1.5
    seq = post.load_source(str(r1 / "frames" / "00001*.png"), fps=6)
    assert seq.duration == pytest.approx(10 / 6)
    (tmp_path / "empty" / "frames").mkdir(parents=True)
    with pytest.raises(PostError, match="empty"):
        post.load_source(tmp_path / "empty")
    with pytest.raises(PostError, match="needs a positive fps"):
        post.load_source(r1 / "frames")
    with pytest.raises(PostError, match="does not exist"):
        post.load_source(tmp_path / "nowhere")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk")
    with pytest.raises(PostError, match="not a readable video"):
        post.load_source(bad)
    with pytest.raises(PostError, match="font"):
        post.add_text(post.load_source(r1), "x", font=str(tmp_path / "nofont.ttf"))


def test_truncated_frame_png_is_one_error_naming_the_file(r1, tmp_path, capsys):
    from vqclip.cli import main

    frame = r1 / "frames" / "000005.png"
    frame.write_bytes(frame.read_bytes()[:-40])  # the IDAT/IEND tail cut off, as by a full disk or a kill
    with pytest.raises(PostError, match=r"source: '.*000005\.png' is not a readable image \(truncated or corrupt"):
        post.load_source(r1)
    job = tmp_path / "job.yaml"
    job.write_text("scenes: [r1]\noutput: {path: out.mp4}\n")
    assert main(["post", str(job)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "scenes[0].source" in err and "000005.png" in err, err
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("keep", [0.5, 0.85])
def test_truncated_mp4_is_one_error_not_frozen_frames(r1, tmp_path, keep):
    good, _ = _export(post.load_source(r1), tmp_path, "good.mp4")
    data = good.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(PostError, match=r"scenes\[0\]\.source: '.*cut\.mp4'.* (truncated or corrupt|cannot be decoded)") as info:
        post.load_source(cut, setting="scenes[0].source")
    assert "\n" not in str(info.value)
    assert post.load_source(good).n_frames == 24  # an intact file still loads
