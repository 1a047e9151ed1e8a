"""Generated media for the tests (no downloads): render folders like `vqclip render` writes, and WAV audio."""

from __future__ import annotations

import wave

import numpy as np
from PIL import Image

FPS = 12  # frame rate of the generated render folders


def write_wav(target, samples: np.ndarray, rate: int):
    """Write mono samples in [-1, 1] as 16-bit PCM WAV to a path or a binary file object; return `target`."""
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(target if hasattr(target, "write") else str(target), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(data.tobytes())
    return target


def make_tone(path, secs=1.5, sr=22050, freq=440.0, amplitude=0.3):
    """A sine tone written as WAV to `path` (or a file object)."""
    t = np.arange(int(secs * sr)) / sr
    return write_wav(path, amplitude * np.sin(2 * np.pi * freq * t), sr)


def make_render(folder, color=(200, 40, 40), n=24, w=64, h=48, fps=FPS):
    """A render folder like `vqclip render` writes: frames/000000.png ... + settings.yaml."""
    (folder / "frames").mkdir(parents=True)
    for i in range(n):
        a = np.zeros((h, w, 3), np.uint8)
        a[:] = color
        x = int(i * (w - 8) / max(1, n - 1))
        a[h // 2 - 4 : h // 2 + 4, x : x + 8] = 255
        a[0, 0] = (i * 10) % 256  # the frame index, readable back from the top-left pixel's red
        Image.fromarray(a).save(folder / "frames" / f"{i:06d}.png")
    (folder / "settings.yaml").write_text(f"output:\n  fps: {fps}\n")
    return folder
