"""Render settings: dataclasses, YAML presets, ``key.sub=value`` overrides and validation.

A preset is a YAML file with the sections below (all optional; every default is explained beside
it). Bundled presets live in the top-level ``presets/`` folder, shipped as the package
``vqclip.presets``, and are found by name. Validation raises :class:`ConfigError` naming the key,
the bad value and what is allowed; unknown keys get a did-you-mean. The names of the VQGAN-CLIP
notebook (texts, width, height, model, images_interval, init_image, target_images, seed,
max_iterations) are kept so its users find them: ``model`` is ``models.vqgan`` here.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vqclip.errors import ConfigError
from vqclip.settings.loader import apply_override as _apply
from vqclip.settings.loader import build, did_you_mean, parse_override_value, read_yaml

__all__ = [
    "RenderConfig", "PromptsConfig", "SceneConfig", "SizeConfig", "ModelsConfig", "PerceptorConfig",
    "GenerationConfig", "AnimationConfig", "OutputConfig", "load_config", "config_to_dict", "config_hash",
    "apply_override", "parse_override_value", "read_preset", "frame_settings", "settings_diff", "MOVED_KEYS", "unread_keys", "read_keys", "list_presets", "format_preset_table", "OPTIMIZERS", "PRECISIONS", "BORDER_MODES",
]

#: optimizer names accepted in ``generation.optimizer`` -> the torch.optim class they build.
OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "adamax": "Adamax", "nadam": "NAdam", "radam": "RAdam",
    "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
COMPILE_MODES = ("off", "on")  # generation.compile; vqclip.production.speed applies it
BORDER_MODES = ("reflect", "replicate", "zeros")
DEFAULT_FRAMES = 24  # frames of a render without scenes when animation.frames is not given


# ----------------------------------------------------------------------------------------------
# The schema


@dataclass
class SceneConfig:
    """One scene of a prompt timeline."""

    texts: str | list[str] = ""  # this scene's prompts, "text:weight:stop" joined by "|"
    target_images: str | list[str] = ""  # this scene's image prompts, "path:weight:stop" joined by "|"
    frames: int = 12  # how many frames the scene lasts; its weight fades into the next scene's across them


@dataclass
class PromptsConfig:
    """What the video shows."""

    texts: str | list[str] = ""  # "text:weight:stop" joined by "|"; a negative weight pushes away; with scenes, acts on every frame (a style)
    target_images: str | list[str] = ""  # image prompts "path:weight:stop" joined by "|", pulled toward like texts
    init_image: str | None = None  # start the first frame from this picture instead of random codes
    scenes: list[SceneConfig] = field(default_factory=list)  # a timeline; neighbouring scenes blend linearly (paper 000 eq. 1)


@dataclass
class SizeConfig:
    """Frame size in pixels; any size works, the output is exactly this."""

    width: int = 640  # the production paper's notebook setting (640x384 fits a 15 GB T4)
    height: int = 384


@dataclass
class PerceptorConfig:
    """One CLIP model that judges the frames, and how much its judgement counts."""

    spec: str | dict = "ViT-B-32/openai"  # open_clip "ARCH/PRETRAINED", "toy", or {config|name, weights} local files
    weight: float = 1.0  # this perceptor's share of the loss


@dataclass
class ModelsConfig:
    """Which models to use and where they live."""

    vqgan: str | dict = "imagenet_f16_16384"  # the paper's `model`: a registry name or {config: x.yaml, checkpoint: x.ckpt}; read by the vqgan generator
    clip: list[PerceptorConfig] = field(default_factory=lambda: [PerceptorConfig()])  # one or more perceptors, losses summed by weight (optimized engines)
    diffusion: str | dict | None = None  # sampled engines: a registry name or {path: local diffusers folder}
    motion_adapter: str | dict | None = None  # animatediff: a registry name or {path: ...}
    cache_dir: str | None = None  # where downloaded models live; None = $VQCLIP_CACHE or ~/.cache/vqclip
    download: bool = True  # fetch a missing registry checkpoint; false = local files only


@dataclass
class GenerationConfig:
    """How each frame is optimized."""

    engine: str = "vqgan"  # vqgan (a VQGAN latent) | pixels (RGB pixels, paper 000) | a registered sampled engine
    seed: int = -1  # -1 draws a random seed, recorded in settings.yaml so the render can be repeated
    max_iterations: int = -1  # a cap on steps over the whole render; -1 = no cap (until the frames are done or you stop it)
    precision: str = "auto"  # auto (bf16 or fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    compile: str | None = None  # optimized engines: off | on (torch.compile the decoder and CLIP's image tower; the first step compiles); null = off
    # Optimized engines only; null = the generator's default, resolved at load (Generator.defaults):
    iterations_first_frame: int | None = None  # the first frame starts from noise: vqgan 200, pixels 100
    iterations_per_frame: int | None = None  # later frames start from the previous one: vqgan 30, pixels 25 (10 fast)
    lr: float | None = None  # step size: vqgan 0.1 (0.15 suits gumbel), pixels 0.1 (0.17 fast)
    optimizer: str = "adam"  # one of OPTIMIZERS: adam, adamw, adamax, nadam, radam, sgd, rmsprop, adagrad
    reset_optimizer: bool = True  # a fresh optimizer each frame: the warped frame is a new problem
    stability_weight: float | None = None  # L1 pull toward the warped previous frame (paper 000 eq. 2): vqgan 0, pixels 4 - 4*tau
    objective: str | None = None  # cutouts | views; null = the generator's own (vqgan -> cutouts, pixels -> views)
    sections: dict[str, Any] = field(default_factory=dict)  # generation.<name> -> its Options, for every engine and objective

    @property
    def options(self) -> Any:
        """The selected engine's options dataclass."""
        return self.sections[self.engine]

    @property
    def objective_options(self) -> Any:
        """The selected objective's options dataclass (optimized engines)."""
        return self.sections[self.objective]


