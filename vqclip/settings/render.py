"""Render settings: dataclasses, YAML presets, ``key.sub=value`` overrides and validation.

A preset is a YAML file with the sections below (all optional; every default is explained beside
it). Bundled presets live in the top-level ``presets/`` folder, shipped as the package
``vqclip.presets``, and are found by name. Every section is built by the one typed loader
(:func:`vqclip.settings.loader.build`: types, and ranges/choices from field metadata); what a type
cannot say (files exist, registry names, schedules, the engine's defaults) is checked and resolved
here. Errors are one :class:`ConfigError` naming the key, the bad value and what is allowed; unknown
keys get a did-you-mean with the full path. The names of the VQGAN-CLIP
notebook (texts, width, height, model, images_interval, init_image, target_images, seed,
max_iterations) are kept so its users find them: ``model`` is ``models.vqgan`` here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
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
SGD_LR_SCALE = 100.0  # generation.lr: null with optimizer sgd -> the engine's (Adam) default times this
MAX_STEPS = 100_000  # steps per frame: 500x the paper's first frame; beyond it a render never ends on any GPU


def _engine_names() -> list[str]:
    from vqclip.production.engines import engine_names

    return engine_names()


def _objective_names() -> list[str]:
    from vqclip.production.objectives import OBJECTIVES

    return list(OBJECTIVES)


# ----------------------------------------------------------------------------------------------
# The schema


@dataclass
class SceneConfig:
    """One scene of a prompt timeline."""

    texts: str | list[str] | None = ""  # this scene's prompts, "text:weight:stop" joined by "|"
    target_images: str | list[str] | None = ""  # this scene's image prompts, "path:weight:stop" joined by "|"
    frames: int = field(default=12, metadata={"range": (1, None)})  # how many frames the scene lasts; its weight fades into the next scene's across them
    blend: int | None = field(default=None, metadata={"range": (0, None)})  # frames at the scene's end that mix with the next scene; null = all but the first, 0 = a cut


@dataclass
class PromptsConfig:
    """What the video shows."""

    texts: str | list[str] | None = ""  # "text:weight:stop" joined by "|"; a negative weight pushes away; with scenes, acts on every frame (a style)
    target_images: str | list[str] | None = ""  # image prompts "path:weight:stop" joined by "|", pulled toward like texts
    init_image: str | None = None  # start the first frame from this picture instead of random codes
    scenes: list[SceneConfig] | None = field(default_factory=list)  # a timeline; neighbouring scenes blend linearly (paper 000 eq. 1)


@dataclass
class SizeConfig:
    """Frame size in pixels; any size works, the output is exactly this."""

    width: int = field(default=640, metadata={"range": (16, 4096)})  # the production paper's notebook setting (640x384 fits a 15 GB T4)
    height: int = field(default=384, metadata={"range": (16, 4096)})


@dataclass
class PerceptorConfig:
    """One CLIP model that judges the frames, and how much its judgement counts."""

    spec: str | dict = "ViT-B-32/openai"  # open_clip "ARCH/PRETRAINED", "toy", or {config|name, weights} local files
    weight: float = field(default=1.0, metadata={"range": (0, None)})  # this perceptor's share of the loss


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

    engine: str = field(default="vqgan", metadata={"choices": _engine_names, "fold": True})  # vqgan (a VQGAN latent) | pixels (RGB pixels, paper 000) | a registered sampled engine
    seed: int = field(default=-1, metadata={"range": (0, 2**32 - 1), "also": (-1,)})  # -1 draws a random seed, recorded in settings.yaml so the render can be repeated
    max_iterations: int = field(default=-1, metadata={"range": (1, None), "also": (-1,)})  # a cap on steps over the whole render; -1 = no cap (until the frames are done or you stop it)
    precision: str = field(default="auto", metadata={"choices": PRECISIONS, "fold": True})  # auto (bf16 or fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16
    device: str = "auto"  # auto (cuda if present) | cpu | cuda | cuda:N
    compile: str | bool | None = None  # optimized engines: off | on (torch.compile the decoder and CLIP's image tower; the first step compiles); null = off
    # Optimized engines only; null = the generator's default, resolved at load (Generator.defaults):
    iterations_first_frame: int | None = field(default=None, metadata={"range": (1, MAX_STEPS)})  # the first frame starts from noise: vqgan 200, pixels 100
    iterations_per_frame: int | None = field(default=None, metadata={"range": (1, MAX_STEPS)})  # later frames start from the previous one: vqgan 30, pixels 25 (10 fast)
    lr: float | None = field(default=None, metadata={"range": (0, 100)})  # step size: vqgan 0.1 (0.15 suits gumbel), pixels 0.1 (0.17 fast)
    optimizer: str = field(default="adam", metadata={"choices": OPTIMIZERS, "fold": True})  # one of OPTIMIZERS: adam, adamw, adamax, nadam, radam, sgd, rmsprop, adagrad
    reset_optimizer: bool = True  # a fresh optimizer each frame: the warped frame is a new problem
    stability_weight: float | None = field(default=None, metadata={"range": (0, None), "open_low": False})  # L1 pull toward the warped previous frame (paper 000 eq. 2): vqgan 0, pixels 4 - 4*tau
    objective: str | None = field(default=None, metadata={"choices": _objective_names, "fold": True})  # cutouts | views; null = the generator's own (vqgan -> cutouts, pixels -> views)
    sections: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})  # generation.<name> -> its Options, for every engine and objective

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

    frames: int | None = field(default=None, metadata={"range": (1, 100_000)})  # None = the scenes' total, or 24 without scenes
    # Schedules: a keyframe string, a number, or a beat mapping; vqclip.production.schedule checks and resolves them.
    zoom: Any = "0:(1.0)"  # scale per frame, >1 zooms in; "0:(1.0), 30:(1.05)" ramps; may use t; or {beats: song.wav, pulse: 1.08}
    angle: Any = "0:(0)"  # rotation per frame in degrees, counter-clockwise
    translation_x: Any = "0:(0)"  # shift per frame in pixels, positive moves the picture right
    translation_y: Any = "0:(0)"  # shift per frame in pixels, positive moves the picture down
    border_mode: str = field(default="reflect", metadata={"choices": BORDER_MODES, "fold": True})  # what fills the edges a warp uncovers: reflect | replicate | zeros


@dataclass
class OutputConfig:
    """What is written besides the frames."""

    fps: float = field(default=12.0, metadata={"range": (1, 240)})  # frames per second of the draft video; below 1 ffmpeg players stall
    images_interval: int = field(default=50, metadata={"range": (0, MAX_STEPS)})  # the paper's display rate: a preview every N steps; 0 = none
    video: bool = True  # write the draft video.mp4 (H.264, yuv420p, +faststart)
    video_quality: str | int = "high"  # lossless | high | medium | low | draft, or an x264 CRF 0..51
    contact_sheet: bool = True  # write contact_sheet.png, a grid of frames to judge a render at a glance
    save_every: int = field(default=25, metadata={"range": (0, MAX_STEPS)})  # also save resume.pt every N optimizer steps inside a frame (0 = at frame boundaries only): a kill costs at most N steps


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
# Loading: the typed loader builds every section; what types and ranges cannot say is checked and resolved here


def _known_paths() -> list[str]:
    """Every dotted key of the schema, for did-you-mean across sections."""
    hints = typing.get_type_hints(RenderConfig)
    out = []
    for f in dataclasses.fields(RenderConfig):
        if dataclasses.is_dataclass(hints[f.name]):
            out += [f"{f.name}.{g.name}" for g in dataclasses.fields(hints[f.name]) if not g.metadata.get("internal")]
    return out + ["description", "post"]


def _elsewhere(key: str) -> str | None:
    """The full path of a setting named ``key`` in another section (``width`` -> ``size.width``), if there is one."""
    return next((p for p in _known_paths() if p.rsplit(".", 1)[-1] == key), None)


def _mapping(key: str, v: Any) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"{key}: {v!r} is not allowed; this section is a mapping of settings (key: value)")
    return v


def _perceptor_items(clip: Any) -> Any:
    """``models.clip`` as a list of ``{spec, weight}``: a bare spec (a name or local files) stands for ``{spec: ...}``."""
    if clip is None:
        return None
    items = [clip] if isinstance(clip, (str, dict)) else clip
    if not isinstance(items, list) or not items:
        raise ConfigError(f"models.clip: {clip!r} is not allowed; use a list of perceptors, e.g. [{{spec: ViT-B-32/openai, weight: 1.0}}]")
    return [item if isinstance(item, dict) and "spec" in item else {"spec": item} for item in items]


def _perceptor_spec(key: str, spec: Any) -> str | dict:
    if isinstance(spec, str) and spec.strip():
        return spec.strip()
    if isinstance(spec, dict):
        allowed = ["config", "name", "weights"]
        for k in spec:
            if k not in allowed:
                raise ConfigError(f"{key}.{k}: unknown setting{did_you_mean(k, allowed)} (allowed here: {', '.join(allowed)})")
        if "weights" not in spec or not ({"config", "name"} & set(spec)):
            raise ConfigError(f"{key}: {spec!r} is not allowed; a local perceptor is {{config: model.json, weights: file}} or {{name: ARCH, weights: file}}")
        for k in ("config", "weights"):
            if k in spec and not Path(str(spec[k])).expanduser().is_file():
                raise ConfigError(f"{key}.{k}: {spec[k]!r} is not a file")
        return dict(spec)
    raise ConfigError(f"{key}: {spec!r} is not allowed; use an open_clip 'ARCH/PRETRAINED' name, 'toy', or {{config|name, weights}}")


def _resolve_prompts(c: PromptsConfig) -> PromptsConfig:
    """Null texts are no texts; an init image must be a file."""
    for part in [c, *(c.scenes or [])]:
        part.texts = "" if part.texts is None else part.texts
        part.target_images = "" if part.target_images is None else part.target_images
    c.scenes = c.scenes or []
    for i, scene in enumerate(c.scenes):
        if scene.blend is not None and scene.blend > scene.frames - 1:
            raise ConfigError(f"prompts.scenes[{i}].blend: {scene.blend!r} is not allowed; use a whole number 0..{scene.frames - 1} (frames - 1), or null")
    c.init_image = c.init_image or None
    if c.init_image and not Path(c.init_image).expanduser().is_file():
        raise ConfigError(f"prompts.init_image: {c.init_image!r} is not a file; give the path of a PNG or JPEG")
    return c


def _resolve_models(c: ModelsConfig) -> ModelsConfig:
    """Registry names exist, local files and folders are there, perceptor specs are complete."""
    v = c.vqgan
    if isinstance(v, dict):
        for k in v:
            if k not in ("config", "checkpoint"):
                raise ConfigError(f"models.vqgan.{k}: unknown setting{did_you_mean(k, ['config', 'checkpoint'])} (allowed here: config, checkpoint)")
        for k in ("config", "checkpoint"):
            if k not in v or not Path(str(v[k])).expanduser().is_file():
                raise ConfigError(f"models.vqgan.{k}: {v.get(k)!r} is not a file; local VQGAN files are {{config: x.yaml, checkpoint: x.ckpt}}")
        c.vqgan = {k: str(v[k]) for k in ("config", "checkpoint")}
    elif isinstance(v, str) and v.strip():
        from vqclip.models.registry import list_models

        c.vqgan, names = v.strip(), list_models("vqgan")
        if c.vqgan not in names:
            raise ConfigError(f"models.vqgan: {c.vqgan!r} is not a known model; use one of {', '.join(names)}{did_you_mean(c.vqgan, names)} or {{config, checkpoint}} files")
    else:
        raise ConfigError(f"models.vqgan: {v!r} is not allowed; use a registry name (see `vqclip models`) or {{config, checkpoint}}")
    for i, p in enumerate(c.clip):
        p.spec = _perceptor_spec(f"models.clip[{i}].spec", p.spec)
    for name in ("diffusion", "motion_adapter"):
        v = getattr(c, name)
        if isinstance(v, dict):
            for k in v:
                if k != "path":
                    raise ConfigError(f"models.{name}.{k}: unknown setting (allowed here: path)")
            if not Path(str(v.get("path"))).expanduser().is_dir():
                raise ConfigError(f"models.{name}.path: {v.get('path')!r} is not a folder; a local model is {{path: a diffusers folder}}")
            setattr(c, name, {"path": str(v["path"])})
        elif isinstance(v, str) and v.strip():
            setattr(c, name, v.strip())
        elif v is not None:
            raise ConfigError(f"models.{name}: {v!r} is not allowed; use a registry name (see `vqclip models`), {{path: folder}} or null")
    return c


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


def _resolve_generation(c: GenerationConfig, raw: dict) -> GenerationConfig:
    """Build every generation.<name> section with its owner's Options; resolve null optimized settings to the generator's defaults."""
    from vqclip.production.engines import get_engine

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", c.device.strip().lower()):
        raise ConfigError(f"generation.device: {c.device!r} is not allowed; use auto, cpu, cuda or cuda:N")
    c.device = c.device.strip().lower()
    for name, part in _sections().items():
        key = f"generation.{name}"
        opts = build(part.Options, _mapping(key, raw.get(name)), key, elsewhere=_elsewhere)
        part.validate_options(opts, key)
        c.sections[name] = opts
    engine = get_engine(c.engine)
    if engine.family != "optimized":
        return c  # the optimized-only keys stay as given (giving one is caught by _check_owned)
    defaults = engine.defaults(c.options)
    c.iterations_first_frame = _or(c.iterations_first_frame, defaults["iterations_first_frame"])
    c.iterations_per_frame = _or(c.iterations_per_frame, defaults["iterations_per_frame"])
    # Plain SGD has no per-parameter scaling: at Adam's step size the gradients of a spherical CLIP loss move
    # a toy VQGAN frame by 0.0 grey levels in 20 steps; 100x (capped at the lr range) moves it as far as Adam.
    default_lr = min(100.0, defaults["lr"] * SGD_LR_SCALE) if c.optimizer == "sgd" else defaults["lr"]
    c.lr = float(_or(c.lr, default_lr))
    c.stability_weight = float(_or(c.stability_weight, defaults["stability_weight"]))
    c.objective = _or(c.objective, engine.default_objective)
    compile_ = _or(c.compile, "off")
    if isinstance(compile_, bool):  # YAML 1.1 reads a bare on/off (and true/false) as a boolean
        compile_ = "on" if compile_ else "off"
    if str(compile_).lower() not in COMPILE_MODES:
        raise ConfigError(f"generation.compile: {c.compile!r} is not allowed; use one of {', '.join(COMPILE_MODES)}{did_you_mean(str(compile_), COMPILE_MODES)}")
    c.compile = str(compile_).lower()
    return c


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _resolve_animation(c: AnimationConfig, frames_from_scenes: int | None, fps: float, base_dir: Path | None = None) -> AnimationConfig:
    """The frame count from the scenes; every schedule parsed and checked at every frame, stored in preset form."""
    from vqclip.production.schedule import parse_schedule

    if c.frames is not None and frames_from_scenes is not None and c.frames != frames_from_scenes:
        raise ConfigError(f"animation.frames: {c.frames} is not allowed; the scenes add up to {frames_from_scenes} frames: set it to {frames_from_scenes} or leave it out")
    c.frames = c.frames if c.frames is not None else frames_from_scenes or DEFAULT_FRAMES
    for name in ("zoom", "angle", "translation_x", "translation_y"):
        sched = parse_schedule(getattr(c, name), f"animation.{name}", base_dir=base_dir)
        sched.values(c.frames, fps=fps)  # every frame's value checked now (finite, in range), before any model loads
        setattr(c, name, sched.to_preset())
    return c


def _resolve_output(c: OutputConfig) -> OutputConfig:
    """The video quality as a level name (lower-case) or a CRF number."""
    from vqclip.video import QUALITY_LEVELS

    q = c.video_quality
    if isinstance(q, str) and q.lower() in QUALITY_LEVELS:
        c.video_quality = q.lower()
    elif not (isinstance(q, int) and not isinstance(q, bool) and 0 <= q <= 51):
        raise ConfigError(f"output.video_quality: {q!r} is not allowed; use one of {', '.join(QUALITY_LEVELS)} or a CRF number 0..51")
    return c


def config_from_dict(data: dict, base_dir: str | Path | None = None) -> RenderConfig:
    """Validate a plain dict (a parsed preset) into a :class:`RenderConfig`; relative media paths are relative to ``base_dir``."""
    from vqclip.production.engines import get_engine
    from vqclip.production.prompts import build_timeline

    data = _mapping("preset", data)
    _check_moved(data)
    # 1. Types, ranges and choices of every section (a null section is an empty one); generation.<name> come in 2.
    raw = {k: ("" if k == "description" else {}) if v is None else v for k, v in data.items()}
    if isinstance(raw.get("models"), dict) and raw["models"].get("clip") is not None:
        raw["models"] = {**raw["models"], "clip": _perceptor_items(raw["models"]["clip"])}
    gen_raw = _mapping("generation", raw.pop("generation", None))
    cfg: RenderConfig = build(RenderConfig, raw, "", elsewhere=_elsewhere)
    cfg.generation = build(GenerationConfig, gen_raw, "generation", skip=list(_sections()), elsewhere=_elsewhere)
    # 2. What types cannot say, in the order a reader fixes a preset: prompts, models, generation, animation.
    cfg.prompts = _resolve_prompts(cfg.prompts)
    cfg.models = _resolve_models(cfg.models)
    cfg.generation = _resolve_generation(cfg.generation, gen_raw)
    _check_owned(data, cfg.generation)
    # An engine may set scene lengths from its own options (pixels: frames_per_prompt, the paper's 2F/F spans).
    cfg.prompts = get_engine(cfg.generation.engine).configure_prompts(cfg.prompts, cfg.generation.options)
    scene_frames = sum(s.frames for s in cfg.prompts.scenes) if cfg.prompts.scenes else None
    cfg.output = _resolve_output(cfg.output)
    cfg.animation = _resolve_animation(cfg.animation, scene_frames, cfg.output.fps, base_dir)
    # 3. Parse every prompt now so a typo fails before any model loads.
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
