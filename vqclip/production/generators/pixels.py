"""The pixel generator: the frame is its own RGB pixels, optimized directly (paper 000, Schaldenbrand et al. 2022).

No decoder: a frame is a full-resolution ``(1,3,H,W)`` tensor, so any size and aspect ratio works and
a frame costs only the CLIP passes. Its default objective is paper 000's ``views``
(:mod:`vqclip.production.objectives.views`); the render loop keeps the frame order, the warp of the
previous frame, resume and export. What this generator adds:

1. the first frame starts from uniform noise; every later frame from the previous one mixed with
   Gaussian noise, by an amount set by the temperature (:func:`temperature_params`);
2. the pixels stay in [0, 1] after each step, and the finished frame may be denoised for export
   (``post_denoise``, :mod:`vqclip.production.denoise`) without touching the frame the next one starts from;
3. the story timeline (paper 000, eq. 1 and its code): with ``F`` frames per prompt, each prompt but
   the last spans ``2F`` frames, the last ``F`` (:func:`story_scene_frames`).

Temperature ``T`` in [0, 100] (paper 000, App. A: low T barely moves, high T changes the scene).
With ``tau = T/100`` (``T/200`` in fast mode, as the authors halve it there because 10 steps recover
less of the noise), the next frame starts from
``start = 0.5 + keep * (prev - 0.5) + sigma * N(0, 1)``, clamped to [0, 1], where
``keep = 2 / (2 + 4 tau)`` (the authors divide the previous frame by ``2 + 4 tau``; here normalised so
T=0 keeps it whole, and taken about mid-grey so the frame does not darken), ``sigma = 0.02 + 0.48 tau``
(a little noise even at T=0 so frames do not get stuck in a local minimum, half the pixel range at
T=100), and the default stability weight is the authors' ``w_c = 4 - 4 tau``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from vqclip.errors import ConfigError
from vqclip.production.engines.base import EngineContext, Generator

__all__ = [
    "PixelOptions", "PixelGenerator", "TemperatureParams", "temperature_params", "story_scene_frames",
    "uniform_start", "next_start",
]


@dataclass
class PixelOptions:
    """Settings of the ``pixels`` generator (``generation.pixels`` in a preset); defaults follow paper 000's code."""

    temperature: float = 30.0  # 0..100: frame-to-frame change; 0 barely moves, 100 changes the scene (App. A)
    fast: bool = False  # the authors' fast mode: lr 0.17, 10 steps per later frame, temperature halved
    frames_per_prompt: Any = None  # F, an int or one per prompt; each prompt but the last spans 2F frames, the last F
    post_denoise: str = "bilateral"  # the exported frame: cyclegan (paper 000) | bilateral | guided | median | none
    denoise_model: str | None = None  # cyclegan generator: a registry name or a .pth path; None: cyclegan_text2video
    denoise_fallback: str = "bilateral"  # used, with a warning, when post_denoise is cyclegan and no generator is available


@dataclass(frozen=True)
class TemperatureParams:
    """What a temperature means for the next frame: its start mix and the stability weight."""

    temperature: float
    keep: float  # share of the previous frame's contrast (about mid-grey) the next frame starts with
    noise_std: float  # std of the Gaussian noise added to that start, in [0, 1] pixel units
    stability_weight: float  # w_c of eq. 2