@dataclass
class AnimationConfig:
    """How one frame becomes the start of the next: keyframe schedules, per frame."""

    frames: int | None = None  # None = the scenes' total, or 24 without scenes
    zoom: str | dict = "0:(1.0)"  # scale per frame, >1 zooms in; "0:(1.0), 30:(1.05)" ramps; may use t; or {beats: song.wav, pulse: 1.08}
    angle: str | dict = "0:(0)"  # rotation per frame in degrees, counter-clockwise
    translation_x: str | dict = "0:(0)"  # shift per frame in pixels, positive moves the picture right
    translation_y: str | dict = "0:(0)"  # shift per frame in pixels, positive moves the picture down
    border_mode: str = "reflect"  # what fills the edges a warp uncovers: reflect | replicate | zeros


@dataclass
class OutputConfig:
    """What is written besides the frames."""

    fps: float = 12.0  # frames per second of the draft video
    images_interval: int = 50  # the paper's display rate: a preview every N steps; 0 = none
    video: bool = True  # write the draft video.mp4 (H.264, yuv420p, +faststart)
    video_quality: str | int = "high"  # lossless | high | medium | low | draft, or an x264 CRF 0..51
    contact_sheet: bool = True  # write contact_sheet.png, a grid of frames to judge a render at a glance
    save_every: int = 25  # also save resume.pt every N optimizer steps inside a frame (0 = at frame boundaries only): a kill costs at most N steps


