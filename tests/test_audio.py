"""vqclip.audio: beats and onsets of generated click tracks become keyframe schedules."""

from __future__ import annotations


import numpy as np
import pytest

from vqclip import audio
from vqclip.errors import PostError

from helpers_media import write_wav

SR = 22050


def click_track(path, bpm=120.0, secs=8.0, first=0.25, noise=0.0, seed=0):
    """Broadband clicks (short decaying noise bursts, like a rim shot) every 60/bpm seconds."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, noise, int(secs * SR)) if noise else np.zeros(int(secs * SR))
    n = int(0.03 * SR)
    burst = rng.normal(0, 1, n) * np.exp(-np.arange(n) / (0.004 * SR))
    times = np.arange(first, secs - 0.05, 60.0 / bpm)
    for t in times:
        i = int(round(t * SR))
        y[i : i + n] += 0.5 * burst[: len(y) - i]
    write_wav(path, y, SR)
    return path, times


def test_120_bpm_click_track_beats_every_half_second(tmp_path):
    path, truth = click_track(tmp_path / "click.wav")
    result = audio.analyze(path)
    assert result.tempo == pytest.approx(120, abs=1)
    assert len(result.beats) == len(truth)
    assert np.abs(result.beats - truth).max() < 1 / 24
    assert np.diff(result.beats) == pytest.approx(0.5, abs=1 / 24)
    assert len(result.onsets) == len(truth)


def test_schedule_puts_keyframes_every_half_second(tmp_path):
    path, truth = click_track(tmp_path / "click.wav")
    fps = 24
    text = audio.audio_schedule(path, fps=fps, base=1.0, peak=1.08)
    keys = [(int(k.split(":")[0]), float(k.split("(")[1].rstrip(")"))) for k in text.split(", ")]
    assert keys[0] == (0, 1.0)
    peaks = np.array([f for f, v in keys if v == 1.08])
    assert len(peaks) == len(truth)
    assert np.abs(np.diff(peaks) - 0.5 * fps).max() <= 1  # every 12 frames, within a frame
    assert np.abs(peaks - truth * fps).max() <= 1
    # Each pulse: base one frame before, peak on the beat, back to base two frames after.
    f = int(peaks[1])
    assert (f - 1, 1.0) in keys and (f, 1.08) in keys and (f + 2, 1.0) in keys


def test_schedule_is_accepted_by_the_production_stage(tmp_path):
    schedule = pytest.importorskip("vqclip.production.schedule")
    path, _ = click_track(tmp_path / "click.wav", secs=3.0)
    text = audio.audio_schedule(path, fps=12, peak=1.1, n_frames=36)
    values = schedule.parse_schedule(text, key="animation.zoom").values(36)
    assert max(values) == pytest.approx(1.1) and min(values) == pytest.approx(1.0)
    assert values[3] == pytest.approx(1.1)  # the first click at 0.25 s is frame 3 at 12 fps


def test_tempo_in_noise(tmp_path):
    path, truth = click_track(tmp_path / "noisy.wav", bpm=90, first=0.1, noise=0.05)
    result = audio.analyze(path)
    assert result.tempo == pytest.approx(90, abs=1.5)
    matched = [np.min(np.abs(truth - b)) < 0.05 for b in result.beats]
    assert sum(matched) >= len(truth) - 1


def test_keyframes_and_format():
    keys = audio.keyframes_from_times([0.5, 1.0], fps=10, base=1.0, peak=1.2, attack=1, release=2, n_frames=12)
    assert keys == [(0, 1.0), (4, 1.0), (5, 1.2), (7, 1.0), (9, 1.0), (10, 1.2)]
    assert audio.format_schedule(keys) == "0:(1.0), 4:(1.0), 5:(1.2), 7:(1.0), 9:(1.0), 10:(1.2)"


def test_bad_audio_input(tmp_path):
    with pytest.raises(PostError, match="does not exist"):
        audio.analyze(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF0000junk")
    with pytest.raises(PostError, match="not a readable audio"):
        audio.analyze(junk)
    with pytest.raises(PostError, match="kind"):
        audio.audio_schedule(junk, fps=12, kind="bars")
    with pytest.raises(PostError, match="backend"):
        audio.analyze(junk, backend="essentia")
