"""Post-production steps on MoviePy 2 clips: sources, timing, transitions, compositing, music.

Each function takes a clip (and plain settings) and returns a new clip; nothing is rendered until
export. Timing effects are frame-exact (a reversed 24-frame clip shows frames 23..0), because
VQGAN-CLIP renders are short and one dropped or doubled frame is visible.

Smooth slow motion (`change_speed(..., interpolate=...)`):
- "blend" (the default) mixes the two nearest source frames by the fractional position. It is
  pure numpy, lazy (no intermediate file) and cannot tear: VQGAN-CLIP frames change by texture
  morphing more than by rigid motion, and a cross-dissolve matches that look.
- "motion" runs ffmpeg's `minterpolate` (motion-compensated, bidirectional) through the bundled
  binary into a lossless temporary file. It follows steady zoom/pan better, but it is slower
  and warps when textures morph, so it is opt-in.
- "none" repeats frames.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vqclip.errors import PostError

__all__ = [
    "load_source", "load_render", "load_image_sequence", "load_video", "load_image",
    "trim", "change_speed", "loop", "boomerang", "reverse", "hold",
    "fade_in", "fade_out", "join", "concatenate",
    "output_size", "fit_size", "resize", "add_text", "add_overlay", "blend", "add_music",
    "parse_color", "font_path", "audio_duration",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".avi", ".m4v")
_NAMED_COLORS = {"black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 128, 0),
                 "blue": (0, 0, 255), "yellow": (255, 255, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}


# ------------------------------------------------------------------------------------ helpers


def parse_color(value: str, setting: str = "color") -> tuple[tuple[int, int, int], float]:
    """((r, g, b), alpha) from "white", "#ff8800", "#ff8800@0.5" or "black@0.4"."""
    text = str(value).strip().lower()
    alpha = 1.0
    if "@" in text:
        text, _, a = text.partition("@")
        try:
            alpha = float(a)
        except ValueError:
            alpha = -1.0
        if not 0 <= alpha <= 1:
            raise PostError(f"{setting}: {value!r} is not allowed; the part after @ is an opacity 0..1")
    if text in _NAMED_COLORS:
        return _NAMED_COLORS[text], alpha
    m = re.fullmatch(r"#?([0-9a-f]{6})", text)
    if m:
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)), alpha
    names = ", ".join(_NAMED_COLORS)
    raise PostError(f"{setting}: {value!r} is not allowed; use {names}, #rrggbb, optionally @opacity (black@0.5)")


def font_path(font: str, setting: str = "font") -> str:
    """A usable font file: "sans"/"sans-bold" are the shipped DejaVu fonts, anything else a path."""
    shipped = {"sans": "DejaVuSans.ttf", "sans-bold": "DejaVuSans-Bold.ttf"}
    if font in shipped:
        path = Path(str(resources.files("vqclip") / "assets" / "fonts" / shipped[font]))
    else:
        path = Path(font)
    if not path.is_file():
        raise PostError(f"{setting}: font file {str(path)!r} does not exist (use sans, sans-bold or a .ttf/.otf path)")
    from PIL import ImageFont

    try:
        ImageFont.truetype(str(path), 12)
    except OSError as exc:
        raise PostError(f"{setting}: {str(path)!r} is not a readable TrueType/OpenType font ({exc})") from None
    return str(path)


def _fps_of(clip, setting: str = "fps") -> float:
    fps = getattr(clip, "fps", None)
    if not fps:
        raise PostError(f"{setting}: this clip has no frame rate; give fps for its source")
    return float(fps)


def _n_frames(clip) -> int:
    return max(1, int(round(clip.duration * _fps_of(clip))))


def _finalize_tmpdir(clip, tmpdir: str):
    # The intermediate file must live as long as the clip that reads it; remove it afterwards.
    weakref.finalize(clip, shutil.rmtree, tmpdir, True)
    return clip


# ------------------------------------------------------------------------------------ sources


def _image_size(path: Path, setting: str = "source") -> tuple[int, int]:
    """Size of an image whose data is complete: a truncated frame fails here, not as frozen frames mid-export."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
            if im.format == "PNG":
                im.verify()  # reads every chunk and checks its CRC without decoding: cheap
            else:
                im.load()  # other formats have no cheap check: decode
        return size
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # PIL reports a broken PNG chunk as SyntaxError
        raise PostError(f"{setting}: {str(path)!r} is not a readable image (truncated or corrupt: {exc}); "
                        f"re-render or replace that file") from None


