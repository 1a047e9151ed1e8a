"""Beat schedules: librosa finds the clicks of a synthetic track and each one pulses the value."""

from __future__ import annotations

import numpy as np
import pytest

from vqclip.errors import ConfigError
from vqclip.production.beats import BeatSchedule
from vqclip.production.schedule import parse_schedule

from helpers_media import write_wav


SR = 22050
FPS = 12


def click_track(path, bpm=120.0, secs=6.0, first=0.25, seed=0):
    """Broadband clicks (short decaying noise bursts, like a rim shot) every 60/bpm seconds."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(secs * SR))
    n = int(0.03 * SR)
    burst = rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.004 * SR))
    times = np.arange(first, secs - 0.05, 60.0 / bpm)
    for t in times:
        i = int(round(t * SR))
        y[i : i + n] += 0.5 * burst[: len(y) - i]
    write_wav(path, y, SR)
    return times


@pytest.fixture(scope="module")
def track(tmp_path_factory):
    folder = tmp_path_factory.mktemp("song")
    times = click_track(folder / "click.wav")
    return folder, times


def test_beats_land_within_a_frame_of_the_clicks(track):
    folder, truth = track
    s = parse_schedule({"beats": "click.wav", "base": 1.0, "pulse": 1.08, "decay": 3}, "animation.zoom", base_dir=folder)
    assert isinstance(s, BeatSchedule)
    found = s.times()
    # librosa's tracker may skip the first click (no tempo context yet) but must not invent beats
    assert len(found) >= len(truth) - 2
    nearest = np.abs(found[:, None] - truth[None, :]).min(axis=1)
    assert nearest.max() < 1 / FPS, nearest


def test_pulse_values_on_and_after_each_beat(track):
    folder, _ = track
    s = parse_schedule({"beats": "click.wav", "base": 1.0, "pulse": 1.08, "decay": 3}, "animation.zoom", base_dir=folder)
    n = 6 * FPS
    values = s.values(n, fps=FPS)
    beat_frames = sorted({int(round(b * FPS)) for b in s.times() if round(b * FPS) < n})
    assert len(values) == n and min(values) == pytest.approx(1.0) and max(values) == pytest.approx(1.08)
    for f in beat_frames:  # 120 bpm at 12 fps: a beat every 6 frames, 3-frame linear decay
        assert values[f] == pytest.approx(1.08)
        assert values[f + 1] == pytest.approx(1.0 + 0.08 * 2 / 3)
        assert values[f + 2] == pytest.approx(1.0 + 0.08 / 3)
        if f + 3 < n:
            assert values[f + 3] == pytest.approx(1.0)
    peaks = [f for f, v in enumerate(values) if v == pytest.approx(1.08)]
    assert peaks == beat_frames
    assert set(np.diff(peaks)) <= {5, 6, 7}


def test_start_shifts_the_song_and_to_preset_is_complete(track):
    folder, _ = track
    raw = {"beats": "click.wav", "pulse": 3.0, "start": 0.75}
    s = parse_schedule(raw, "animation.angle", base_dir=folder)
    values = s.values(24, fps=FPS)
    assert values[0] == pytest.approx(3.0) and values[6] == pytest.approx(3.0)  # the 0.75 s click is now frame 0
    assert values[3] == pytest.approx(0.75) and values[4] == pytest.approx(0.0)  # decay 4: 3, 2.25, 1.5, 0.75, 0
    assert s.to_preset() == {"beats": str((folder / "click.wav").resolve()), "base": 0.0, "pulse": 3.0,
                             "decay": 4.0, "on": "beats", "start": 0.75}
    assert parse_schedule(s.to_preset(), "animation.angle").values(24, fps=FPS) == values


def test_onsets_follow_every_click(track):
    folder, truth = track
    s = parse_schedule({"beats": "click.wav", "pulse": 1.1, "on": "onsets"}, "animation.zoom", base_dir=folder)
    found = s.times()
    assert len(found) == len(truth)
    assert np.abs(found - truth).max() < 1 / FPS


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"beats": "missing.wav", "pulse": 1.1}, "animation.zoom.beats: audio file"),
        ({"beats": "click.wav"}, "animation.zoom.pulse: missing"),
        ({"beats": "click.wav", "pulse": 1.1, "bpm": 90}, "animation.zoom.bpm: unknown key"),
        ({"beats": "click.wav", "pulse": 1000}, "animation.zoom.pulse: 1000 is out of range; allowed: 0.01 .. 100"),
        ({"beats": "click.wav", "pulse": 1.1, "decay": 0}, "animation.zoom.decay"),
        ({"beats": "click.wav", "pulse": 1.1, "on": "bars"}, "animation.zoom.on: 'bars'"),
        ({"beats": 3, "pulse": 1.1}, "animation.zoom.beats: 3"),
    ],
)
def test_bad_beat_mappings(track, raw, words):
    with pytest.raises(ConfigError) as info:
        parse_schedule(raw, "animation.zoom", base_dir=track[0])
    assert words in str(info.value)


def test_fps_is_needed_and_junk_audio_is_one_error(track, tmp_path):
    s = parse_schedule({"beats": "click.wav", "pulse": 1.1}, "animation.zoom", base_dir=track[0])
    with pytest.raises(ConfigError, match="needs the frame rate"):
        s.values(10)
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000junk")
    bad = parse_schedule({"beats": "junk.wav", "pulse": 1.1}, "animation.zoom", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"animation.zoom.beats: .*junk.wav' is not a readable audio file"):
        bad.values(10, fps=FPS)


def test_without_librosa_a_beat_schedule_says_what_to_install(track, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "librosa" else real(name, *a))
    with pytest.raises(ConfigError, match=r'animation.zoom.beats: .*pip install "vqclip\[audio\]"'):
        parse_schedule({"beats": "click.wav", "pulse": 1.1}, "animation.zoom", base_dir=track[0])


def test_a_preset_file_with_a_beat_zoom_renders_and_its_settings_reload(track, tmp_path):
    import yaml

    import vqclip
    from vqclip.production.animate import motion_schedule

    folder, times = track
    preset = folder / "pulse.yaml"  # the song is named relative to the preset's own folder
    preset.write_text(yaml.safe_dump({
        "prompts": {"texts": "a red circle on a blue background"}, "size": {"width": 32, "height": 32},
        "models": {"vqgan": "toy", "clip": ["toy"]},
        "generation": {"seed": 0, "iterations_first_frame": 2, "iterations_per_frame": 1, "device": "cpu", "cutouts": {"cutn": 2}},
        "animation": {"frames": 24, "zoom": {"beats": "click.wav", "base": 1.0, "pulse": 1.1, "decay": 2}},
        "output": {"fps": 12, "video": False, "contact_sheet": False, "images_interval": 0},
    }))
    cfg = vqclip.load_config(preset)
    zooms = [m.zoom for m in motion_schedule(cfg.animation, cfg.output.fps)]
    assert max(zooms) == pytest.approx(1.1) and min(zooms) == pytest.approx(1.0)  # a pulse on the beats, rest between
    result = vqclip.render(cfg, tmp_path / "out")
    assert result.completed and len(result.frames) == 24
    again = vqclip.load_config(result.settings)  # settings.yaml names the song by its absolute path
    assert [m.zoom for m in motion_schedule(again.animation, again.output.fps)] == zooms