@dataclass
class RenderConfig:
    """Everything one render needs; ``post`` is kept as given for the post-production stage."""

    description: str = ""  # one line shown by `vqclip presets`
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    size: SizeConfig = field(default_factory=SizeConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    animation: AnimationConfig = field(default_factory=AnimationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    post: dict = field(default_factory=dict)  # validated by vqclip.postproduction.run, not here


# ----------------------------------------------------------------------------------------------
# Small validators: each names the key, the value and what is allowed


def _int(key: str, v: Any, lo: int | None = None, hi: int | None = None, also: tuple = ()) -> int:
    if v in also and not isinstance(v, bool):
        return int(v)
    ok = isinstance(v, int) and not isinstance(v, bool)
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}" if lo is not None else "any"
        extra = "".join(f" or {a}" for a in also)
        raise ConfigError(f"{key}: {v!r} is not allowed; use a whole number {rng}{extra}")
    return v


def _num(key: str, v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if ok and lo is not None and (v < lo or (lo_open and v == lo)):
        ok = False
    if ok and hi is not None and v > hi:
        ok = False
    if not ok:
        bound = f"{'>' if lo_open else '>='} {lo}" if lo is not None else "finite"
        if hi is not None:
            bound += f" and <= {hi}"
        raise ConfigError(f"{key}: {v!r} is not allowed; use a number {bound}")
    return float(v)


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{key}: {v!r} is not allowed; use true or false")
    return v


def _choice(key: str, v: Any, choices) -> str:
    if not isinstance(v, str) or v.lower() not in choices:
        raise ConfigError(
            f"{key}: {v!r} is not allowed; use one of {', '.join(choices)}{did_you_mean(str(v).lower(), choices)}"
        )
    return v.lower()


def _text(key: str, v: Any, allow_list: bool = True) -> str | list[str]:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if allow_list and isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise ConfigError(f"{key}: {v!r} is not allowed; use a string{' or a list of strings' if allow_list else ''}")


def _mapping(key: str, v: Any) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{key}: {v!r} is not allowed; this section is a mapping of settings (key: value)")
    return v


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name != "sections"]


def _known_paths() -> list[str]:
    """Every dotted key of the schema, for did-you-mean across sections."""
    out = []
    for sec in ("prompts", "size", "models", "generation", "animation", "output"):
        cls = {f.name: f for f in dataclasses.fields(RenderConfig)}[sec].default_factory().__class__
        out += [f"{sec}.{name}" for name in _fields(cls)]
    return out + ["description", "post"]


def _check_keys(key: str, data: dict, allowed: list[str]) -> None:
    for k in data:
        if k in allowed:
            continue
        where = f"{key}.{k}" if key else str(k)
        close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.6)
        if close:
            suggestion = f"{key}.{close[0]}" if key else close[0]
        else:  # the same word in another section? ("generation.width" -> "size.width")
            others = [p for p in _known_paths() if p.rsplit(".", 1)[-1] == k]
            suggestion = others[0] if others else None
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        raise ConfigError(f"{where}: unknown setting{hint} (allowed here: {', '.join(allowed)})")


# ----------------------------------------------------------------------------------------------
# Building the dataclasses from a plain dict


def _build_prompts(d: dict) -> PromptsConfig:
    d = _mapping("prompts", d)
    _check_keys("prompts", d, _fields(PromptsConfig))
    c = PromptsConfig()
    c.texts = _text("prompts.texts", d.get("texts", c.texts))
    c.target_images = _text("prompts.target_images", d.get("target_images", c.target_images))
    if d.get("init_image") not in (None, ""):
        c.init_image = _text("prompts.init_image", d["init_image"], allow_list=False)
        if not Path(c.init_image).expanduser().is_file():
            raise ConfigError(f"prompts.init_image: {c.init_image!r} is not a file; give the path of a PNG or JPEG")
    scenes = d.get("scenes") or []
    if not isinstance(scenes, list):
        raise ConfigError(f"prompts.scenes: {scenes!r} is not allowed; use a list of {{texts, frames}} mappings")
    for i, s in enumerate(scenes):
        key = f"prompts.scenes[{i}]"
        s = _mapping(key, s)
        _check_keys(key, s, _fields(SceneConfig))
        sc = SceneConfig()
        sc.texts = _text(f"{key}.texts", s.get("texts", sc.texts))
        sc.target_images = _text(f"{key}.target_images", s.get("target_images", sc.target_images))
        sc.frames = _int(f"{key}.frames", s.get("frames", sc.frames), 1)
        c.scenes.append(sc)
    return c


def _build_size(d: dict) -> SizeConfig:
    d = _mapping("size", d)
    _check_keys("size", d, _fields(SizeConfig))
    c = SizeConfig()
    c.width = _int("size.width", d.get("width", c.width), 16, 4096)
    c.height = _int("size.height", d.get("height", c.height), 16, 4096)
    return c