def load_image_sequence(files: Sequence[str | os.PathLike], fps: float, setting: str = "source"):
    """A clip from image files in order at `fps` (all one size; read lazily, frame by frame)."""
    from moviepy import ImageSequenceClip

    files = [str(f) for f in files]
    if not files:
        raise PostError(f"{setting}: no image frames found")
    if fps is None or fps <= 0:
        raise PostError(f"{setting}: an image sequence needs a positive fps (got {fps!r}); set fps")
    first = _image_size(Path(files[0]), setting)
    for f in files[1:]:  # a bad frame fails here rather than mid-export
        size = _image_size(Path(f), setting)
        if size != first:
            raise PostError(f"{setting}: frame {f!r} is {size[0]}x{size[1]} but the first frame is "
                            f"{first[0]}x{first[1]}; all frames of a sequence must be one size")
    return ImageSequenceClip(files, fps=fps, with_mask=False)


def _render_fps(folder: Path) -> float | None:
    import yaml

    settings = folder / "settings.yaml"
    if not settings.is_file():
        return None
    try:
        data = yaml.safe_load(settings.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    fps = (data.get("output") or {}).get("fps") if isinstance(data, dict) else None
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else None


def load_render(folder: str | os.PathLike, fps: float | None = None, setting: str = "source"):
    """A render folder's frames/*.png at its settings.yaml output.fps (or `fps` when given)."""
    folder = Path(folder)
    frames_dir = folder / "frames"
    files = sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise PostError(f"{setting}: the frames folder {str(frames_dir)!r} is empty (render it first)")
    fps = fps or _render_fps(folder)
    if fps is None:
        raise PostError(f"{setting}: {str(folder)!r} has no settings.yaml with output.fps; set fps for this source")
    return load_image_sequence(files, fps, setting)


def load_video(path: str | os.PathLike, audio: bool = False, setting: str = "source"):
    """A video file (mp4/webm/mov/gif...) as a clip; its sound only when `audio` is true."""
    from moviepy import VideoFileClip

    from vqclip.video import probe

    p = Path(path)
    try:
        info = probe(p)  # decodes once: a clear error for unreadable files before MoviePy's own
    except PostError as exc:
        why = str(exc).splitlines()[0]
        why = why if len(why) < 160 else why[:160] + " ..."
        raise PostError(f"{setting}: {str(p)!r} cannot be decoded: truncated or corrupt video ({why}); "
                        f"re-export or re-download it") from None
    expected = round(info.duration * info.fps) if info.duration and info.fps else None
    if expected and (info.n_frames or 0) < expected - 1:
        # MoviePy would repeat the last good frame for the rest and the export would exit 0
        raise PostError(f"{setting}: {str(p)!r} is truncated or corrupt: its header promises {expected} frames "
                        f"({info.duration:.2f} s) but only {info.n_frames or 0} decode; re-export or re-download it")
    try:
        clip = VideoFileClip(str(p), audio=audio and info.has_audio)
    except (OSError, KeyError, ValueError, IndexError) as exc:
        raise PostError(f"{setting}: {str(p)!r} is not a readable video ({exc})") from None
    return clip


def load_image(path: str | os.PathLike, duration: float | None = None, setting: str = "source"):
    """A still image (keeps PNG transparency, for logos) lasting `duration` seconds."""
    from moviepy import ImageClip

    _image_size(Path(path), setting)
    clip = ImageClip(str(path), transparent=True)
    return clip.with_duration(duration) if duration else clip


def load_source(source: str | os.PathLike, fps: float | None = None, audio: bool = False,
                image_duration: float | None = 3.0, setting: str = "source"):
    """Any input: a render folder, an image folder or glob, a video file, or a still image."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        import glob

        files = sorted(f for f in glob.glob(text) if Path(f).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PostError(f"{setting}: no images match {text!r}")
        return load_image_sequence(files, fps, setting)
    p = Path(text)
    if not p.exists():
        raise PostError(f"{setting}: {text!r} does not exist (give a render folder, image folder/glob, video or image)")
    if p.is_dir():
        if (p / "frames").is_dir():
            return load_render(p, fps, setting)
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PostError(f"{setting}: the folder {text!r} holds no frames (*.png, *.jpg) and no frames/ folder")
        return load_image_sequence(files, fps, setting)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        clip = load_image(p, image_duration, setting)
        return clip.with_fps(fps or 12)
    clip = load_video(p, audio=audio, setting=setting)
    return clip.with_fps(fps) if fps else clip


# ------------------------------------------------------------------------------------ timing


def trim(clip, start: float = 0.0, end: float | None = None, setting: str = "trim"):
    """The part of a clip between `start` and `end` seconds (end None = to the end)."""
    end = clip.duration if end is None else end
    if start < 0 or end <= start or start >= clip.duration - 1e-9:
        raise PostError(f"{setting}: [{start}, {end}] is not allowed; the clip lasts {clip.duration:.3f} s, "
                        f"use 0 <= start < end <= {clip.duration:.3f}")
    return clip.subclipped(start, min(end, clip.duration))


def _retime_blend(clip, factor: float):
    """Frames made by mixing the two nearest source frames (smooth slow motion without motion search)."""
    src_fps = _fps_of(clip)
    n = _n_frames(clip)
    sped = clip.with_speed_scaled(factor)  # duration and audio follow MoviePy's own speed change

    def frame_function(t):
        p = float(t) * factor * src_fps
        i = int(math.floor(p + 1e-6))
        a = p - i
        i0, i1 = min(i, n - 1), min(i + 1, n - 1)
        f0 = clip.get_frame(i0 / src_fps)
        if a < 1e-3 or i0 == i1:
            return f0
        f1 = clip.get_frame(i1 / src_fps)
        return (f0.astype(np.float32) * (1 - a) + f1.astype(np.float32) * a + 0.5).astype(np.uint8)

    return sped.with_updated_frame_function(frame_function).with_fps(src_fps)


def _retime_motion(clip, factor: float, fps: float):
    """Slow motion by ffmpeg minterpolate through the bundled binary, into a lossless temp file."""
    from moviepy import VideoFileClip

    from vqclip.video import ffmpeg_exe

    src_fps = _fps_of(clip)
    w, h = clip.size
    tmpdir = tempfile.mkdtemp(prefix="vqclip-minterp-")
    out = os.path.join(tmpdir, "slow.mkv")
    vf = (f"setpts=PTS/{factor:.9g},minterpolate=fps={fps:.6g}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1")
    n_out = max(1, int(round(clip.duration / factor * fps)))
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{src_fps:.9g}", "-i", "-", "-vf", vf, "-frames:v", str(n_out),
           "-c:v", "libx264rgb", "-crf", "0", "-preset", "ultrafast", out]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        last = None
        for frame in clip.iter_frames(fps=src_fps, dtype="uint8"):
            last = np.ascontiguousarray(frame[:, :, :3]).tobytes()
            proc.stdin.write(last)
        # minterpolate stops at the last input timestamp; the held last frame fills the final gap.
        for _ in range(int(math.ceil(1 / factor)) + 1):
            proc.stdin.write(last)
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise PostError(f"interpolate: ffmpeg minterpolate failed: {err.strip()[-300:]}")
    except BaseException:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    slow = VideoFileClip(out, audio=False).with_duration(clip.duration / factor).with_fps(fps)
    if clip.audio is not None:
        slow = slow.with_audio(clip.audio.with_speed_scaled(factor))
    return _finalize_tmpdir(slow, tmpdir)


def change_speed(clip, factor: float | None = None, duration: float | None = None, interpolate: str = "blend",
                 setting: str = "speed"):
    """Play `factor` times as fast (0.5 = slow motion, twice as long), or stretch to `duration` seconds."""
    if duration is not None:
        if duration <= 0:
            raise PostError(f"duration: {duration!r} is not allowed; use a positive number of seconds")
        factor = clip.duration / duration
    if factor is None:
        return clip
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
        raise PostError(f"{setting}: {factor!r} is not allowed; use a positive factor: 0.5 = half speed, 2 = double")
    if interpolate not in ("none", "blend", "motion"):
        raise PostError(f"interpolate: {interpolate!r} is not allowed; use none, blend or motion")
    if abs(factor - 1.0) < 1e-9:
        return clip
    fps = _fps_of(clip)
    if factor < 1 and interpolate == "blend":
        return _retime_blend(clip, factor)
    if factor < 1 and interpolate == "motion":
        return _retime_motion(clip, factor, fps)
    return clip.with_speed_scaled(factor).with_fps(fps)


def loop(clip, n: int = 2, setting: str = "loop"):
    """The clip played `n` times in a row."""
    from moviepy import vfx

    if not isinstance(n, int) or n < 1:
        raise PostError(f"{setting}: {n!r} is not allowed; use a whole number >= 1")
    return clip if n == 1 else clip.with_effects([vfx.Loop(n=n)])


def _frame_map(clip, index_map, duration: float):
    """A clip whose output frame k shows source frame index_map(k) (frame-exact time remapping)."""
    fps = _fps_of(clip)

    def time_func(t):
        k = int(math.floor(float(t) * fps + 1e-6))
        return index_map(k) / fps

    new = clip.time_transform(time_func, apply_to=["mask"], keep_duration=True)
    return new.with_duration(duration).with_fps(fps)


def reverse(clip):
    """The clip played backwards, frame for frame (its sound reversed too)."""
    n, fps, d = _n_frames(clip), _fps_of(clip), clip.duration
    new = _frame_map(clip.without_audio(), lambda k: max(0, n - 1 - min(k, n - 1)), n / fps)
    if clip.audio is not None:
        new = new.with_audio(clip.audio.time_transform(lambda t: np.clip(d - t, 0, d - 1e-3)).with_duration(d))
    return new


def boomerang(clip):
    """Forward then backward; the turning frames are not doubled, so it loops seamlessly."""
    n, fps = _n_frames(clip), _fps_of(clip)
    if n < 2:
        return clip
    total = 2 * n - 2
    return _frame_map(clip.without_audio(), lambda k: k if k < n else max(0, total - min(k, total - 1)), total / fps)


def hold(clip, first: float = 0.0, last: float = 0.0):
    """Hold the first frame for `first` seconds and the last frame for `last` seconds."""
    if first < 0 or last < 0:
        raise PostError(f"hold_first/hold_last: ({first}, {last}) not allowed; use 0 or more seconds")
    if first == 0 and last == 0:
        return clip
    n, fps = _n_frames(clip), _fps_of(clip)
    lead = int(round(first * fps))
    tail = int(round(last * fps))
    new = _frame_map(clip.without_audio(), lambda k: min(max(k - lead, 0), n - 1), (n + lead + tail) / fps)
    if clip.audio is not None:
        from moviepy import CompositeAudioClip

        new = new.with_audio(CompositeAudioClip([clip.audio.with_start(lead / fps)]).with_duration(new.duration))
    return new


# ------------------------------------------------------------------------------------ transitions


def fade_in(clip, duration: float, color: str = "black", setting: str = "fade_in"):
    """Fade in from a colour over `duration` seconds (the sound fades in too)."""
    return _fade(clip, duration, color, setting, at_start=True)


def fade_out(clip, duration: float, color: str = "black", setting: str = "fade_out"):
    """Fade out to a colour over the last `duration` seconds (the sound fades out too)."""
    return _fade(clip, duration, color, setting, at_start=False)


def _fade(clip, duration: float, color: str, setting: str, at_start: bool):
    from moviepy import afx, vfx

    if duration <= 0:
        return clip
    if duration > clip.duration + 1e-9:
        raise PostError(f"{setting}: {duration} s is longer than the clip ({clip.duration:.3f} s)")
    rgb, _ = parse_color(color, f"{setting} color")
    effects = [vfx.FadeIn(duration, initial_color=list(rgb)) if at_start else vfx.FadeOut(duration, final_color=list(rgb))]
    if clip.audio is not None:
        effects.append(afx.AudioFadeIn(duration) if at_start else afx.AudioFadeOut(duration))
    return clip.with_effects(effects)


def join(clips: Sequence[Any], transitions: Sequence[tuple[str, float]] | None = None, fps: float | None = None,
         color: str = "black", background: str = "black", settings: Sequence[str] | None = None):
    """Scenes one after another; transitions[i] = (cut|crossfade|fade, seconds) leads into scene i.

    A crossfade of d seconds overlaps the scenes, so the piece is d seconds shorter than the sum;
    a fade dips through `color` (d/2 out, d/2 in) and keeps the length.
    """
    from moviepy import CompositeVideoClip, afx, vfx

    if not clips:
        raise PostError("scenes: nothing to join")
    settings = list(settings or [f"scenes[{i}]" for i in range(len(clips))])
    size = tuple(clips[0].size)
    for i, c in enumerate(clips[1:], start=1):
        if tuple(c.size) != size:
            raise PostError(f"{settings[i]}: size {c.size[0]}x{c.size[1]} does not match scene 0's "
                            f"{size[0]}x{size[1]}; set aspect: or size: so every scene is fitted to one frame")
    transitions = list(transitions or [("cut", 0.0)] * len(clips))
    fps = fps or _fps_of(clips[0])
    rgb, _ = parse_color(color, "fade_color")
    bg, _ = parse_color(background, "background")
    placed: list[Any] = []
    t = 0.0
    for i, clip in enumerate(clips):
        kind, d = transitions[i] if i else ("cut", 0.0)
        start = t
        if i and kind != "cut" and d > 0:
            prev = placed[-1]
            limit = min(prev.duration, clip.duration)
            if d > limit + 1e-9:
                raise PostError(f"{settings[i]}.transition_duration: {d} s is longer than the scenes it joins "
                                f"({prev.duration:.3f} s and {clip.duration:.3f} s); use at most {limit:.3f}")
            if kind == "crossfade":
                start = t - d
                effects = [vfx.CrossFadeIn(d)]
                if clip.audio is not None:
                    effects.append(afx.AudioFadeIn(d))
                clip = clip.with_effects(effects)
                if prev.audio is not None:
                    placed[-1] = prev.with_effects([afx.AudioFadeOut(d)])
            elif kind == "fade":
                placed[-1] = fade_out(prev, d / 2, "#%02x%02x%02x" % rgb)
                clip = fade_in(clip, d / 2, "#%02x%02x%02x" % rgb)
            else:
                raise PostError(f"{settings[i]}.transition: {kind!r} is not allowed; use cut, crossfade or fade")
        placed.append(clip.with_start(start))
        t = start + clip.duration
    if len(placed) == 1:
        return placed[0].with_start(0).with_fps(fps)
    return CompositeVideoClip(placed, size=size, bg_color=bg).with_duration(t).with_fps(fps)


def concatenate(clips: Sequence[Any], crossfade: float = 0.0, fps: float | None = None):
    """Join scenes with one crossfade length between each (0 = plain cuts)."""
    kind = "crossfade" if crossfade > 0 else "cut"
    return join(clips, [("cut", 0.0)] + [(kind, crossfade)] * (len(clips) - 1), fps=fps)


# ------------------------------------------------------------------------------------ compositing


def _even(n: float) -> int:
    return max(2, int(n) - int(n) % 2)


def output_size(size: tuple[int, int], aspect: str | None = None, fit: str = "crop",
                exact: Sequence[int] | None = None, width: int | None = None) -> tuple[int, int]:
    """The final (even) frame size from a source size and the aspect/fit/size/width settings."""
    from vqclip.settings.post import parse_aspect

    w, h = size
    if exact:
        return _even(exact[0]), _even(exact[1])
    if aspect:
        a, b = parse_aspect(aspect)
        wider = w * b > h * a
        if fit == "crop":  # the largest frame of that aspect inside the source
            w, h = (h * a / b, h) if wider else (w, w * b / a)
        else:  # pad: the smallest frame of that aspect around the source
            w, h = (w, w * b / a) if wider else (h * a / b, h)
    if width:
        w, h = width, width * h / w
    return _even(round(w)), _even(round(h))


def fit_size(clip, size: tuple[int, int], fit: str = "crop", background: str = "black"):
    """Scale and crop (fill) or scale and pad (letterbox) a clip to exactly `size`."""
    from moviepy import ColorClip, CompositeVideoClip

    W, H = int(size[0]), int(size[1])
    w, h = clip.size
    if (w, h) == (W, H):
        return clip
    if fit == "crop":
        s = max(W / w, H / h)
        nw, nh = max(W, math.ceil(w * s - 1e-6)), max(H, math.ceil(h * s - 1e-6))
        scaled = clip.resized((nw, nh)) if (nw, nh) != (w, h) else clip
        x1, y1 = (nw - W) // 2, (nh - H) // 2
        return scaled.cropped(x1=x1, y1=y1, width=W, height=H)
    if fit != "pad":
        raise PostError(f"fit: {fit!r} is not allowed; use crop or pad")
    s = min(W / w, H / h)
    nw, nh = min(W, max(1, round(w * s))), min(H, max(1, round(h * s)))
    scaled = clip.resized((nw, nh)) if (nw, nh) != (w, h) else clip
    rgb, _ = parse_color(background, "background")
    bg = ColorClip((W, H), color=rgb).with_duration(clip.duration)
    out = CompositeVideoClip([bg, scaled.with_position(((W - nw) // 2, (H - nh) // 2))], size=(W, H))
    out = out.with_duration(clip.duration)
    if clip.audio is not None:
        out = out.with_audio(clip.audio)
    return out.with_fps(clip.fps) if getattr(clip, "fps", None) else out


def resize(clip, width: int | None = None, height: int | None = None):
    """Scale to a width and/or height in pixels (one given: keep the aspect), rounded to even numbers."""
    w, h = clip.size
    if width and height:
        W, H = width, height
    elif width:
        W, H = width, width * h / w
    elif height:
        W, H = height * w / h, height
    else:
        return clip
    return clip.resized((_even(round(W)), _even(round(H))))


def _place(position, item_size, frame_size, margin_px: int):
    """Top-left pixel of an item placed by name (center, top-right, ...) or by [x, y] fractions."""
    (w, h), (W, H) = item_size, frame_size
    if isinstance(position, (list, tuple)):
        return int(round((W - w) * position[0])), int(round((H - h) * position[1]))
    x = {"left": margin_px, "right": W - w - margin_px}.get(
        next((p for p in ("left", "right") if p in position), ""), (W - w) // 2)
    y = {"top": margin_px, "bottom": H - h - margin_px}.get(
        next((p for p in ("top", "bottom") if p in position), ""), (H - h) // 2)
    return int(x), int(y)


def add_text(clip, text: str, start: float = 0.0, duration: float | None = None, position="center",
             font: str = "sans", size: float = 0.08, color: str = "white", stroke_color: str | None = "black",
             stroke_width: float = 0.05, background: str | None = None, fade: float = 0.3, max_width: float = 0.9,
             setting: str = "titles"):
    """A title or caption over the clip, with the shipped font (or `font` path), fading in and out."""
    from moviepy import ColorClip, CompositeVideoClip, TextClip, vfx

    W, H = clip.size
    path = font_path(font, f"{setting}.font")
    px = int(round(size * H if size < 1 else size))
    if px < 4:
        raise PostError(f"{setting}.size: {size!r} gives a {px}px font on a {H}px-high video; use a larger size")
    stroke = int(round(stroke_width * px)) if stroke_color else 0
    fg, _ = parse_color(color, f"{setting}.color")
    kwargs: dict[str, Any] = dict(font=path, text=text, font_size=px, color="#%02x%02x%02x" % fg,
                                  text_align="center", method="caption",
                                  size=(max(8, int(W * max_width)), None), margin=(stroke + 2, stroke + 2))
    if stroke_color:
        sc, _ = parse_color(stroke_color, f"{setting}.stroke_color")
        kwargs.update(stroke_color="#%02x%02x%02x" % sc, stroke_width=stroke)
    try:
        txt = TextClip(**kwargs)
    except (OSError, ValueError) as exc:
        raise PostError(f"{setting}: could not draw {text!r} with {path!r} ({exc})") from None
    # Crop the caption box to the drawn text so named positions sit against the edges.
    txt = _tight(txt)
    if start >= clip.duration:
        raise PostError(f"{setting}.start: {start} s is after the end of the video ({clip.duration:.3f} s)")
    end = clip.duration if duration is None else min(clip.duration, start + duration)
    layers = []
    tw, th = txt.size
    x, y = _place(position, (tw, th), (W, H), int(0.05 * min(W, H)))
    if background:
        rgb, alpha = parse_color(background, f"{setting}.background")
        pad = max(2, px // 4)
        box = ColorClip((tw + 2 * pad, th + 2 * pad), color=rgb).with_opacity(alpha)
        layers.append(box.with_position((x - pad, y - pad)))
    layers.append(txt.with_position((x, y)))
    d = end - start
    fade = min(fade, d / 2)
    styled = []
    for layer in layers:
        layer = layer.with_start(start).with_duration(d)
        if fade > 0:
            layer = layer.with_effects([vfx.CrossFadeIn(fade), vfx.CrossFadeOut(fade)])
        styled.append(layer)
    return _composite(clip, styled)


def _tight(txt):
    """Crop a text clip to the bounding box of its visible pixels (caption boxes are full-width)."""
    mask = txt.mask.get_frame(0) if txt.mask is not None else None
    if mask is None:
        return txt
    ys, xs = np.nonzero(mask > 0.02)
    if ys.size == 0:
        return txt
    pad = 2
    x1, x2 = max(0, xs.min() - pad), min(txt.size[0], xs.max() + pad + 1)
    y1, y2 = max(0, ys.min() - pad), min(txt.size[1], ys.max() + pad + 1)
    return txt.cropped(x1=int(x1), y1=int(y1), x2=int(x2), y2=int(y2))


def _composite(base, layers):
    from moviepy import CompositeVideoClip

    out = CompositeVideoClip([base, *layers], size=base.size).with_duration(base.duration)
    if base.audio is not None:
        out = out.with_audio(base.audio)
    return out.with_fps(base.fps) if getattr(base, "fps", None) else out


def add_overlay(clip, overlay, position="top-right", scale: float | None = 0.3, opacity: float = 1.0,
                start: float = 0.0, duration: float | None = None, margin: float = 0.03, setting: str = "overlays"):
    """An image/video over the clip (logo, picture-in-picture), scaled to `scale` of the width."""
    W, H = clip.size
    if scale is not None:
        if not 0 < scale <= 1:
            raise PostError(f"{setting}.scale: {scale!r} is not allowed; use a fraction of the width in (0, 1]")
        ow, oh = overlay.size
        nw = _even(round(W * scale))
        overlay = overlay.resized((nw, max(2, round(oh * nw / ow))))
    ow, oh = overlay.size
    if ow > W or oh > H:
        raise PostError(f"{setting}: the overlay is {ow}x{oh}, larger than the {W}x{H} video; set scale "
                        f"(a fraction of the width) or use a smaller overlay")
    if not 0 <= opacity <= 1:
        raise PostError(f"{setting}.opacity: {opacity!r} is not allowed; use 0..1")
    if start >= clip.duration:
        raise PostError(f"{setting}.start: {start} s is after the end of the video ({clip.duration:.3f} s)")
    room = clip.duration - start
    d = room if duration is None else min(duration, room)
    if overlay.duration is not None:
        d = min(d, overlay.duration)
    layer = overlay.with_start(start).with_duration(d)
    if opacity < 1:
        layer = layer.with_opacity(opacity)
    layer = layer.with_position(_place(position, (ow, oh), (W, H), int(round(margin * W))))
    return _composite(clip, [layer.without_audio() if layer.audio is not None else layer])


def blend(clip, other, opacity: float = 0.5, fit: bool = False, setting: str = "blend"):
    """Mix a second render over the clip at `opacity` (looped to the clip's length)."""
    from moviepy import vfx

    if not 0 <= opacity <= 1:
        raise PostError(f"{setting}.opacity: {opacity!r} is not allowed; use 0..1")
    if tuple(other.size) != tuple(clip.size):
        if not fit:
            raise PostError(f"{setting}: the second render is {other.size[0]}x{other.size[1]} but the scene is "
                            f"{clip.size[0]}x{clip.size[1]}; use renders of one size or set {setting}.fit: true")
        other = fit_size(other, clip.size, "crop")
    if other.duration is None:
        other = other.with_duration(clip.duration)
    elif other.duration < clip.duration:
        other = other.with_effects([vfx.Loop(duration=clip.duration)])
    layer = other.without_audio().with_duration(clip.duration).with_opacity(opacity).with_position((0, 0))
    return _composite(clip, [layer])


# ------------------------------------------------------------------------------------ music


def audio_duration(path: str | os.PathLike, setting: str = "music") -> float:
    """Length in seconds of a sound file's first audio stream (clear error if missing/unreadable)."""
    from vqclip.video import ffmpeg_exe

    p = Path(path)
    if not p.is_file():
        raise PostError(f"{setting}: audio file {str(p)!r} does not exist (give a .wav/.mp3/.ogg/.flac/.m4a path)")
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True,
                          text=True, errors="replace")
    if "Audio:" not in proc.stderr:
        raise PostError(f"{setting}: {str(p)!r} is not a readable audio file (no audio stream found)")
    m = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr)
    if not m:
        raise PostError(f"{setting}: {str(p)!r} has no known duration")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def add_music(clip, path: str | os.PathLike, volume: float = 1.0, fade_in: float = 0.0, fade_out: float = 1.0,
              start: float = 0.0, loop: bool = True, mix: bool = True, setting: str = "music"):
    """A soundtrack cut or looped to exactly the clip's length, with fades and a volume."""
    from moviepy import AudioFileClip, CompositeAudioClip, afx

    total = audio_duration(path, setting)
    if volume < 0:
        raise PostError(f"{setting}.volume: {volume!r} is not allowed; use 0 or more (1 = as is)")
    if start < 0 or start >= total:
        raise PostError(f"{setting}.start: {start} s is not allowed; the song lasts {total:.3f} s")
    try:
        music = AudioFileClip(str(path))
    except (OSError, KeyError, ValueError) as exc:
        raise PostError(f"{setting}: {str(path)!r} is not a readable audio file ({exc})") from None
    if start > 0:
        music = music.subclipped(start)
    D = clip.duration
    if music.duration < D:
        if loop:
            music = music.with_effects([afx.AudioLoop(duration=D)])
        else:  # silence after the song ends, so the track still spans the video
            music = CompositeAudioClip([music]).with_duration(D)
    else:
        music = music.subclipped(0, D)
    effects = []
    if fade_in > 0:
        effects.append(afx.AudioFadeIn(min(fade_in, D)))
    if fade_out > 0:
        effects.append(afx.AudioFadeOut(min(fade_out, D)))
    if volume != 1.0:
        effects.append(afx.MultiplyVolume(volume))
    if effects:
        music = music.with_effects(effects)
    if mix and clip.audio is not None:
        music = CompositeAudioClip([clip.audio, music]).with_duration(D)
    return clip.with_audio(music.with_duration(D))
