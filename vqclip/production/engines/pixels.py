"""The pixel engine: CLIP-guided optimization of the frame's RGB pixels directly (paper 000, Schaldenbrand et al. 2022).

No generator: a frame is a full-resolution ``(1,3,H,W)`` tensor, so any size and aspect ratio works
and a frame costs only the CLIP passes (1-2 frames/s at 720p on a GPU in the paper). What the method
does, read top-down in :meth:`PixelStory.frame`:

1. the first frame starts from uniform noise; every later frame from the previous one mixed with
   Gaussian noise, by an amount set by the temperature (:func:`temperature_params`);
2. each Adam step encodes ``views`` augmented views of the frame — the frame resized so its short
   side is the perceptor's input size, a random perspective (white fill) and a random resized crop
   to a square (no cutout grid) — and minimises (eqs. 1-3)
   ``-sum_n w_n cos(E(view), E(prompt_n)) + sum_neg w_neg cos(E(view), E(neg))``, averaged over views,
   plus the stability term ``w_c * mean|frame_t - frame_{t-1}|`` on every frame after the first;
3. several perceptors (the authors use ViT-B/32 and ViT-B/16) are alternated step by step
   (``perceptor_mode: alternate``, the authors' way) or summed every step (``sum``), each with a weight;
4. the pixels are kept in [0, 1] after each step, and the finished frame may be denoised for export
   (``post_denoise``, :mod:`vqclip.production.denoise`) without touching the frame the next one starts from.

The story timeline (paper 000, eq. 1 and its code): with ``F`` frames per prompt, each prompt but
the last spans ``2F`` frames with ``w_now = 1 - f/(2F)`` and ``w_next = f/(2F)``; the last spans
``F`` frames at weight 1. :func:`story_scene_frames` gives those spans for the shared timeline.

Temperature ``T`` in [0, 100] (paper 000, App. A: low T barely moves, high T changes the scene).
With ``tau = T/100`` (``T/200`` in fast mode, as the authors halve it there because 10 steps recover
less of the noise), the next frame starts from
``start = 0.5 + keep * (prev - 0.5) + sigma * N(0, 1)``, clamped to [0, 1], where
``keep = 2 / (2 + 4 tau)`` (the authors divide the previous frame by ``2 + 4 tau``; here normalised so
T=0 keeps it whole, and taken about mid-grey so the frame does not darken), ``sigma = 0.02 + 0.48 tau``
(a little noise even at T=0 so frames do not get stuck in a local minimum, half the pixel range at
T=100), and the stability weight is the authors' ``w_c = 4 - 4 tau``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from vqclip.errors import ConfigError

__all__ = [
    "PixelOptions",
    "TemperatureParams",
    "temperature_params",
    "validate_pixel_options",
    "story_scene_frames",
    "story_weights",
    "PixelViews",
    "PixelStory",
    "PixelEngine",
    "uniform_start",
    "next_start",
]

PERCEPTOR_MODES = ("alternate", "sum")


@dataclass
class PixelOptions:
    """Settings of the ``pixels`` engine (``generation.pixels`` in a preset); defaults follow paper 000's code."""

    temperature: float = 30.0  # 0..100: frame-to-frame change; 0 barely moves, 100 changes the scene (App. A)
    fast: bool = False  # the authors' fast mode: lr 0.17, 10 steps per later frame, temperature halved
    frames_per_prompt: Any = None  # F, an int or one per prompt; each prompt but the last spans 2F frames, the last F
    views: int = 4  # augmented views per step: random perspective + random resized crop (no cutout grid)
    first_steps: int = 100  # Adam steps on the first frame (the authors use 50-100)
    steps: int | None = None  # Adam steps on each later frame; None: 25, or 10 in fast mode
    lr: float | None = None  # Adam learning rate on the pixels; None: 0.1, or 0.17 in fast mode
    perceptor_mode: str = "alternate"  # alternate: one perceptor per step, in turn (the authors'); sum: all every step
    negative_prompts: list = field(default_factory=lambda: ["Words and text."])  # pushed away from, 'text[:weight]'
    stability_weight: float | None = None  # w_c of eq. 2; None: 4 - 4*tau from the temperature
    crop_scale: list = field(default_factory=lambda: [0.7, 0.999])  # area range of the random resized crop (the authors')
    distortion: float = 0.5  # random perspective distortion scale (the authors')
    post_denoise: str = "bilateral"  # the exported frame: cyclegan (paper 000) | bilateral | guided | median | none
    denoise_model: str | None = None  # cyclegan generator: a registry name or a .pth path; None: cyclegan_text2video
    denoise_fallback: str = "bilateral"  # used, with a warning, when post_denoise is cyclegan and no generator is available

    @property
    def resolved_lr(self) -> float:
        """The learning rate in use."""
        return self.lr if self.lr is not None else (0.17 if self.fast else 0.1)

    @property
    def resolved_steps(self) -> int:
        """Adam steps on each frame after the first."""
        return self.steps if self.steps is not None else (10 if self.fast else 25)