def temperature_params(temperature: float, fast: bool = False, key: str = "generation.pixels.temperature") -> TemperatureParams:
    """Map T in [0, 100] to (keep, noise std, w_c) as documented in this module (paper 000, App. A)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or not 0 <= temperature <= 100:
        raise ConfigError(f"{key}: {temperature!r} is not allowed; use a number from 0 to 100")
    tau = float(temperature) / 100.0
    if fast:
        tau *= 0.5  # the authors halve the temperature in fast mode: 10 steps recover less of the noise
    return TemperatureParams(
        temperature=float(temperature), keep=2.0 / (2.0 + 4.0 * tau), noise_std=0.02 + 0.48 * tau,
        stability_weight=4.0 - 4.0 * tau,
    )


def story_scene_frames(n_prompts: int, frames_per_prompt: int | Sequence[int], key: str = "generation.pixels.frames_per_prompt") -> list[int]:
    """Frames each prompt spans: 2F for every prompt but the last, F for the last (paper 000's code)."""
    if n_prompts < 1:
        raise ConfigError("prompts: the pixel generator needs at least one prompt")
    fpp = list(frames_per_prompt) if isinstance(frames_per_prompt, (list, tuple)) else [frames_per_prompt] * n_prompts
    if len(fpp) != n_prompts:
        raise ConfigError(f"{key}: {frames_per_prompt!r} gives {len(fpp)} counts for {n_prompts} prompts; give one per prompt or a single number")
    return [2 * f if i < n_prompts - 1 else f for i, f in enumerate(fpp)]


def uniform_start(height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The first frame's start: uniform noise in [0, 1] (paper 000), drawn on the CPU so seeds match across devices."""
    return torch.rand(1, 3, height, width, generator=generator)


def next_start(prev: torch.Tensor, params: TemperatureParams, generator: torch.Generator | None = None) -> torch.Tensor:
    """A later frame's start: ``0.5 + keep*(prev - 0.5) + sigma*N(0,1)``, clamped to [0, 1] (see the module docstring)."""
    noise = torch.randn(prev.shape, generator=generator).to(prev.device, prev.dtype)
    return (0.5 + params.keep * (prev - 0.5) + params.noise_std * noise).clamp(0, 1)


class PixelGenerator(Generator):
    """``generation.engine: pixels``: optimizes the frame's RGB pixels (paper 000); judged by ``views`` by default."""

    name = "pixels"
    Options = PixelOptions
    default_objective = "views"

    @classmethod
    def validate_options(cls, options: PixelOptions, key: str) -> None:
        """Check every option (ConfigError names the key, the value and what is allowed)."""
        from vqclip.production.denoise import DENOISE_MODES, FALLBACK_MODES

        temperature_params(options.temperature, options.fast, key=f"{key}.temperature")
        fpp = options.frames_per_prompt
        items = fpp if isinstance(fpp, (list, tuple)) else [fpp]
        if fpp is not None and not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1 for f in items):
            raise ConfigError(
                f"{key}.frames_per_prompt: {fpp!r} is not allowed; use a whole number >= 1, a list of them "
                "(one per prompt), or null to use the scenes' own frame counts"
            )
        if options.post_denoise not in DENOISE_MODES:
            raise ConfigError(f"{key}.post_denoise: {options.post_denoise!r} is not allowed; use one of {', '.join(DENOISE_MODES)}")
        if options.denoise_model is not None and not (isinstance(options.denoise_model, str) and options.denoise_model.strip()):
            raise ConfigError(f"{key}.denoise_model: {options.denoise_model!r} is not allowed; use a registry name, a .pth path, or null")
        if options.denoise_fallback not in FALLBACK_MODES:
            raise ConfigError(f"{key}.denoise_fallback: {options.denoise_fallback!r} is not allowed; use one of {', '.join(FALLBACK_MODES)}")

    @classmethod
    def defaults(cls, options: PixelOptions) -> dict:
        """Paper 000's code: 100 steps first, 25 after (10 fast), lr 0.1 (0.17 fast), w_c = 4 - 4 tau."""
        return {
            "iterations_first_frame": 100, "iterations_per_frame": 10 if options.fast else 25,
            "lr": 0.17 if options.fast else 0.1,
            "stability_weight": temperature_params(options.temperature, options.fast).stability_weight,
        }

    @classmethod
    def configure_prompts(cls, prompts_cfg, options: PixelOptions):
        """With ``frames_per_prompt`` F set, give each scene 2F frames and the last one F (the authors' story timeline)."""
        if options.frames_per_prompt is None:
            return prompts_cfg
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
    def build(cls, ctx: EngineContext) -> "PixelGenerator":
        """A pixel frame of the output size; the denoiser is made here so a missing generator is known early."""
        from vqclip.production.denoise import make_denoiser

        o: PixelOptions = ctx.options(cls.name)
        m = ctx.config.models
        denoiser = make_denoiser(
            o.post_denoise, o.denoise_model, fallback=o.denoise_fallback, device=ctx.device,
            cache_dir=m.cache_dir, download=m.download, key="generation.pixels.post_denoise",
        )
        return cls(ctx, denoiser)

    def __init__(self, ctx: EngineContext, denoiser=None):
        self.ctx = ctx
        self.options: PixelOptions = ctx.options(self.name)
        self.temp = temperature_params(self.options.temperature, self.options.fast)
        self.denoiser = denoiser
        self.x = torch.zeros(1, 3, ctx.height, ctx.width, device=ctx.device, requires_grad=True)

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
    def export_image(self) -> torch.Tensor:
        """The frame as written to disk: denoised by ``post_denoise``; the next frame still starts from the raw pixels."""
        image = self.image()
        return image if self.denoiser is None else self.denoiser(image).float()

    def describe(self) -> str:
        """For PNG metadata: the generator, its temperature and the denoiser in use."""
        d = self.denoiser.mode if self.denoiser is not None else "none"
        return f"pixels:T{self.options.temperature:g}{'-fast' if self.options.fast else ''}:denoise-{d}"
