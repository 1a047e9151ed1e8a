"""A 3-scene piece with titles, crossfades and music, from one YAML file
(through the CLI and run_post) and from Python; the outputs probed."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from vqclip.postproduction import run as post
from vqclip.video import frame_at, probe

from helpers_media import make_render, make_tone

STORY = {
    "post": {
        "fps": 12,
        "aspect": "16:9",
        "width": 128,
        "transition": "crossfade",
        "transition_duration": 0.5,
        "fade_out": 0.5,
        "scenes": [
            {"source": "r1", "titles": [{"text": "One", "position": "bottom", "size": 0.2}]},
            {"source": "r2", "speed": 0.5},
            {"source": "r3", "transition": "fade", "transition_duration": 0.5},
        ],
        "titles": [{"text": "Story", "size": 0.25, "duration": 1.5}],
        "music": {"path": "tone.wav", "volume": 0.8, "fade_out": 0.5},
        "output": {"path": "out/story.mp4", "formats": ["gif"], "quality": "medium"},
    }
}
# 2 s + 4 s (half speed) + 2 s, one 0.5 s crossfade (the fade keeps the length)
EXPECTED = 7.5


@pytest.fixture()
def job(tmp_path):
    make_render(tmp_path / "r1", (200, 40, 40))
    make_render(tmp_path / "r2", (40, 160, 40))
    make_render(tmp_path / "r3", (40, 40, 200))
    make_tone(tmp_path / "tone.wav", secs=3.0)
    path = tmp_path / "story.yaml"
    path.write_text(yaml.safe_dump(STORY, sort_keys=False))
    return path


def _check_story(mp4):
    info = probe(mp4)
    assert (info.codec, info.pix_fmt, info.size, info.fps) == ("h264", "yuv420p", (128, 72), 12)
    assert info.n_frames == EXPECTED * 12
    assert info.has_audio and info.audio_codec == "aac"
    assert info.audio_duration == pytest.approx(EXPECTED, abs=0.05)
    return info


def test_story_from_yaml_via_cli(job, capsys):
    from vqclip.cli import main

    assert main(["post", str(job)]) == 0
    out = job.parent / "out"
    _check_story(out / "story.mp4")
    gif = probe(out / "story.gif")
    assert gif.codec == "gif" and gif.n_frames == EXPECTED * 10 and gif.size == (128, 72)
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["story.gif", "story.mp4"]  # no temp files left


def test_story_from_run_post_with_override(job, tmp_path):
    res = post.run_post(job, overrides=["output.formats=[]"], out=tmp_path / "o" / "s.mp4")
    _check_story(res.path)
    assert res.duration == pytest.approx(EXPECTED) and res.extra == []
    # Title on screen at 0.5 s, crossfade between red and green scenes at 1.75 s, black dip at 5.5 s (scene 3 starts at 2 + 4 - 0.5).
    f = frame_at(res.path, 0.5)
    assert (f.min(axis=2) > 200).sum() > 30  # white title pixels
    mid = frame_at(res.path, 1.75)[10, 64].astype(int)
    assert mid[0] > 90 and mid[1] > 70  # both red and green present
    assert frame_at(res.path, 5.5).mean() < 25 < frame_at(res.path, 5.25).mean()


def test_story_from_python(job):
    d = job.parent
    s1 = post.add_text(post.fit_size(post.load_source(d / "r1"), (128, 72)), "One", position="bottom", size=0.2)
    s2 = post.fit_size(post.change_speed(post.load_source(d / "r2"), 0.5), (128, 72))
    s3 = post.fit_size(post.load_source(d / "r3"), (128, 72))
    piece = post.join([s1, s2, s3], [("cut", 0), ("crossfade", 0.5), ("fade", 0.5)], fps=12)
    piece = post.add_text(piece, "Story", size=0.25, duration=1.5)
    piece = post.fade_out(piece, 0.5)
    piece = post.add_music(piece, d / "tone.wav", volume=0.8, fade_out=0.5)
    events = []
    path = post.export(piece, d / "py" / "story.mp4", quality="medium", callback=events.append)
    _check_story(path)
    assert {e["event"] for e in events} == {"export"} and {e["stage"] for e in events} == {"audio", "video"}
    video = [e for e in events if e["stage"] == "video"]
    assert video[-1]["done"] == video[-1]["total"] == EXPECTED * 12  # one event per frame, ending at the total
    assert [e["done"] for e in video] == sorted(e["done"] for e in video)
    assert np.asarray(frame_at(path, 0.5)).shape == (72, 128, 3)


def test_music_from_render_uses_the_track_the_render_pulsed_to(tmp_path, monkeypatch):
    render = make_render(tmp_path / "r", n=24)
    song = make_tone(tmp_path / "song.wav", secs=4.0)
    settings = {"output": {"fps": 12}, "animation": {"frames": 24, "angle": 0.0, "zoom": {
        "beats": str(song), "base": 1.0, "pulse": 1.08, "decay": 4.0, "on": "beats", "start": 1.5}}}
    (render / "settings.yaml").write_text(yaml.safe_dump(settings))
    used = {}
    real = post.add_music

    def spy(clip, path, **kw):
        used.update(path=path, start=kw["start"])
        return real(clip, path, **kw)

    monkeypatch.setattr(post, "add_music", spy)
    job = {"scenes": ["r"], "music": "from_render", "output": {"path": "out.mp4"}}
    result = post.run_post(post.load_post_config(job, base_dir=str(tmp_path)))
    assert used == {"path": str(song), "start": 1.5}  # the render's frame 0 is 1.5 s into the song
    assert result.info.has_audio and result.info.audio_duration == pytest.approx(2.0, abs=0.05)


def test_music_from_render_without_a_beat_render_is_one_error(tmp_path):
    from vqclip.errors import PostError

    make_render(tmp_path / "r", n=6)
    job = {"scenes": ["r"], "music": {"path": "from_render"}, "output": {"path": "out.mp4"}}
    with pytest.raises(PostError, match="music.path: from_render needs a scene that is a render folder"):
        post.run_post(post.load_post_config(job, base_dir=str(tmp_path)))
    assert not (tmp_path / "out.mp4").exists()