@dataclass(frozen=True)
class TemperatureParams:
    """What a temperature means for the next frame: its start mix and the stability weight."""

    temperature: float
    keep: float  # share of the previous frame's contrast (about mid-grey) the next frame starts with
    noise_std: float  # std of the Gaussian noise added to that start, in [0, 1] pixel units
    stability_weight: float  # w_c of eq. 2


def temperature_params(temperature: float, fast: bool = False, key: str = "generation.pixels.temperature") -> TemperatureParams:
    """Map T in [0, 100] to (keep, noise std, w_c) as documented in this module (paper 000, App. A)."""
    _check_range(key, temperature, 0, 100)
    tau = float(temperature) / 100.0
    if fast:
        tau *= 0.5  # the authors halve the temperature in fast mode: 10 steps recover less of the noise
    return TemperatureParams(
        temperature=float(temperature),
        keep=2.0 / (2.0 + 4.0 * tau),
        noise_std=0.02 + 0.48 * tau,
        stability_weight=4.0 - 4.0 * tau,
    )


def _check_range(key: str, value, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: {value!r} is not a number; allowed: a number from {lo:g} to {hi:g}")
    if not lo <= value <= hi:
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {lo:g} to {hi:g} (inclusive)")


def validate_pixel_options(options: PixelOptions, key: str = "generation.pixels") -> None:
    """Raise ConfigError naming the key, the value and what is allowed for any unusable option."""
    temperature_params(options.temperature, options.fast, key=f"{key}.temperature")
    if options.perceptor_mode not in PERCEPTOR_MODES:
        raise ConfigError(
            f"{key}.perceptor_mode: {options.perceptor_mode!r} is not allowed; use one of {', '.join(PERCEPTOR_MODES)}"
        )
    for name, value, lo in (("views", options.views, 1), ("first_steps", options.first_steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"{key}.{name}: {value!r} is not allowed; use a whole number >= {lo}")
    if options.steps is not None and (isinstance(options.steps, bool) or not isinstance(options.steps, int) or options.steps < 1):
        raise ConfigError(f"{key}.steps: {options.steps!r} is not allowed; use a whole number >= 1, or null for 25 (10 fast)")
    if options.lr is not None:
        _check_range(f"{key}.lr", options.lr, 1e-6, 10)
    if options.stability_weight is not None:
        _check_range(f"{key}.stability_weight", options.stability_weight, 0, 1e6)
    _check_range(f"{key}.distortion", options.distortion, 0, 1)
    scale = tuple(options.crop_scale)
    if len(scale) != 2 or not all(isinstance(s, (int, float)) for s in scale) or not 0 < scale[0] <= scale[1] <= 1:
        raise ConfigError(f"{key}.crop_scale: {options.crop_scale!r} is not allowed; use [min, max] with 0 < min <= max <= 1")
    fpp = options.frames_per_prompt
    items = fpp if isinstance(fpp, (list, tuple)) else [fpp]
    if fpp is not None and not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in items):
        raise ConfigError(
            f"{key}.frames_per_prompt: {fpp!r} is not allowed; use a whole number >= 1, a list of them "
            "(one per prompt), or null to use the scenes' own frame counts"
        )
    if not isinstance(options.negative_prompts, (list, tuple)) or not all(isinstance(p, str) for p in options.negative_prompts):
        raise ConfigError(f"{key}.negative_prompts: {options.negative_prompts!r} is not allowed; use a list of 'text[:weight]' strings")


# ---------------------------------------------------------------- the story timeline (eq. 1)


def story_scene_frames(n_prompts: int, frames_per_prompt: int | Sequence[int], key: str = "generation.pixels.frames_per_prompt") -> list[int]:
    """Frames each prompt spans: 2F for every prompt but the last, F for the last (paper 000's code)."""
    if n_prompts < 1:
        raise ConfigError("prompts: the pixel engine needs at least one prompt")
    fpp = list(frames_per_prompt) if isinstance(frames_per_prompt, (list, tuple)) else [frames_per_prompt] * n_prompts
    if len(fpp) != n_prompts:
        raise ConfigError(f"{key}: {frames_per_prompt!r} gives {len(fpp)} counts for {n_prompts} prompts; give one per prompt or a single number")
    return [2 * f if i < n_prompts - 1 else f for i, f in enumerate(fpp)]


def story_weights(frame: int, scene_frames: Sequence[int]) -> list[tuple[int, float]]:
    """``[(prompt_index, weight)]`` at ``frame``: w_now = 1 - f/S, w_next = f/S inside a span of S frames (eq. 1)."""
    start = 0
    for i, span in enumerate(scene_frames):
        if i == len(scene_frames) - 1:
            return [(i, 1.0)]
        if frame < start + span:
            p = (frame - start) / span
            return [(i, 1.0 - p)] + ([(i + 1, p)] if p > 0 else [])
        start += span
    return [(len(scene_frames) - 1, 1.0)]  # pragma: no cover - the loop always returns


# ---------------------------------------------------------------- frame starts


def uniform_start(height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The first frame's start: uniform noise in [0, 1] (paper 000), drawn on the CPU so seeds match across devices."""
    return torch.rand(1, 3, height, width, generator=generator)


def next_start(prev: torch.Tensor, params: TemperatureParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """A later frame's start: ``0.5 + keep*(prev - 0.5) + sigma*N(0,1)``, clamped to [0, 1] (see the module docstring)."""
    noise = torch.randn(prev.shape, generator=generator).to(prev.device, prev.dtype)
    return (0.5 + params.keep * (prev - 0.5) + params.noise_std * noise).clamp(0, 1)


# ---------------------------------------------------------------- augmented views


class PixelViews(torch.nn.Module):
    """k augmented views of a frame for a perceptor of input size S: short side to S, random perspective, random resized crop."""

    def __init__(self, size: int, views: int = 4, crop_scale=(0.7, 0.999), distortion: float = 0.5):
        super().__init__()
        import kornia.augmentation as K

        self.size, self.views = int(size), int(views)
        self.perspective = K.RandomPerspective(distortion_scale=distortion, p=1.0)
        self.crop = K.RandomResizedCrop((self.size, self.size), scale=tuple(crop_scale))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(1,3,H,W)`` -> ``(views,3,S,S)``, differentiable with respect to the image."""
        h, w = image.shape[-2:]
        s = self.size / min(h, w)
        # 1. Resize once so the short side is S: CLIP looks at the whole frame, and at 720p the
        #    augmentations then run on ~400x224 instead of the full frame.
        size = (max(self.size, round(h * s)), max(self.size, round(w * s)))
        if size != (h, w):
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
        batch = image.expand(self.views, -1, -1, -1)
        # 2. Perspective with a white border, as the authors' fill=1: warp (x - 1) with zero fill, add 1 back.
        batch = self.perspective(batch - 1.0) + 1.0
        # 3. A random square crop of 70-99.9% of the area, resized to S.
        return self.crop(batch)


# ---------------------------------------------------------------- the per-frame optimization


@dataclass
class PerceptorTargets:
    """One perceptor with its weight, its views module and the embeddings of every prompt and negative prompt."""

    perceptor: Any
    weight: float
    views: PixelViews
    prompts: torch.Tensor  # (n_prompts, D), L2-normalised
    negatives: torch.Tensor  # (n_neg, D)
    negative_weights: torch.Tensor  # (n_neg,)


def parse_negative(text: str, key: str) -> tuple[str, float]:
    """``'text[:weight]'`` -> (text, weight); the weight defaults to 1."""
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            return head.strip(), float(tail)
        except ValueError:
            pass
    if not text.strip():
        raise ConfigError(f"{key}: an empty negative prompt; write 'text[:weight]'")
    return text.strip(), 1.0


class PixelStory:
    """The pixel engine's loop for one story: prompts, perceptors and options in, frames out (paper 000)."""

    def __init__(
        self,
        prompts: Sequence[str],
        perceptors: Sequence[Any],
        options: PixelOptions,
        height: int,
        width: int,
        perceptor_weights: Sequence[float] | None = None,
        scene_frames: Sequence[int] | None = None,
        weights_at: Callable[[int], list[tuple[int, float]]] | None = None,
        device: str | torch.device = "cpu",
        key: str = "generation.pixels",
    ):
        validate_pixel_options(options, key)
        if not perceptors:
            raise ConfigError("models.clip: the pixel engine needs at least one CLIP perceptor")
        self.options, self.height, self.width = options, int(height), int(width)
        self.device = torch.device(device)
        self.temp = temperature_params(options.temperature, options.fast, key=f"{key}.temperature")
        pw = list(perceptor_weights) if perceptor_weights is not None else [1.0] * len(perceptors)
        if len(pw) != len(perceptors):
            raise ConfigError(f"models.clip_weights: {pw!r} has {len(pw)} weights for {len(perceptors)} perceptors; give one per perceptor")
        if weights_at is None:
            if scene_frames is None:
                fpp = options.frames_per_prompt if options.frames_per_prompt is not None else 10
                scene_frames = story_scene_frames(len(prompts), fpp, key=f"{key}.frames_per_prompt")
            self.scene_frames = list(scene_frames)
            weights_at = lambda f: story_weights(f, self.scene_frames)  # noqa: E731
        else:
            self.scene_frames = list(scene_frames) if scene_frames is not None else []
        self.weights_at = weights_at
        negatives = [parse_negative(t, f"{key}.negative_prompts") for t in options.negative_prompts]
        self.targets: list[PerceptorTargets] = []
        with torch.no_grad():
            for perceptor, weight in zip(perceptors, pw):
                emb = perceptor.encode_text(list(prompts))
                neg = perceptor.encode_text([t for t, _ in negatives]) if negatives else emb[:0]
                views = PixelViews(perceptor.input_size, options.views, options.crop_scale, options.distortion)
                self.targets.append(
                    PerceptorTargets(
                        perceptor,
                        float(weight),
                        views,
                        F.normalize(emb.float(), dim=-1).to(self.device),
                        F.normalize(neg.float(), dim=-1).to(self.device),
                        torch.tensor([w for _, w in negatives], dtype=torch.float32, device=self.device),
                    )
                )

    @property
    def total_frames(self) -> int:
        """How many frames the story has."""
        return sum(self.scene_frames)

    def steps_for(self, frame: int) -> int:
        """Adam steps for ``frame``: ``first_steps`` on the first, ``steps`` (25, or 10 fast) after."""
        return self.options.first_steps if frame == 0 else self.options.resolved_steps

    def start(self, frame: int, prev: torch.Tensor | None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Where ``frame`` starts: uniform noise for the first, the temperature mix of ``prev`` after."""
        if prev is None:
            return uniform_start(self.height, self.width, generator).to(self.device)
        return next_start(prev.to(self.device), self.temp, generator)

    def stability_weight(self) -> float:
        """w_c in use: the option when set, else from the temperature."""
        w = self.options.stability_weight
        return self.temp.stability_weight if w is None else float(w)

    def active(self, step: int) -> list[PerceptorTargets]:
        """The perceptors this step uses: one in turn (alternate) or all (sum)."""
        if self.options.perceptor_mode == "sum" or len(self.targets) == 1:
            return self.targets
        return [self.targets[step % len(self.targets)]]

    def loss(self, x: torch.Tensor, frame: int, step: int, prev: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 3 at one step: the weighted CLIP cosine loss over augmented views, plus eq. 2's stability term."""
        weights = self.weights_at(frame)
        total = x.new_zeros(())
        parts: dict[str, float] = {}
        for t in self.active(step):
            emb = F.normalize(t.perceptor.encode_image(t.views(x)).float(), dim=-1)  # (views, D)
            text = x.new_zeros(())
            for i, w in weights:
                text = text - w * (emb @ t.prompts[i]).mean()
            if len(t.negatives):
                text = text + ((emb @ t.negatives.T).mean(0) * t.negative_weights).sum()
            total = total + t.weight * text
            parts["clip"] = parts.get("clip", 0.0) + float(text.detach())
        if prev is not None:
            stable = (x - prev).abs().mean()
            total = total + self.stability_weight() * stable
            parts["stability"] = float(stable.detach())
        return total, parts

    def frame(
        self,
        index: int,
        prev: torch.Tensor | None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
    ) -> torch.Tensor:
        """Optimize frame ``index`` from ``prev`` (None for the first) and return it, ``(1,3,H,W)`` in [0, 1]."""
        # 1. Start: noise for the first frame, the temperature mix of the previous one after.
        x = self.start(index, prev, generator).requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=self.options.resolved_lr)
        # 2. Optimize the pixels against eq. 3, keeping them a valid image.
        for step in range(self.steps_for(index)):
            optimizer.zero_grad(set_to_none=True)
            loss, parts = self.loss(x, index, step, prev)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            if callback is not None:
                callback({"event": "iteration", "frame": index, "iteration": step, "losses": parts})
        return x.detach()

    def run(
        self, frames: int | None = None, seed: int = 0, callback: Callable[[dict], None] | None = None
    ) -> list[torch.Tensor]:
        """Render the whole story (or its first ``frames`` frames) and return the raw frames."""
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # the kornia augmentations draw from the global generator
        out: list[torch.Tensor] = []
        prev = None
        for index in range(self.total_frames if frames is None else frames):
            prev = self.frame(index, prev, generator, callback)
            out.append(prev.cpu())
            if callback is not None:
                callback({"event": "frame", "frame": index, "image": prev})
        return out


# ---------------------------------------------------------------- the engine seam (generation.engine: pixels)

from vqclip.production.engines.base import Engine, EngineContext  # noqa: E402  (the seam; kept below the method)


class PixelEngine(Engine):
    """``generation.engine: pixels``: the frame is its own RGB pixels, optimized as :class:`PixelStory` does (paper 000).

    The render loop keeps the frame order, the warp of the previous frame (``animation.*``; identity by
    default), resume, export and callbacks; this engine supplies the start mix, the steps and learning
    rate, the views-and-cosine loss with the stability term, and the denoised export image.
    ``generation.iterations_*``, ``lr``, ``cutn``, ``cut_pow``, ``augmentations``, ``stability_weight``,
    ``generation.vqgan`` and ``models.vqgan`` belong to the vqgan engine (``ignored_settings``: giving one
    is a ConfigError); the pixel engine's are under ``generation.pixels``.
    """

    name = "pixels"
    Options = PixelOptions
    ignored_settings = {
        "models.vqgan": "remove it: the pixel engine optimizes the pixels themselves and loads no VQGAN",
        "generation.iterations_first_frame": "set generation.pixels.first_steps instead",
        "generation.iterations_per_frame": "set generation.pixels.steps instead",
        "generation.lr": "set generation.pixels.lr instead",
        "generation.cutn": "set generation.pixels.views instead",
        "generation.cut_pow": "set generation.pixels.crop_scale instead",
        "generation.augmentations": "set generation.pixels.distortion or generation.pixels.crop_scale instead",
        "generation.stability_weight": "set generation.pixels.stability_weight (or generation.pixels.temperature) instead",
        "generation.vqgan": "remove it (it applies with generation.engine: vqgan; this engine's options are generation.pixels)",
    }

    @classmethod
    def validate_options(cls, options: PixelOptions, key: str) -> None:
        """Check every option (ConfigError names the key, the value and what is allowed)."""
        validate_pixel_options(options, key)
        from vqclip.production.denoise import DENOISE_MODES, FALLBACK_MODES

        if options.post_denoise not in DENOISE_MODES:
            raise ConfigError(f"{key}.post_denoise: {options.post_denoise!r} is not allowed; use one of {', '.join(DENOISE_MODES)}")
        if options.denoise_model is not None and not (isinstance(options.denoise_model, str) and options.denoise_model.strip()):
            raise ConfigError(f"{key}.denoise_model: {options.denoise_model!r} is not allowed; use a registry name, a .pth path, or null")
        if options.denoise_fallback not in FALLBACK_MODES:
            raise ConfigError(f"{key}.denoise_fallback: {options.denoise_fallback!r} is not allowed; use one of {', '.join(FALLBACK_MODES)}")

    @classmethod
    def configure_prompts(cls, prompts_cfg, options: PixelOptions):
        """With ``frames_per_prompt`` F set, give each scene 2F frames and the last one F (the authors' story timeline)."""
        if options.frames_per_prompt is None:
            return prompts_cfg
        import dataclasses

        scenes = list(prompts_cfg.scenes)
        if not scenes:
            raise ConfigError(
                f"generation.pixels.frames_per_prompt: {options.frames_per_prompt!r} needs a story; "
                "give prompts.scenes (one scene per prompt), or leave frames_per_prompt null"
            )
        spans = story_scene_frames(len(scenes), options.frames_per_prompt)
        scenes = [dataclasses.replace(s, frames=n) for s, n in zip(scenes, spans)]
        return dataclasses.replace(prompts_cfg, scenes=scenes)

    @classmethod
    def frame_iterations(cls, cfg, frame: int) -> int:
        """Adam steps for ``frame``: ``first_steps`` for the first, ``steps`` (25, or 10 fast) after."""
        o: PixelOptions = cfg.generation.engine_options[cls.name]
        return o.first_steps if frame == 0 else o.resolved_steps

    @classmethod
    def learning_rate(cls, cfg) -> float:
        """0.1, or 0.17 in fast mode, unless ``generation.pixels.lr`` is set."""
        return cfg.generation.engine_options[cls.name].resolved_lr

    @classmethod
    def build(cls, ctx: EngineContext) -> "PixelEngine":
        """A pixel frame of the output size; the denoiser is made here so a missing generator is known early."""
        from vqclip.production.denoise import make_denoiser

        o: PixelOptions = ctx.config.generation.engine_options[cls.name]
        m = ctx.config.models
        denoiser = make_denoiser(
            o.post_denoise, o.denoise_model, fallback=o.denoise_fallback, device=ctx.device,
            cache_dir=m.cache_dir, download=m.download, key="generation.pixels.post_denoise",
        )
        return cls(ctx, denoiser)

    def __init__(self, ctx: EngineContext, denoiser=None):
        self.ctx = ctx
        self.options: PixelOptions = ctx.config.generation.engine_options[self.name]
        self.temp = temperature_params(self.options.temperature, self.options.fast)
        self.denoiser = denoiser
        self.x = torch.zeros(1, 3, ctx.height, ctx.width, device=ctx.device, requires_grad=True)
        self.targets: list[PerceptorTargets] = []
        self.bank = None

    @torch.no_grad()
    def start(self, image01: torch.Tensor | None) -> None:
        """Uniform noise for a first frame; otherwise the temperature mix of the (warped) previous frame or init image."""
        # Noise comes from torch's global CPU generator: seeded by the renderer and saved with resume.
        x = uniform_start(self.ctx.height, self.ctx.width) if image01 is None else next_start(image01.float().cpu(), self.temp)
        self.x.copy_(x.to(self.x.device))

    def parameters(self) -> list[torch.Tensor]:
        """The pixels."""
        return [self.x]

    def synth(self) -> torch.Tensor:
        """The pixels are the frame."""
        return self.x

    @torch.no_grad()
    def after_step(self) -> None:
        """Keep the pixels a valid image."""
        self.x.clamp_(0, 1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The pixels, on the CPU."""
        return {"x": self.x.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the pixels."""
        with torch.no_grad():
            self.x.copy_(state["x"].to(self.x.device, self.x.dtype))

    @torch.no_grad()
    def prepare(self, perceptors: Sequence[Any], bank) -> None:
        """Views per perceptor and the negative prompts' embeddings; the prompt embeddings come from the shared bank."""
        o = self.options
        negatives = [parse_negative(t, "generation.pixels.negative_prompts") for t in o.negative_prompts]
        self.bank, self.targets = bank, []
        for i, perceptor in enumerate(perceptors):
            neg = perceptor.encode_text([t for t, _ in negatives]).float() if negatives else torch.zeros(0, 1)
            self.targets.append(PerceptorTargets(
                perceptor, float(bank.perceptor_weights[i]),
                PixelViews(perceptor.input_size, o.views, o.crop_scale, o.distortion).to(self.ctx.device),
                torch.zeros(0),  # prompts live in bank.embeds[i]
                F.normalize(neg, dim=-1).to(self.ctx.device),
                torch.tensor([w for _, w in negatives], dtype=torch.float32, device=self.ctx.device),
            ))
        self._embeds = list(bank.embeds)

    def loss(self, frame: int, step: int, image: torch.Tensor, reference: torch.Tensor | None):
        """Eq. 3: ``-sum w cos(E(view), E(prompt))`` (+ negatives) over the step's perceptors, plus ``w_c * L1`` to the previous frame."""
        total = image.new_zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        active = self.bank.timeline.prompts_at(frame)
        n = len(self.targets)
        chosen = range(n) if self.options.perceptor_mode == "sum" or n == 1 else [step % n]
        for i in chosen:
            t = self.targets[i]
            emb = F.normalize(t.perceptor.encode_image(t.views(image)).float(), dim=-1)
            text = total.new_zeros(())
            for prompt, scene_w in active:
                sim = (emb @ F.normalize(self._embeds[i][prompt].float(), dim=-1)).mean()
                text = text - prompt.weight * scene_w * sim
                name = ("image:" if prompt.is_image else "") + prompt.text
                parts[name] = parts.get(name, 0.0) + float(sim.detach())
            if len(t.negatives):
                text = text + ((emb @ t.negatives.T).mean(0) * t.negative_weights).sum()
            total = total + t.weight * text
        if reference is not None:
            stable = (image.float() - reference.float()).abs().mean()  # paper 000 eq. 2
            w_c = self.temp.stability_weight if self.options.stability_weight is None else self.options.stability_weight
            total = total + w_c * stable
            parts["stability"] = float(stable.detach())
        return total, parts

    @torch.no_grad()
    def export_image(self) -> torch.Tensor:
        """The frame as written to disk: denoised by ``post_denoise``; the next frame still starts from the raw pixels."""
        image = self.image()
        return image if self.denoiser is None else self.denoiser(image).float()

    def describe(self) -> str:
        """For PNG metadata: the engine, its temperature and the denoiser in use."""
        d = self.denoiser.mode if self.denoiser is not None else "none"
        return f"pixels:T{self.options.temperature:g}{'-fast' if self.options.fast else ''}:denoise-{d}"
