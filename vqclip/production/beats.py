"""Beat schedules: a song's beats (or onsets), found by librosa, as one animation value per frame.

``animation.zoom: {beats: song.wav, base: 1.0, pulse: 1.08, decay: 4}`` lifts the zoom from ``base`` to
``pulse`` on every beat's frame and lets it fall back linearly over ``decay`` frames. librosa is the
optional extra ``vqclip[audio]``: it is looked for when a preset asks for beats and imported only
when the song is analysed, so everything else works without it.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vqclip.errors import ConfigError
from vqclip.production.schedule import DEFAULT_RANGE, MAX_FRAME, RANGES, Schedule

__all__ = ["BeatSchedule", "parse_beats", "BEAT_KEYS"]

#: Keys of a beat mapping, with what each means (the error for an unknown key lists them).
BEAT_KEYS = {
    "beats": "audio file (relative to the preset's folder)",
    "base": "value between pulses",
    "pulse": "value on a beat",
    "decay": "frames to fall back to base (default 4)",
    "on": "beats | onsets (default beats)",
    "start": "seconds into the song at frame 0 (default 0)",
}
BEAT_SAMPLE_RATE = 22050  # plenty for rhythm; librosa's default
BEAT_HOP = 256  # 11.6 ms between onset-curve samples: well under a video frame


@dataclass(frozen=True)
class BeatSchedule(Schedule):
    """A pulse on every beat of a song: ``pulse`` on the beat's frame, back to ``base`` over ``decay`` frames.

    Frame ``f`` shows the song at ``start + f / fps`` seconds; a beat at ``b`` seconds lands on frame
    ``round((b - start) * fps)``. Overlapping pulses take the larger value, so fast beats never exceed ``pulse``.
    """

    path: Path
    base: float
    pulse: float
    decay: float = 4.0
    on: str = "beats"
    start: float = 0.0
    key: str = "schedule"
    given: str = ""  # the path as the preset wrote it
    _times: dict = field(default_factory=dict, compare=False, repr=False)  # analysis, done once

    def times(self) -> np.ndarray:
        """Beat (or onset) times in seconds, found by librosa; analysed once per schedule."""
        if "t" not in self._times:
            self._times["t"] = _analyze(self.path, self.on, f"{self.key}.beats")
        return self._times["t"]

    def values(self, frames: int, fps: float | None = None) -> list[float]:
        """Per-frame values at ``fps`` frames per second (needed to place the beats on frames)."""
        if fps is None or not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ConfigError(f"{self.key}: a beat schedule needs the frame rate (output.fps), got {fps!r}")
        if not 0 <= frames <= MAX_FRAME:
            raise ConfigError(f"{self.key}: {frames} frames asked for; a schedule gives 0 .. {MAX_FRAME}")
        beat_frames = np.round((self.times() - self.start) * fps).astype(np.int64)
        beat_frames = beat_frames[(beat_frames >= 0) & (beat_frames < frames)]
        level = np.zeros(frames)
        span = np.arange(int(math.ceil(self.decay)) + 1)
        shape = np.clip(1.0 - span / self.decay, 0.0, 1.0)
        for b in beat_frames:
            end = min(frames, b + len(shape))
            level[b:end] = np.maximum(level[b:end], shape[: end - b])
        return [float(v) for v in self.base + (self.pulse - self.base) * level]

    def to_preset(self) -> dict:
        """The mapping with every default filled in and the song's absolute path (settings.yaml is re-runnable anywhere)."""
        return {"beats": str(self.path), "base": self.base, "pulse": self.pulse, "decay": self.decay,
                "on": self.on, "start": self.start}


def _analyze(path: Path, on: str, setting: str) -> np.ndarray:
    """Beat or onset times (s) of an audio file with librosa's beat tracker / onset detector."""
    import librosa

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns on its way from soundfile to audioread; the error says it all
            y, sr = librosa.load(str(path), sr=BEAT_SAMPLE_RATE, mono=True)
    except Exception as exc:  # soundfile/audioread raise many types for a file they cannot decode
        raise ConfigError(f"{setting}: {str(path)!r} is not a readable audio file ({type(exc).__name__}: "
                          f"{str(exc).strip()[:200]}); give a .wav/.mp3/.ogg/.flac file") from None
    if y.size == 0:
        raise ConfigError(f"{setting}: {str(path)!r} holds no audio samples")
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=BEAT_HOP)
    if on == "onsets":
        return np.asarray(librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=BEAT_HOP, units="time"))
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=BEAT_HOP, units="time")
    return np.asarray(beats, dtype=np.float64)


def _beat_number(key: str, name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{key}.{name}: {v!r} is not allowed; give a finite number ({BEAT_KEYS[name]})")
    return float(v)


def parse_beats(raw: dict, key: str, base_dir: str | Path | None = None) -> BeatSchedule:
    """Check a beat mapping ``{beats, pulse, base, decay, on, start}`` for ``key``; the song is analysed later, once."""
    unknown = [k for k in raw if k not in BEAT_KEYS]
    if unknown:
        allowed = ", ".join(f"{k} ({v})" for k, v in BEAT_KEYS.items())
        raise ConfigError(f"{key}.{unknown[0]}: unknown key in a beat schedule; allowed: {allowed}")
    for needed in ("beats", "pulse"):
        if needed not in raw:
            raise ConfigError(f"{key}.{needed}: missing; a beat schedule is {{beats: song.wav, base: 1.0, pulse: 1.08, decay: 4}}")
    given = raw["beats"]
    if not isinstance(given, str) or not given.strip():
        raise ConfigError(f"{key}.beats: {given!r} is not allowed; give an audio file path (.wav/.mp3/.ogg/.flac)")
    if importlib.util.find_spec("librosa") is None:
        raise ConfigError(f"{key}.beats: beat schedules need librosa, which is not installed: pip install \"vqclip[audio]\"")
    path = Path(given).expanduser()
    if not path.is_absolute():
        path = Path(base_dir or ".") / path
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"{key}.beats: audio file {str(path)!r} does not exist (a relative path is relative to the preset's folder)")
    lo, hi, note = RANGES.get(key, DEFAULT_RANGE)
    neutral = 1.0 if key.endswith("zoom") else 0.0
    values = {}
    for name in ("base", "pulse"):
        v = _beat_number(key, name, raw.get(name, neutral))
        if not lo <= v <= hi:
            raise ConfigError(f"{key}.{name}: {v:g} is out of range; allowed: {lo:g} .. {hi:g}" + (f" ({note})" if note else ""))
        values[name] = v
    decay = _beat_number(key, "decay", raw.get("decay", 4.0))
    if not 0 < decay <= 1000:
        raise ConfigError(f"{key}.decay: {decay:g} is not allowed; give the frames a pulse takes to fall back, 0 < decay <= 1000")
    on = raw.get("on", "beats")
    if on not in ("beats", "onsets"):
        raise ConfigError(f"{key}.on: {on!r} is not allowed; use beats or onsets")
    start = _beat_number(key, "start", raw.get("start", 0.0))
    if start < 0:
        raise ConfigError(f"{key}.start: {start:g} is not allowed; give the seconds into the song at frame 0 (>= 0)")
    return BeatSchedule(path, values["base"], values["pulse"], decay, on, start, key, given)