def _perceptor_spec(key: str, spec: Any) -> str | dict:
    if isinstance(spec, str) and spec.strip():
        return spec.strip()
    if isinstance(spec, dict):
        allowed = ["config", "name", "weights"]
        _check_keys(key, spec, allowed)
        if "weights" not in spec or not ({"config", "name"} & set(spec)):
            raise ConfigError(f"{key}: {spec!r} is not allowed; a local perceptor is {{config: model.json, weights: file}} or {{name: ARCH, weights: file}}")
        for k in ("config", "weights"):
            if k in spec and not Path(str(spec[k])).expanduser().is_file():
                raise ConfigError(f"{key}.{k}: {spec[k]!r} is not a file")
        return dict(spec)
    raise ConfigError(f"{key}: {spec!r} is not allowed; use an open_clip 'ARCH/PRETRAINED' name, 'toy', or {{config|name, weights}}")


def _build_models(d: dict) -> ModelsConfig:
    d = _mapping("models", d)
    _check_keys("models", d, _fields(ModelsConfig))
    c = ModelsConfig()
    v = d.get("vqgan", c.vqgan)
    if isinstance(v, dict):
        _check_keys("models.vqgan", v, ["config", "checkpoint"])
        for k in ("config", "checkpoint"):
            if k not in v or not Path(str(v[k])).expanduser().is_file():
                raise ConfigError(f"models.vqgan.{k}: {v.get(k)!r} is not a file; local VQGAN files are {{config: x.yaml, checkpoint: x.ckpt}}")
        c.vqgan = {k: str(v[k]) for k in ("config", "checkpoint")}
    elif isinstance(v, str) and v.strip():
        c.vqgan = v.strip()
        names = _registry_names()
        if names is not None and c.vqgan not in names:
            raise ConfigError(f"models.vqgan: {c.vqgan!r} is not a known model; use one of {', '.join(names)}{did_you_mean(c.vqgan, names)} or {{config, checkpoint}} files")
    else:
        raise ConfigError(f"models.vqgan: {v!r} is not allowed; use a registry name (see `vqclip models`) or {{config, checkpoint}}")
    clip = d.get("clip", None)
    if clip is not None:
        if isinstance(clip, (str, dict)):
            clip = [clip]
        if not isinstance(clip, list) or not clip:
            raise ConfigError(f"models.clip: {clip!r} is not allowed; use a list of perceptors, e.g. [{{spec: ViT-B-32/openai, weight: 1.0}}]")
        c.clip = []
        for i, item in enumerate(clip):
            key = f"models.clip[{i}]"
            if isinstance(item, dict) and "spec" in item:
                _check_keys(key, item, _fields(PerceptorConfig))
                spec = _perceptor_spec(f"{key}.spec", item["spec"])
                weight = _num(f"{key}.weight", item.get("weight", 1.0), 0.0, lo_open=True)
            else:
                spec, weight = _perceptor_spec(key, item), 1.0
            c.clip.append(PerceptorConfig(spec, weight))
    for name in ("diffusion", "motion_adapter"):
        v = d.get(name)
        if v is None:
            continue
        if isinstance(v, dict):
            _check_keys(f"models.{name}", v, ["path"])
            if not Path(str(v.get("path"))).expanduser().is_dir():
                raise ConfigError(f"models.{name}.path: {v.get('path')!r} is not a folder; a local model is {{path: a diffusers folder}}")
            setattr(c, name, {"path": str(v["path"])})
        elif isinstance(v, str) and v.strip():
            setattr(c, name, v.strip())
        else:
            raise ConfigError(f"models.{name}: {v!r} is not allowed; use a registry name (see `vqclip models`), {{path: folder}} or null")
    if d.get("cache_dir") is not None:
        c.cache_dir = str(_text("models.cache_dir", d["cache_dir"], allow_list=False))
    c.download = _bool("models.download", d.get("download", c.download))
    return c


def _registry_names() -> list[str] | None:
    """Registry model names, or None while the registry cannot be imported (then the loader checks)."""
    try:
        from vqclip.models.registry import list_models
    except ImportError:
        return None
    names = []
    for m in list_models("vqgan"):
        names.append(m if isinstance(m, str) else getattr(m, "name", str(m)))
    return names


