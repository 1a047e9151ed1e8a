"""The `post:` settings: dataclasses with defaults, loading from YAML, `key.sub=value` overrides, validation.

Every error names the setting (e.g. `scenes[1].speed`), the bad value and what is allowed, and an
unknown key gets a did-you-mean. Paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from vqclip.errors import ConfigError
from vqclip.settings.loader import apply_override, build, read_yaml

__all__ = [
    "TextSpec", "OverlaySpec", "BlendSpec", "SceneSpec", "MusicSpec", "GifSpec", "OutputSpec", "PostConfig",
    "load_post_config", "post_config_to_dict", "apply_overrides", "ASPECTS", "TRANSITIONS", "INTERPOLATIONS",
    "POSITIONS", "FONTS",
]

ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "4:5": (4, 5),
           "21:9": (21, 9)}
TRANSITIONS = ("cut", "crossfade", "fade")
INTERPOLATIONS = ("none", "blend", "motion")
POSITIONS = ("center", "top", "bottom", "left", "right", "top-left", "top-right", "bottom-left", "bottom-right")
FONTS = ("sans", "sans-bold")  # the shipped DejaVu fonts; or a path to a .ttf/.otf file
FITS = ("crop", "pad")
OUTPUT_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif")
Position = Union[str, list]


@dataclass
class TextSpec:
    """A title or caption drawn over the video."""

    text: str = ""
    start: float = 0.0  # seconds from the start of its scene (or of the piece, for top-level titles)
    duration: Optional[float] = None  # seconds on screen; null = until the end of its scene/piece
    position: Position = "center"  # center|top|bottom|left|right|top-left|..., or [x, y] as fractions 0..1
    font: str = "sans"  # sans | sans-bold (shipped DejaVu) | path to a .ttf/.otf
    size: float = 0.08  # font size: a fraction of the video height (< 1) or pixels (>= 1)
    color: str = "white"  # a name (white) or #rrggbb
    stroke_color: Optional[str] = "black"  # outline keeps light text readable on bright frames
    stroke_width: float = 0.05  # outline width as a fraction of the font size
    background: Optional[str] = None  # a box behind the text, e.g. "black" or "#000000@0.5"
    fade: float = 0.3  # seconds to fade the text in and out
    max_width: float = 0.9  # wrap lines longer than this fraction of the video width


@dataclass
class OverlaySpec:
    """An image, video or render placed over the video (logo, picture-in-picture)."""

    source: str = ""
    position: Position = "top-right"  # like TextSpec.position
    scale: Optional[float] = 0.3  # overlay width as a fraction of the video width; null = as it is
    opacity: float = 1.0
    start: float = 0.0
    duration: Optional[float] = None  # null = to the end (a video overlay stops when it ends)
    margin: float = 0.03  # gap to the edges for named positions, as a fraction of the video width
    fps: Optional[float] = None  # frame rate of an image-sequence source without settings.yaml


@dataclass
class BlendSpec:
    """A second render mixed over a scene with an opacity (looped to the scene's length)."""

    source: str = ""
    opacity: float = 0.5
    fit: bool = False  # resize the second render to the scene's size; false = sizes must match
    fps: Optional[float] = None


@dataclass
class SceneSpec:
    """One input in the piece, with its own timing, fades, titles and overlays."""

    source: str = ""  # a render folder, an image folder or glob ("shots/*.png"), a video file, or an image
    fps: Optional[float] = None  # frame rate of an image sequence (render folders read settings.yaml)
    trim: Optional[list] = None  # [start, end] seconds of the source to keep; end may be null
    speed: float = 1.0  # playback speed: 0.5 = half speed (twice as long), 2 = double
    duration: Optional[float] = None  # stretch or squeeze to this many seconds (instead of speed)
    interpolate: str = "blend"  # none | blend | motion: how in-between frames are made when slowed down
    reverse: bool = False
    boomerang: bool = False  # play forward then backward (loops seamlessly)
    loop: int = 1  # play this many times
    hold_first: float = 0.0  # seconds to hold the first frame
    hold_last: float = 0.0  # seconds to hold the last frame
    fade_in: float = 0.0  # seconds of fade from fade_color
    fade_out: float = 0.0
    fade_color: str = "black"  # black | white | #rrggbb
    transition: Optional[str] = None  # into this scene from the previous: cut|crossfade|fade; null = piece default
    transition_duration: Optional[float] = None  # seconds; null = piece default
    audio: bool = False  # keep the source video's own sound
    image_duration: float = 3.0  # seconds a still-image source lasts
    blend: Optional[BlendSpec] = None
    titles: list = field(default_factory=list)  # list[TextSpec] shown over this scene
    overlays: list = field(default_factory=list)  # list[OverlaySpec] over this scene


@dataclass
class MusicSpec:
    """A soundtrack trimmed or looped to the video's length."""

    path: str = ""
    start: float = 0.0  # seconds into the song where the video starts
    volume: float = 1.0  # gain: 1 = as is, 0.5 = half
    fade_in: float = 0.0
    fade_out: float = 1.0  # seconds; a fade out avoids a click when the song is cut
    loop: bool = True  # repeat a short song to fill the video (false: silence after it ends)
    mix: bool = True  # keep scenes' own sound under the music (scenes with audio: true)


@dataclass
class GifSpec:
    """GIF settings (palettegen/paletteuse through ffmpeg)."""

    fps: Optional[float] = None  # null = 5, 10, 20 or 25, the highest not above the video's (exact GIF timing)
    width: Optional[int] = None  # null = the video width
    colors: int = 256  # palette size, 2..256
    dither: str = "sierra2_4a"  # none | bayer | floyd_steinberg | sierra2 | sierra2_4a
    loop: int = 0  # 0 = forever, n = play n+1 times


@dataclass
class OutputSpec:
    """Where and how the piece is written."""

    path: str = "post.mp4"  # the suffix picks the format: .mp4/.mov/.mkv (H.264), .webm (VP9), .gif
    formats: list = field(default_factory=list)  # extra copies beside path, e.g. [gif, webm]
    quality: Union[str, int] = "high"  # lossless|high|medium|low|draft or a CRF number 0..51
    gif: GifSpec = field(default_factory=GifSpec)


@dataclass
class PostConfig:
    """A whole post-production job: scenes joined with transitions, composited, scored and exported."""

    scenes: list = field(default_factory=list)  # list[SceneSpec], in order
    fps: Optional[float] = None  # output frame rate; null = the first scene's
    aspect: Optional[str] = None  # 16:9 | 9:16 | 1:1 | 4:3 | 3:4 | 4:5 | 21:9 | "W:H"; null = keep
    fit: str = "crop"  # crop (fill the frame) | pad (letterbox with background)
    size: Optional[list] = None  # [width, height] exact output size (wins over aspect)
    width: Optional[int] = None  # output width; the height follows the aspect
    background: str = "black"  # colour of padding and of gaps
    transition: str = "cut"  # default between scenes: cut | crossfade | fade (dip through fade_color)
    transition_duration: float = 1.0
    fade_in: float = 0.0  # of the whole piece
    fade_out: float = 0.0
    fade_color: str = "black"
    titles: list = field(default_factory=list)  # list[TextSpec] over the whole piece
    overlays: list = field(default_factory=list)  # list[OverlaySpec] over the whole piece
    music: Optional[MusicSpec] = None
    output: OutputSpec = field(default_factory=OutputSpec)
    base_dir: str = field(default=".", metadata={"internal": True})  # where relative paths start


# Element types of the list fields (kept beside the dataclasses so the loader stays generic).
_LIST_ITEMS = {
    (SceneSpec, "titles"): TextSpec, (SceneSpec, "overlays"): OverlaySpec, (SceneSpec, "trim"): float,
    (PostConfig, "scenes"): SceneSpec, (PostConfig, "titles"): TextSpec, (PostConfig, "overlays"): OverlaySpec,
    (PostConfig, "size"): int, (OutputSpec, "formats"): str,
}
# A bare string stands for this field: `- forest/` is a scene, `music: song.mp3`, `- "Hello"` a title.
_SHORTHAND = {SceneSpec: "source", OverlaySpec: "source", BlendSpec: "source", MusicSpec: "path", TextSpec: "text"}


def _build(cls: type, data: dict, where: str) -> Any:
    """A post dataclass from a mapping, through the one typed loader with the post schema's shorthands."""
    return build(cls, data, where, shorthand=_SHORTHAND, list_items=_LIST_ITEMS)


# ------------------------------------------------------------------------------------ validation


def _bad(where: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{where}: {value!r} is not allowed; {allowed}")


def _check_nonneg(where: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise _bad(where, value, "use 0 or more seconds")


def _check_position(where: str, pos: Any) -> None:
    if isinstance(pos, str):
        if pos not in POSITIONS:
            raise _bad(where, pos, f"use one of {', '.join(POSITIONS)} or [x, y] fractions 0..1")
    elif not (isinstance(pos, list) and len(pos) == 2 and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in pos)):
        raise _bad(where, pos, f"use one of {', '.join(POSITIONS)} or [x, y] fractions 0..1")


def _check_color(where: str, color: str | None) -> None:
    if color is None:
        return
    from vqclip.errors import PostError
    from vqclip.postproduction.clips import parse_color

    try:
        parse_color(color, where)
    except PostError as exc:
        raise ConfigError(str(exc)) from None


def _check_text(where: str, t: TextSpec) -> None:
    if not t.text.strip():
        raise _bad(f"{where}.text", t.text, "give the words to show")
    _check_nonneg(f"{where}.start", t.start)
    if t.duration is not None and t.duration <= 0:
        raise _bad(f"{where}.duration", t.duration, "use a positive number of seconds or null (to the end)")
    _check_position(f"{where}.position", t.position)
    if t.size <= 0:
        raise _bad(f"{where}.size", t.size, "use a fraction of the height (0.08) or pixels (24)")
    if t.stroke_width < 0:
        raise _bad(f"{where}.stroke_width", t.stroke_width, "use 0 (no outline) or more")
    _check_nonneg(f"{where}.fade", t.fade)
    if not 0 < t.max_width <= 1:
        raise _bad(f"{where}.max_width", t.max_width, "use a fraction of the width in (0, 1]")
    for key in ("color", "stroke_color", "background"):
        _check_color(f"{where}.{key}", getattr(t, key))


def _check_overlay(where: str, o: OverlaySpec) -> None:
    if not o.source:
        raise _bad(f"{where}.source", o.source, "give an image, video or render folder path")
    _check_position(f"{where}.position", o.position)
    if o.scale is not None and not 0 < o.scale <= 1:
        raise _bad(f"{where}.scale", o.scale, "use a fraction of the video width in (0, 1], or null for as-is")
    if not 0 <= o.opacity <= 1:
        raise _bad(f"{where}.opacity", o.opacity, "use 0 (invisible) .. 1 (opaque)")
    _check_nonneg(f"{where}.start", o.start)
    if o.duration is not None and o.duration <= 0:
        raise _bad(f"{where}.duration", o.duration, "use a positive number of seconds or null")
    if o.fps is not None and o.fps <= 0:
        raise _bad(f"{where}.fps", o.fps, "use a positive frame rate")


def _check_scene(where: str, s: SceneSpec) -> None:
    if not s.source:
        raise _bad(f"{where}.source", s.source, "give a render folder, image folder/glob, video or image path")
    if s.fps is not None and s.fps <= 0:
        raise _bad(f"{where}.fps", s.fps, "use a positive frame rate (e.g. 12)")
    if s.trim is not None:
        if len(s.trim) != 2 or s.trim[0] is None or s.trim[0] < 0:
            raise _bad(f"{where}.trim", s.trim, "use [start, end] seconds, start >= 0, end > start or null")
        if s.trim[1] is not None and s.trim[1] <= s.trim[0]:
            raise _bad(f"{where}.trim", s.trim, "end must be after start")
    if s.speed <= 0:
        raise _bad(f"{where}.speed", s.speed, "use a positive factor: 0.5 = half speed, 2 = double")
    if s.duration is not None and s.duration <= 0:
        raise _bad(f"{where}.duration", s.duration, "use a positive number of seconds")
    if s.duration is not None and s.speed != 1.0:
        raise ConfigError(f"{where}: set speed or duration, not both (speed={s.speed}, duration={s.duration})")
    if s.interpolate not in INTERPOLATIONS:
        raise _bad(f"{where}.interpolate", s.interpolate, f"use one of {', '.join(INTERPOLATIONS)}")
    if s.loop < 1:
        raise _bad(f"{where}.loop", s.loop, "use 1 (play once) or more")
    for key in ("hold_first", "hold_last", "fade_in", "fade_out"):
        _check_nonneg(f"{where}.{key}", getattr(s, key))
    if s.image_duration <= 0:
        raise _bad(f"{where}.image_duration", s.image_duration, "use a positive number of seconds")
    _check_color(f"{where}.fade_color", s.fade_color)
    if s.transition is not None and s.transition not in TRANSITIONS:
        raise _bad(f"{where}.transition", s.transition, f"use one of {', '.join(TRANSITIONS)} or null")
    if s.transition_duration is not None and s.transition_duration <= 0:
        raise _bad(f"{where}.transition_duration", s.transition_duration, "use a positive number of seconds")
    if s.blend is not None:
        if not s.blend.source:
            raise _bad(f"{where}.blend.source", s.blend.source, "give a second render, video or image path")
        if not 0 <= s.blend.opacity <= 1:
            raise _bad(f"{where}.blend.opacity", s.blend.opacity, "use 0 .. 1")
    for i, t in enumerate(s.titles):
        _check_text(f"{where}.titles[{i}]", t)
    for i, o in enumerate(s.overlays):
        _check_overlay(f"{where}.overlays[{i}]", o)


def parse_aspect(value: str, where: str = "aspect") -> tuple[int, int]:
    """(w, h) of an aspect like "16:9" (or any "W:H" of positive whole numbers)."""
    if value in ASPECTS:
        return ASPECTS[value]
    m = re.fullmatch(r"\s*(\d+)\s*[:x/]\s*(\d+)\s*", str(value))
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise _bad(where, value, f"use one of {', '.join(ASPECTS)} or \"W:H\"")
    return int(m.group(1)), int(m.group(2))


def validate(cfg: PostConfig) -> PostConfig:
    """Check every value's range and choice; raise ConfigError naming the first bad setting."""
    if not cfg.scenes:
        raise ConfigError("scenes: at least one scene is required (a render folder, image folder/glob or video)")
    if cfg.fps is not None and cfg.fps <= 0:
        raise _bad("fps", cfg.fps, "use a positive frame rate (e.g. 24)")
    if cfg.aspect is not None:
        parse_aspect(cfg.aspect)
    if cfg.fit not in FITS:
        raise _bad("fit", cfg.fit, f"use one of {', '.join(FITS)}")
    if cfg.size is not None and (len(cfg.size) != 2 or min(cfg.size) < 2):
        raise _bad("size", cfg.size, "use [width, height] in pixels, each at least 2")
    if cfg.width is not None and cfg.width < 2:
        raise _bad("width", cfg.width, "use a width in pixels of at least 2")
    _check_color("background", cfg.background)
    if cfg.transition not in TRANSITIONS:
        raise _bad("transition", cfg.transition, f"use one of {', '.join(TRANSITIONS)}")
    if cfg.transition_duration <= 0:
        raise _bad("transition_duration", cfg.transition_duration, "use a positive number of seconds")
    for key in ("fade_in", "fade_out"):
        _check_nonneg(key, getattr(cfg, key))
    _check_color("fade_color", cfg.fade_color)
    for i, s in enumerate(cfg.scenes):
        _check_scene(f"scenes[{i}]", s)
    for i, t in enumerate(cfg.titles):
        _check_text(f"titles[{i}]", t)
    for i, o in enumerate(cfg.overlays):
        _check_overlay(f"overlays[{i}]", o)
    m = cfg.music
    if m is not None:
        if not m.path:
            raise _bad("music.path", m.path, "give an audio file path (.wav/.mp3/.ogg/.flac/.m4a)")
        _check_nonneg("music.start", m.start)
        if m.volume < 0:
            raise _bad("music.volume", m.volume, "use 0 (silent) or more; 1 = as is")
        _check_nonneg("music.fade_in", m.fade_in)
        _check_nonneg("music.fade_out", m.fade_out)
    o = cfg.output
    suffix = Path(o.path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise _bad("output.path", o.path, f"end it with one of {', '.join(OUTPUT_SUFFIXES)}")
    for i, fmt in enumerate(o.formats):
        if "." + fmt.lower().lstrip(".") not in OUTPUT_SUFFIXES:
            raise _bad(f"output.formats[{i}]", fmt, "use mp4, mov, mkv, webm or gif")
    from vqclip.video import crf_for_quality
    from vqclip.errors import PostError

    try:
        crf_for_quality(o.quality)
    except PostError as exc:
        raise ConfigError(f"output.{exc}") from None
    g = o.gif
    if g.fps is not None and g.fps <= 0:
        raise _bad("output.gif.fps", g.fps, "use a positive frame rate (10-15 suits GIFs)")
    if g.width is not None and g.width < 2:
        raise _bad("output.gif.width", g.width, "use a width in pixels of at least 2")
    if not 2 <= g.colors <= 256:
        raise _bad("output.gif.colors", g.colors, "use 2..256")
    if g.dither not in ("none", "bayer", "floyd_steinberg", "sierra2", "sierra2_4a", "heckbert", "sierra3",
                        "burkes", "atkinson"):
        raise _bad("output.gif.dither", g.dither, "use none, bayer, floyd_steinberg, sierra2 or sierra2_4a")
    if g.loop < 0:
        raise _bad("output.gif.loop", g.loop, "use 0 (forever) or a number of repeats")
    return cfg


# ------------------------------------------------------------------------------------ loading


#: a bare string entry stands for this field in an override path (`scenes.0.speed=2` on `scenes: [forest/]`).
_OVERRIDE_SHORTHAND = {"scenes": "source", "overlays": "source", "blend": "source", "titles": "text", "music": "path"}


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Set ``key.sub=value`` overrides (YAML values; list items by index: ``scenes.0.speed=0.5``) on a dict."""
    for item in overrides:
        apply_override(data, item, shorthand=_OVERRIDE_SHORTHAND, strip_prefix="post")  # `--set post.x=1` on a render preset
    return data


def load_post_config(source: str | os.PathLike | dict | PostConfig, overrides=(), base_dir=None) -> PostConfig:
    """A validated PostConfig from a post YAML path, a render preset with a `post:` section, or a dict."""
    import copy

    if isinstance(source, PostConfig):
        data = post_config_to_dict(source)
        base = base_dir or source.base_dir
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
        base = base_dir or "."
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"post file: {str(path)!r} does not exist (give a post YAML or a render preset)")
        data = read_yaml(path, f"post file {str(path)!r}") or {}
        base = base_dir or str(path.parent)
        if isinstance(data, dict) and "post" in data:
            # A render preset (or a render's settings.yaml): its post: section; scenes default to
            # the render folder the file sits in, when that folder holds frames.
            data = copy.deepcopy(data["post"] or {})
            if "scenes" not in data and (path.parent / "frames").is_dir():
                data["scenes"] = [str(path.parent)]
    if isinstance(data, dict) and "post" in data and isinstance(data.get("post"), dict) and len(data) == 1:
        data = data["post"]
    if not isinstance(data, dict):
        raise ConfigError(f"post settings: expected a mapping of settings, got {type(data).__name__}")
    data = apply_overrides(data, list(overrides))
    cfg = _build(PostConfig, data, "")
    cfg.base_dir = str(base)
    return validate(cfg)


def post_config_to_dict(cfg: PostConfig) -> dict:
    """The settings as plain YAML-ready data (without internal fields)."""
    data = dataclasses.asdict(cfg)
    data.pop("base_dir", None)
    return data
