"""What `vqclip eval` judges: a render folder, a folder of frames, or a video file, as frames + per-frame prompts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqclip.errors import ConfigError

__all__ = ["EvalVideo", "load_video", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".gif", ".m4v")


@dataclass
class EvalVideo:
    """Frames (N,H,W,3) uint8 with the text prompts that act on each frame and where scenes start."""

    source: Path
    frames: np.ndarray
    prompts: list[list[tuple[str, float]]]  # per frame: [(text, weight)], empty when unknown
    scene_starts: list[int] = field(default_factory=list)  # first frame of every scene after the first
    guides: list[str] = field(default_factory=list)  # CLIP specs that guided the render (from settings.yaml)
    out_dir: Path | None = None  # where eval.json and eval.png go
    stem: str = "eval"


def _read_frames(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ConfigError(f"frames in {str(paths[0].parent)!r} have different sizes {sorted(shapes)}; allowed: one size for all frames")
    return np.stack(arrays)


def _read_video_file(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(gen)
        w, h = meta["size"]
        frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in gen]
    except (RuntimeError, StopIteration, OSError) as exc:
        raise ConfigError(f"video {str(path)!r} could not be decoded ({exc})") from exc
    finally:
        gen.close()
    if not frames:
        raise ConfigError(f"video {str(path)!r} has no frames")
    return np.stack(frames)


def _timeline_prompts(settings: Path, n: int) -> tuple[list[list[tuple[str, float]]], list[int], list[str]]:
    from vqclip.production.prompts import build_timeline
    from vqclip.settings.render import load_config

    cfg = load_config(settings)
    timeline = build_timeline(cfg.prompts, max(n, cfg.animation.frames))
    prompts = [timeline.text_targets(f) for f in range(n)]  # text prompts by weight; pushed-away ones are not targets
    starts, start = [], 0
    for scene in timeline.scenes[:-1]:
        start += scene.frames
        if start < n:
            starts.append(start)
    guides = [_spec_label(p.spec) for p in cfg.models.clip]
    return prompts, starts, guides


def _png_prompts(paths: list[Path]) -> tuple[list[list[tuple[str, float]]], list[str]]:
    """Per-frame prompts from each PNG's `prompt` text chunk (Timeline.describe: 'text:w (x0.50) | ...'), and the guides."""
    import re

    from PIL import Image

    from vqclip.production.prompts import parse_prompt

    prompts, guides = [], []
    for path in paths:
        with Image.open(path) as im:
            info = dict(getattr(im, "text", {}) or {})
        items = []
        for part in filter(None, (p.strip() for p in info.get("prompt", "").split(" | "))):
            m = re.match(r"^(.*) \(x([0-9.]+)\)$", part)
            blend = float(m.group(2)) if m else 1.0
            try:
                prompt = parse_prompt(m.group(1) if m else part)
            except ConfigError:
                continue
            if prompt.weight > 0 and not Path(prompt.text).expanduser().is_file():  # image prompts are paths
                items.append((prompt.text, blend * prompt.weight))
        prompts.append(items)
        guides += [g.strip()[5:] for g in info.get("model", "").split(",") if g.strip().startswith("clip:")]
    return prompts, list(dict.fromkeys(guides))


def _spec_label(spec) -> str:
    if isinstance(spec, str):
        return spec
    return str(spec.get("name") or spec.get("config") or spec)


def load_video(source: str | os.PathLike, prompt: str | None = None) -> EvalVideo:
    """Read a render folder (frames/ + settings.yaml), a frame folder or a video file; `prompt` overrides every frame's prompt."""
    src = Path(source).expanduser()
    if src.is_dir():
        frames_dir = src / "frames" if (src / "frames").is_dir() else src
        paths = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("eval"))
        if not paths:
            raise ConfigError(f"eval: {str(src)!r} holds no frames; give a render folder (frames/ + settings.yaml), a folder of images, or a video file")
        frames = _read_frames(paths)
        out_dir, stem = src, "eval"
    elif src.is_file() and src.suffix.lower() in VIDEO_SUFFIXES:
        frames = _read_video_file(src)
        out_dir, stem = src.parent, f"{src.stem}.eval"
    else:
        raise ConfigError(f"eval: {str(src)!r} is not a folder or a video file ({', '.join(VIDEO_SUFFIXES)})")
    n = len(frames)
    prompts: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    starts: list[int] = []
    guides: list[str] = []
    settings = src / "settings.yaml"
    if src.is_dir() and settings.is_file():
        try:
            prompts, starts, guides = _timeline_prompts(settings, n)
        except ConfigError:
            # settings written by another vqclip version: each frame's PNG still names its prompts
            prompts, guides = _png_prompts(paths)
    if prompt is not None:
        if not prompt.strip():
            raise ConfigError("--prompt: an empty text is not allowed; give the text the video should show")
        prompts = [[(prompt, 1.0)] for _ in range(n)]
    return EvalVideo(src, frames, prompts, starts, guides, out_dir, stem)