#: keys of the old flat layout -> where they live now; giving one is a one-line "moved to" ConfigError.
MOVED_KEYS = {
    "generation.cutn": "generation.cutouts.cutn",
    "generation.cut_pow": "generation.cutouts.cut_pow",
    "generation.augmentations": "generation.cutouts.augmentations",
    "generation.pixels.views": "generation.views.count",
    "generation.pixels.crop_scale": "generation.views.crop_scale",
    "generation.pixels.distortion": "generation.views.distortion",
    "generation.pixels.perceptor_mode": "generation.views.perceptor_mode",
    "generation.pixels.negative_prompts": "generation.views.negative_prompts",
    "generation.pixels.first_steps": "generation.iterations_first_frame",
    "generation.pixels.steps": "generation.iterations_per_frame",
    "generation.pixels.lr": "generation.lr",
    "generation.pixels.stability_weight": "generation.stability_weight",
}

#: generation.* keys only optimized engines read (a sampled engine given one is a ConfigError).
SGD_LR_SCALE = 100.0  # generation.lr: null with optimizer sgd -> the engine's (Adam) default times this
MAX_STEPS = 100_000  # steps per frame: 500x the paper's first frame; beyond it a render never ends on any GPU
OPTIMIZED_KEYS = ("iterations_first_frame", "iterations_per_frame", "lr", "optimizer", "reset_optimizer", "stability_weight", "objective", "compile")


def _check_moved(data: dict) -> None:
    for old, new in MOVED_KEYS.items():
        if _lookup(data, old) is not None:
            raise ConfigError(f"{old}: moved to {new}; write {new}: {_lookup(data, old)!r}")


def _sections() -> dict[str, Any]:
    """Every settings section under generation.<name>: engines (generators, sampled) and objectives -> their class."""
    from vqclip.production.engines import engine_names, get_engine
    from vqclip.production.objectives import OBJECTIVES, get_objective

    return {**{n: get_engine(n) for n in engine_names()}, **{n: get_objective(n) for n in OBJECTIVES}}


