"""Post-production with MoviePy 2: speed, loops, fades, scene joins, titles, overlays, music, export.

Two ways in:
- `run_post(config)` / `vqclip post POST.yaml` runs a whole job from the `post:` settings
  (see `vqclip.settings.post.PostConfig` for every key);
- a Python function per step, re-exported here (`load_source`, `change_speed`, `join`,
  `add_text`, `add_music`, `export`, ...), each taking and returning a MoviePy clip.

Inputs are only read; outputs go through a temporary file and a rename.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqclip.errors import PostError
from vqclip.postproduction.clips import (  # noqa: F401  (re-exported: the per-step Python API)
    add_music, add_overlay, add_text, audio_duration, blend, boomerang, change_speed, concatenate, fade_in,
    fade_out, fit_size, font_path, hold, join, load_image, load_image_sequence, load_render, load_source,
    load_video, loop, output_size, resize, reverse, trim,
)
from vqclip.postproduction.export import export, export_gif, export_video  # noqa: F401
from vqclip.settings.post import OverlaySpec, PostConfig, SceneSpec, TextSpec, load_post_config

__all__ = [
    "PostResult", "run_post", "render_track", "FROM_RENDER", "build_piece", "load_post_config",
    "load_source", "load_render", "load_image_sequence", "load_video", "load_image",
    "trim", "change_speed", "loop", "boomerang", "reverse", "hold",
    "fade_in", "fade_out", "join", "concatenate",
    "output_size", "fit_size", "resize", "add_text", "add_overlay", "blend", "add_music",
    "export", "export_video", "export_gif",
]


@dataclass
class PostResult:
    """What a post job wrote: the main file, any extra formats, and the probe of the main file."""

    path: Path
    extra: list = field(default_factory=list)  # list[Path] of the output.formats copies
    info: Any = None  # vqclip.video.VideoInfo of `path`
    duration: float = 0.0  # seconds of the composed piece
    size: tuple = (0, 0)
    fps: float = 0.0


def _resolve(base: str, p: str) -> str:
    if any(ch in p for ch in "*?[") and not os.path.isabs(p):
        return os.path.join(base, p)
    path = Path(p).expanduser()
    return str(path if path.is_absolute() else Path(base) / path)


def _output_paths(cfg: PostConfig) -> list[Path]:
    main = Path(_resolve(cfg.base_dir, cfg.output.path))
    extra = []
    for fmt in cfg.output.formats:
        p = main.with_suffix("." + fmt.lower().lstrip("."))
        if p != main and p not in extra:
            extra.append(p)
    return [main, *extra]


FROM_RENDER = "from_render"  # `music: from_render`: the song a scene's render pulsed to (animation.*.beats)


def render_track(folder: str | os.PathLike) -> tuple[Path, float] | None:
    """The song a render folder's motion follows, from its settings.yaml: (path, seconds at frame 0), or None."""
    import yaml

    settings = Path(folder) / "settings.yaml"
    if not settings.is_file():
        return None
    try:
        data = yaml.safe_load(settings.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    animation = data.get("animation") if isinstance(data, dict) else None
    for value in (animation or {}).values() if isinstance(animation, dict) else ():
        if isinstance(value, dict) and isinstance(value.get("beats"), str):
            start = value.get("start", 0.0)
            return Path(value["beats"]), float(start) if isinstance(start, (int, float)) else 0.0
    return None


def _music(cfg: PostConfig) -> tuple[Path, float] | None:
    """The music file and its start (s): as given, or, for `from_render`, the track of the first scene rendered to beats."""
    m = cfg.music
    if m is None:
        return None
    if m.path != FROM_RENDER:
        return Path(_resolve(cfg.base_dir, m.path)), m.start
    for s in cfg.scenes:
        track = render_track(_resolve(cfg.base_dir, s.source))
        if track is not None:
            # The render's frame 0 shows the song at its beats `start`: keep them in sync unless told otherwise.
            return track[0], m.start or track[1]
    raise PostError("music.path: from_render needs a scene that is a render folder whose settings.yaml has a beat "
                    "schedule (animation.zoom: {beats: song.wav, ...}); none of the scenes has one, give the file instead")


def _check_inputs(cfg: PostConfig) -> None:
    """Every input exists and no output would overwrite one; before any work is done."""
    inputs: list[tuple[str, str]] = []
    for i, s in enumerate(cfg.scenes):
        inputs.append((f"scenes[{i}].source", s.source))
        if s.blend:
            inputs.append((f"scenes[{i}].blend.source", s.blend.source))
        inputs += [(f"scenes[{i}].overlays[{j}].source", o.source) for j, o in enumerate(s.overlays)]
    inputs += [(f"overlays[{j}].source", o.source) for j, o in enumerate(cfg.overlays)]
    resolved = []
    for setting, src in inputs:
        p = _resolve(cfg.base_dir, src)
        if not any(ch in src for ch in "*?[") and not Path(p).exists():
            raise PostError(f"{setting}: {p!r} does not exist (give a render folder, image folder/glob, video or image)")
        resolved.append(Path(p).resolve() if not any(ch in src for ch in "*?[") else Path(p).parent.resolve())
    music = _music(cfg)
    if music is not None:
        audio_duration(music[0], "music.path")
        resolved.append(music[0].resolve())
    for where, texts in [("titles", cfg.titles)] + [(f"scenes[{i}].titles", s.titles) for i, s in enumerate(cfg.scenes)]:
        for j, t in enumerate(texts):
            font_path(t.font if t.font in ("sans", "sans-bold") else _resolve(cfg.base_dir, t.font),
                      f"{where}[{j}].font")
    for out in _output_paths(cfg):
        o = out.resolve()
        for r in resolved:
            if o == r or r in o.parents:
                raise PostError(f"output.path: {str(out)!r} would overwrite or write inside the input {str(r)!r}; "
                                f"choose another output path")


def _text(clip, t: TextSpec, base: str, setting: str):
    font = t.font if t.font in ("sans", "sans-bold") else _resolve(base, t.font)
    return add_text(clip, t.text, start=t.start, duration=t.duration, position=t.position, font=font, size=t.size,
                    color=t.color, stroke_color=t.stroke_color, stroke_width=t.stroke_width,
                    background=t.background, fade=t.fade, max_width=t.max_width, setting=setting)


def _overlay(clip, o: OverlaySpec, base: str, setting: str):
    src = load_source(_resolve(base, o.source), fps=o.fps, image_duration=None, setting=f"{setting}.source")
    return add_overlay(clip, src, position=o.position, scale=o.scale, opacity=o.opacity, start=o.start,
                       duration=o.duration, margin=o.margin, setting=setting)


def _scene(s: SceneSpec, i: int, cfg: PostConfig, size: tuple[int, int] | None, fps: float | None):
    """Load one scene and apply its timing, blend, fitting, titles, overlays and fades, in that order."""
    where = f"scenes[{i}]"
    base = cfg.base_dir
    clip = load_source(_resolve(base, s.source), fps=s.fps, audio=s.audio, image_duration=s.image_duration,
                       setting=f"{where}.source")
    # 1. Timing: trim in source time first, so speed and loops act on the kept part.
    if s.trim is not None:
        clip = trim(clip, s.trim[0], s.trim[1], setting=f"{where}.trim")
    if s.reverse:
        clip = reverse(clip)
    if s.duration is not None:
        clip = change_speed(clip, duration=s.duration, interpolate=s.interpolate, setting=f"{where}.duration")
    elif s.speed != 1.0:
        clip = change_speed(clip, s.speed, interpolate=s.interpolate, setting=f"{where}.speed")
    if s.boomerang:
        clip = boomerang(clip)
    if s.loop > 1:
        clip = loop(clip, s.loop, setting=f"{where}.loop")
    if s.hold_first or s.hold_last:
        clip = hold(clip, s.hold_first, s.hold_last)
    # 2. A second render mixed over this one.
    if s.blend is not None:
        other = load_source(_resolve(base, s.blend.source), fps=s.blend.fps or getattr(clip, "fps", None),
                            image_duration=None, setting=f"{where}.blend.source")
        clip = blend(clip, other, s.blend.opacity, s.blend.fit, setting=f"{where}.blend")
    # 3. Fit to the piece's frame, then draw on it (so text sizes are relative to the final frame).
    if size is not None:
        clip = fit_size(clip, size, cfg.fit, cfg.background)
    if fps:
        clip = clip.with_fps(fps)
    for j, t in enumerate(s.titles):
        clip = _text(clip, t, base, f"{where}.titles[{j}]")
    for j, o in enumerate(s.overlays):
        clip = _overlay(clip, o, base, f"{where}.overlays[{j}]")
    if s.fade_in:
        clip = fade_in(clip, s.fade_in, s.fade_color, setting=f"{where}.fade_in")
    if s.fade_out:
        clip = fade_out(clip, s.fade_out, s.fade_color, setting=f"{where}.fade_out")
    return clip


def build_piece(cfg: PostConfig):
    """The composed MoviePy clip of a post job (nothing is written)."""
    # 1. Scene 0's source decides the frame rate and, with aspect/size/width, the frame size
    #    (timing steps change neither, so a peek at the source is enough).
    s0 = cfg.scenes[0]
    peek = load_source(_resolve(cfg.base_dir, s0.source), fps=s0.fps, image_duration=s0.image_duration,
                       setting="scenes[0].source")
    fps = cfg.fps or float(getattr(peek, "fps", None) or 12)
    src_size = tuple(peek.size)
    peek.close()
    fitting = cfg.aspect or cfg.size or cfg.width
    size = output_size(src_size, cfg.aspect, cfg.fit, cfg.size, cfg.width) if fitting else None
    scenes = [_scene(s, i, cfg, size, fps) for i, s in enumerate(cfg.scenes)]
    # 2. Join with transitions (each scene may override the piece default).
    transitions = []
    for s in cfg.scenes:
        kind = s.transition or cfg.transition
        d = s.transition_duration if s.transition_duration is not None else cfg.transition_duration
        transitions.append((kind, d if kind != "cut" else 0.0))
    piece = join(scenes, transitions, fps=fps, color=cfg.fade_color, background=cfg.background,
                 settings=[f"scenes[{i}]" for i in range(len(scenes))])
    # 3. Titles and overlays over the whole piece, then its fades.
    for j, t in enumerate(cfg.titles):
        piece = _text(piece, t, cfg.base_dir, f"titles[{j}]")
    for j, o in enumerate(cfg.overlays):
        piece = _overlay(piece, o, cfg.base_dir, f"overlays[{j}]")
    if cfg.fade_in:
        piece = fade_in(piece, cfg.fade_in, cfg.fade_color, setting="fade_in")
    if cfg.fade_out:
        piece = fade_out(piece, cfg.fade_out, cfg.fade_color, setting="fade_out")
    # 4. Music last, so it is cut or looped to the final length.
    m, music = cfg.music, _music(cfg)
    if music is not None:
        piece = add_music(piece, str(music[0]), volume=m.volume, fade_in=m.fade_in,
                          fade_out=m.fade_out, start=music[1], loop=m.loop, mix=m.mix, setting="music")
    return piece.with_fps(fps)


def run_post(config: Any, overrides=(), callback: Any = None, out: str | os.PathLike | None = None) -> PostResult:
    """Run a post job from a PostConfig, a dict, or a YAML path; write the output(s) (export events to `callback`) and probe them."""
    from dataclasses import asdict

    from vqclip.video import probe

    # 1. Settings and inputs, all checked before anything is written.
    cfg = load_post_config(config, overrides)
    if out is not None:
        cfg.output.path = str(Path(out).resolve())
        load_post_config(cfg)  # validates the new suffix
    _check_inputs(cfg)
    # 2. Compose.
    piece = build_piece(cfg)
    # 3. Export the main file, then the extra formats from the same composition.
    paths = _output_paths(cfg)
    gif = {k: v for k, v in asdict(cfg.output.gif).items()}
    written = []
    try:
        for p in paths:
            written.append(export(piece, p, fps=piece.fps, quality=cfg.output.quality, gif=gif, callback=callback))
    finally:
        piece.close()
    info = probe(written[0])
    return PostResult(path=written[0], extra=written[1:], info=info, duration=float(piece.duration),
                      size=tuple(piece.size), fps=float(piece.fps))