def _build_generation(d: dict) -> GenerationConfig:
    from vqclip.production.engines import engine_names, get_engine
    from vqclip.production.objectives import OBJECTIVES

    d = _mapping("generation", d)
    parts = _sections()
    _check_keys("generation", d, _fields(GenerationConfig) + list(parts))
    c = GenerationConfig()
    c.engine = _choice("generation.engine", d.get("engine", c.engine), engine_names())
    c.seed = _int("generation.seed", d.get("seed", c.seed), 0, 2**32 - 1, also=(-1,))
    c.max_iterations = _int("generation.max_iterations", d.get("max_iterations", c.max_iterations), 1, also=(-1,))
    c.precision = _choice("generation.precision", d.get("precision", c.precision), PRECISIONS)
    dev = d.get("device", c.device)
    if not isinstance(dev, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", dev.strip().lower()):
        raise ConfigError(f"generation.device: {dev!r} is not allowed; use auto, cpu, cuda or cuda:N")
    c.device = dev.strip().lower()
    for name, part in parts.items():
        key = f"generation.{name}"
        opts = build(part.Options, _mapping(key, d.get(name)), key)
        part.validate_options(opts, key)
        c.sections[name] = opts
    engine = get_engine(c.engine)
    if engine.family != "optimized":
        return c  # the optimized-only keys stay null (giving one is caught by _check_owned)
    defaults = engine.defaults(c.options)
    c.iterations_first_frame = _int("generation.iterations_first_frame", _or(d.get("iterations_first_frame"), defaults["iterations_first_frame"]), 1, MAX_STEPS)
    c.iterations_per_frame = _int("generation.iterations_per_frame", _or(d.get("iterations_per_frame"), defaults["iterations_per_frame"]), 1, MAX_STEPS)
    c.optimizer = _choice("generation.optimizer", d.get("optimizer", c.optimizer), list(OPTIMIZERS))
    # Plain SGD has no per-parameter scaling: at Adam's step size the gradients of a spherical CLIP loss move
    # a toy VQGAN frame by 0.0 grey levels in 20 steps; 100x (capped at the lr range) moves it as far as Adam.
    default_lr = min(100.0, defaults["lr"] * SGD_LR_SCALE) if c.optimizer == "sgd" else defaults["lr"]
    c.lr = _num("generation.lr", _or(d.get("lr"), default_lr), 0.0, 100.0, lo_open=True)
    c.stability_weight = _num("generation.stability_weight", _or(d.get("stability_weight"), defaults["stability_weight"]), 0.0)
    c.reset_optimizer = _bool("generation.reset_optimizer", d.get("reset_optimizer", c.reset_optimizer))
    c.objective = _choice("generation.objective", _or(d.get("objective"), engine.default_objective), list(OBJECTIVES))
    compile_ = _or(d.get("compile"), "off")
    if isinstance(compile_, bool):  # YAML 1.1 reads a bare on/off (and true/false) as a boolean
        compile_ = "on" if compile_ else "off"
    c.compile = _choice("generation.compile", compile_, COMPILE_MODES)
    return c


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _build_animation(d: dict, frames_from_scenes: int | None, fps: float, base_dir: Path | None = None) -> AnimationConfig:
    from vqclip.production.schedule import parse_schedule

    d = _mapping("animation", d)
    _check_keys("animation", d, _fields(AnimationConfig))
    c = AnimationConfig()
    frames = d.get("frames")
    if frames is not None:
        frames = _int("animation.frames", frames, 1, 100_000)
        if frames_from_scenes is not None and frames != frames_from_scenes:
            raise ConfigError(f"animation.frames: {frames} is not allowed; the scenes add up to {frames_from_scenes} frames: set it to {frames_from_scenes} or leave it out")
    c.frames = frames if frames is not None else frames_from_scenes or DEFAULT_FRAMES
    for name in ("zoom", "angle", "translation_x", "translation_y"):
        raw = d.get(name, getattr(c, name))
        sched = parse_schedule(raw, f"animation.{name}", base_dir=base_dir)
        sched.values(c.frames, fps=fps)  # every frame's value checked now (finite, in range), before any model loads
        setattr(c, name, sched.to_preset())
    c.border_mode = _choice("animation.border_mode", d.get("border_mode", c.border_mode), BORDER_MODES)
    return c


def _build_output(d: dict) -> OutputConfig:
    from vqclip.video import QUALITY_LEVELS

    d = _mapping("output", d)
    _check_keys("output", d, _fields(OutputConfig))
    c = OutputConfig()
    c.fps = _num("output.fps", d.get("fps", c.fps), 1.0, 240.0)  # below 1 fps a "video" is a slide show ffmpeg players stall on
    c.images_interval = _int("output.images_interval", d.get("images_interval", c.images_interval), 0, MAX_STEPS)
    c.video = _bool("output.video", d.get("video", c.video))
    q = d.get("video_quality", c.video_quality)
    if isinstance(q, str) and q.lower() in QUALITY_LEVELS:
        q = q.lower()
    elif not (isinstance(q, int) and not isinstance(q, bool) and 0 <= q <= 51):
        raise ConfigError(f"output.video_quality: {q!r} is not allowed; use one of {', '.join(QUALITY_LEVELS)} or a CRF number 0..51")
    c.video_quality = q
    c.contact_sheet = _bool("output.contact_sheet", d.get("contact_sheet", c.contact_sheet))
    c.save_every = _int("output.save_every", d.get("save_every", c.save_every), 0, MAX_STEPS)
    return c


def config_from_dict(data: dict, base_dir: str | Path | None = None) -> RenderConfig:
    """Validate a plain dict (a parsed preset) into a :class:`RenderConfig`; relative media paths are relative to ``base_dir``."""
    from vqclip.production.prompts import build_timeline

    data = _mapping("preset", data)
    _check_keys("", data, _fields(RenderConfig))
    _check_moved(data)
    cfg = RenderConfig()
    cfg.description = str(_text("description", data.get("description", ""), allow_list=False))
    cfg.prompts = _build_prompts(data.get("prompts"))
    cfg.size = _build_size(data.get("size"))
    cfg.models = _build_models(data.get("models"))
    cfg.generation = _build_generation(data.get("generation"))
    _check_owned(data, cfg.generation)
    # An engine may set scene lengths from its own options (pixels: frames_per_prompt, the paper's 2F/F spans).
    from vqclip.production.engines import get_engine

    cfg.prompts = get_engine(cfg.generation.engine).configure_prompts(cfg.prompts, cfg.generation.options)
    scene_frames = sum(s.frames for s in cfg.prompts.scenes) if cfg.prompts.scenes else None
    cfg.output = _build_output(data.get("output"))
    cfg.animation = _build_animation(data.get("animation"), scene_frames, cfg.output.fps, base_dir)
    cfg.post = dict(_mapping("post", data.get("post")))
    # Parse every prompt now so a typo fails before any model loads.
    timeline = build_timeline(cfg.prompts, cfg.animation.frames)
    if not timeline.all_prompts():
        raise ConfigError("prompts.texts: '' is not allowed; give at least one prompt (or target_images, or scenes with texts)")
    return cfg


def read_keys(gen: GenerationConfig) -> dict[str, bool]:
    """``{"models.vqgan": True, "generation.cutouts": False, ...}``: whether the selected engine reads each owned key."""
    from vqclip.production.engines import get_engine

    engine = get_engine(gen.engine)
    optimized = engine.family == "optimized"
    out = {f"models.{m}": m in engine.reads_models for m in ("vqgan", "diffusion", "motion_adapter")}
    out["models.clip"] = optimized
    out.update({f"generation.{k}": optimized for k in OPTIMIZED_KEYS})
    out.update({f"generation.{name}": name in (gen.engine, gen.objective) for name in gen.sections})
    return out


def unread_keys(engine: str, objective: str | None = None) -> set[str]:
    """The owned keys (``models.vqgan``, ``generation.cutouts`` ...) that ``engine`` with ``objective`` (null: its own) never reads."""
    from vqclip.production.engines import ENGINES, get_engine

    if not isinstance(engine, str) or engine not in ENGINES:
        return set()
    cls = get_engine(engine)
    gen = GenerationConfig(engine=engine, objective=objective or getattr(cls, "default_objective", None),
                           sections=dict.fromkeys(_sections()))
    return {k for k, read in read_keys(gen).items() if not read}


def _reader(key: str) -> str:
    """Which engine(s) or objective read ``key``, for the error message."""
    from vqclip.production.engines import engine_names, get_engine

    name = key.split(".", 1)[1]
    if key.startswith("generation.") and name in engine_names():
        return f"generation.engine: {name}"
    if key.startswith("generation.") and name not in OPTIMIZED_KEYS:
        return f"the optimized engines with generation.objective: {name}"
    if key == "models.clip" or key.startswith("generation."):
        return "the optimized engines (" + ", ".join(n for n in engine_names() if get_engine(n).family == "optimized") + ")"
    readers = [n for n in engine_names() if name in get_engine(n).reads_models]
    return "generation.engine: " + " | ".join(readers) if readers else "no registered engine"


def _check_owned(data: dict, gen: GenerationConfig) -> None:
    """ConfigError for a key given explicitly (preset or --set) that the selected engine does not read."""
    for key, read in read_keys(gen).items():
        value = _lookup(data, key)
        if read or value is None or value == {} or value == []:
            continue  # read, or absent, null or empty: nothing was asked of a non-reader
        if isinstance(value, dict) and key.startswith("generation."):  # a section: name one of its keys
            sub = next(iter(value))
            key, value = f"{key}.{sub}", value[sub]
        what = f"generation.engine {gen.engine!r}" + (f" with generation.objective {gen.objective!r}" if gen.objective else "")
        raise ConfigError(f"{key}: {value!r} is set, but {what} does not read it; it is read by {_reader(key.rsplit('.', 1)[0] if key.count('.') > 1 else key)}")


def _lookup(data: dict, key: str) -> Any:
    """The value at a dotted ``key`` of a preset dict, or None where any part is missing."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# ----------------------------------------------------------------------------------------------
# Presets, overrides, loading


def _presets_dir():
    import importlib.resources

    return importlib.resources.files("vqclip.presets")


def list_presets() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` of the bundled presets."""
    out = []
    for entry in sorted(_presets_dir().iterdir(), key=lambda p: p.name):
        if entry.name.endswith((".yaml", ".yml")):
            try:
                desc = (yaml.safe_load(entry.read_text(encoding="utf-8")) or {}).get("description", "")
            except yaml.YAMLError:
                desc = "(unreadable YAML)"
            out.append((entry.name.rsplit(".", 1)[0], str(desc or "")))
    return out


def format_preset_table() -> str:
    """The bundled presets as a text table for `vqclip presets`."""
    rows = list_presets()
    if not rows:
        return "no bundled presets"
    width = max(len(n) for n, _ in rows)
    lines = [f"{'name'.ljust(width)}  description", f"{'-' * width}  {'-' * 11}"]
    lines += [f"{n.ljust(width)}  {d}" for n, d in rows]
    lines.append("\nrender one with: vqclip render NAME -o OUT [--set key=value ...]")
    return "\n".join(lines)


def read_preset(preset: str | Path) -> dict:
    """A preset (a YAML path or a bundled name) as a plain dict, parsed but not yet validated."""
    path = Path(str(preset)).expanduser()
    if not path.is_file():
        names = [n for n, _ in list_presets()]
        if str(preset) not in names:
            if path.suffix in (".yaml", ".yml") or "/" in str(preset):
                raise ConfigError(f"preset: file {str(preset)!r} does not exist")
            raise ConfigError(
                f"preset: {str(preset)!r} is neither a file nor a bundled preset; use a YAML path or one of "
                f"{', '.join(names)}{did_you_mean(str(preset), names)}"
            )
        path = Path(str(_presets_dir() / f"{preset}.yaml"))
    return _mapping(f"preset {str(preset)!r}", read_yaml(path, f"preset {str(preset)!r}"))


def apply_override(data: dict, item: str) -> None:
    """Apply one ``key.sub=value`` override in place; the value is read as YAML (``3`` is a number)."""
    _apply(data, item, shorthand={"clip": "spec"})  # `models.clip.0.weight=2` on `clip: [toy]`


def load_config(preset: str | Path | dict, overrides: list[str] | tuple[str, ...] = ()) -> RenderConfig:
    """Read a preset (a path, a bundled name or a dict), apply ``key=value`` overrides, validate."""
    import copy

    data = copy.deepcopy(preset) if isinstance(preset, dict) else read_preset(preset)
    for item in overrides or ():
        apply_override(data, item)
    path = None if isinstance(preset, dict) else Path(str(preset)).expanduser()
    return config_from_dict(data, base_dir=path.parent if path is not None and path.is_file() else None)


# ----------------------------------------------------------------------------------------------
# Writing a config back, and its identity for resume


def config_to_dict(cfg: RenderConfig) -> dict:
    """The config in preset form (loadable again by :func:`load_config`): only the keys its engine reads, resolved."""
    d = _full_dict(cfg)
    for key, read in read_keys(cfg.generation).items():
        if not read:
            section, _, last = key.partition(".")
            d[section].pop(last, None)
    return d


def _full_dict(cfg: RenderConfig) -> dict:
    """Every setting in preset form, every section's options included."""
    d = dataclasses.asdict(cfg)
    gen = d["generation"]
    gen.pop("sections")
    for name, o in cfg.generation.sections.items():
        gen[name] = dataclasses.asdict(o)
    if not d["prompts"]["init_image"]:
        d["prompts"]["init_image"] = None
    return d


def frame_settings(cfg: RenderConfig) -> dict:
    """The settings that change the frames (not output/post/device/max_iterations/compile/where models live)."""
    d = config_to_dict(cfg)
    for k in ("output", "post", "description"):
        d.pop(k, None)
    for k in ("device", "max_iterations", "compile"):  # compile changes the last bits, as a thread count does
        d["generation"].pop(k, None)
    d["generation"].get("vqgan", {}).pop("checkpoint", None)  # memory for time: the same frames, bit for bit
    for k in ("cache_dir", "download"):
        d["models"].pop(k, None)
    return json.loads(json.dumps(d, default=str))


def config_hash(cfg: RenderConfig) -> str:
    """A short hash of :func:`frame_settings`: two renders with the same hash make the same frames."""
    blob = json.dumps(frame_settings(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def settings_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``["generation.lr: 0.1 -> 0.2", ...]`` between two :func:`frame_settings` dicts."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b, key = old.get(k), new.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += settings_diff(a, b, key + ".")
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out
