"""AnimateDiff: a Stable Diffusion 1.5 UNet with temporal motion modules, the maintained form of paper 002.

Paper 002 runs text-to-video as latent diffusion: a perceptual autoencoder, and a denoising UNet with
cross-attention on the text, working on a stack of frame latents. Today's maintained, openly licensed
version of that system for SD 1.5 is AnimateDiff: diffusers' ``MotionAdapter`` adds temporal attention
blocks to an ordinary SD UNet (``UNetMotionModel.from_unet2d``), so any SD 1.5 checkpoint becomes a
video model. It fits vqclip better than the UNet3D text-to-video models (ModelScope/zeroscope): those
need their own 1.7 GB UNet and ship under a non-commercial licence, while AnimateDiff reuses the SD
components the t2v_zero engine already loads and adds one adapter file.

The denoising loop is written here on ``UNetMotionModel`` rather than by calling
``AnimateDiffPipeline``, because vqclip needs three things the pipeline cannot take together: one text
embedding per frame (the prompt timeline, blended as in paper 000 eq. 1 — the same idea as FreeNoise's
prompt interpolation, but following the timeline's own weights), sliding context windows, and the
render loop's events and Stop. Context windows: the motion modules were trained on 16-frame clips, so
a longer video is denoised as overlapping windows of ``context_frames`` whose noise predictions are
averaged with pyramid weights (highest in a window's middle), which hides the window seams.

All frames are denoised together, so the whole video is one chunk: a Stop discards the sampling in
progress and a resumed render samples it again from the same seed, giving the same frames.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from vqclip.errors import ConfigError
from vqclip.production.engines.base import SampledEngine
from vqclip.production.engines.diffusion_common import (
    SCHEDULERS,
    Placement,
    TextConditioner,
    check_fields,
    check_finite,
    decode_latents,
    frame_noise,
    guided_noise,
    iteration_event,
    load_for_engine,
    make_scheduler,
    quiet_diffusers,
    to_pil,
)

__all__ = ["AnimateDiffOptions", "AnimateDiffEngine", "context_windows", "window_weights", "validate_options"]

# AnimateDiff's motion modules were trained with a linear beta schedule (not SD 1.5's scaled_linear) and are
# sampled with "linspace" spacing; its authors' configs and diffusers' docs use these settings.
SCHEDULER_OVERRIDES = {"timestep_spacing": "linspace", "clip_sample": False, "steps_offset": 1}
BETA_SCHEDULES = ("linear", "scaled_linear")


@dataclass
class AnimateDiffOptions:
    """``generation.animatediff``: AnimateDiff's usual settings for SD 1.5."""

    steps: int = field(default=25, metadata={"range": (1, 1000)})  # denoising steps (20-30 is usual)
    guidance_scale: float = field(default=7.5, metadata={"range": (0, 50)})  # classifier-free guidance; 1 = off (half the UNet work)
    negative_prompt: str = ""  # what to steer away from (e.g. "blurry, low quality, watermark")
    scheduler: str = field(default="ddim", metadata={"choices": tuple(SCHEDULERS)})  # ddim | euler | euler_a | dpm++ | unipc
    context_frames: int = field(default=16, metadata={"range": (2, None)})  # frames the motion modules see at once (trained on 16)
    context_overlap: int = field(default=4, metadata={"range": (0, None)})  # frames shared by neighbouring windows
    beta_schedule: str = field(default="linear", metadata={"choices": BETA_SCHEDULES})  # the adapter's training schedule (AnimateDiff: linear)
    offload: bool = False  # models wait on the CPU and visit the GPU per phase: ~2.5 GB less VRAM, slower
    vae_tiling: bool = False  # decode large frames tile by tile
    decode_batch: int = field(default=1, metadata={"range": (1, None)})  # frames decoded at once (1 = VAE slicing, least VRAM)


def validate_options(o: AnimateDiffOptions, key: str = "generation.animatediff") -> None:
    """One ConfigError naming the first option outside what the engine can use."""
    check_fields(o, key)
    if o.context_overlap >= o.context_frames:
        raise ConfigError(
            f"{key}.context_overlap: {o.context_overlap!r} is not allowed; use a whole number from 0 to "
            f"context_frames - 1 ({o.context_frames - 1})"
        )


def context_windows(frames: int, size: int, overlap: int) -> list[range]:
    """Overlapping windows of ``size`` frames covering ``0..frames-1``; the last one ends on the last frame."""
    if frames <= size:
        return [range(frames)]
    stride = size - overlap
    starts = list(range(0, frames - size, stride)) + [frames - size]
    return [range(s, s + size) for s in dict.fromkeys(starts)]


def window_weights(size: int) -> torch.Tensor:
    """Pyramid weights of a window's frames (1 at the ends, highest in the middle)."""
    i = torch.arange(size, dtype=torch.float32)
    return torch.minimum(i + 1, size - i)


class AnimateDiffEngine(SampledEngine):
    """AnimateDiff as a sampled engine: the whole video in one chunk, sliding windows beyond ``context_frames``."""

    name: ClassVar[str] = "animatediff"
    Options: ClassVar[type] = AnimateDiffOptions
    reads_models: ClassVar[tuple[str, ...]] = ("diffusion", "motion_adapter")

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values the engine cannot use."""
        validate_options(options, key)

    @classmethod
    def chunks(cls, cfg: Any) -> list[range]:
        """One chunk: every frame is denoised together (the motion modules attend across all of them)."""
        return [range(cfg.animation.frames)]

    @classmethod
    def chunk_iterations(cls, cfg: Any, frames: range) -> int:
        """Denoising steps :meth:`sample` reports (every scheduler offered makes one call per step)."""
        return cfg.generation.sections[cls.name].steps

    @classmethod
    def build(cls, ctx: Any) -> "AnimateDiffEngine":
        """Load ``models.diffusion`` and ``models.motion_adapter``; refuse camera schedules it would ignore."""
        from vqclip.models.diffusion import DEFAULT_MOTION_ADAPTER, load_motion_adapter, resolve_diffusion_folder

        moving = [k for k in ("zoom", "angle", "translation_x", "translation_y") if any(getattr(m, k) != (1.0 if k == "zoom" else 0.0) for m in ctx.motions[1:])]
        if moving:
            raise ConfigError(
                f"animation.{moving[0]}: not read by generation.engine: animatediff (its motion is learned, not a camera "
                "move); remove the camera schedules or use generation.engine: t2v_zero"
            )
        o = ctx.options(cls.name)
        components, placement = load_for_engine(ctx, cls.name, o.offload)
        models = ctx.config.models
        folder = resolve_diffusion_folder(models.motion_adapter or DEFAULT_MOTION_ADAPTER, "motion_adapter", models.cache_dir, models.download)
        adapter = load_motion_adapter(folder, dtype=placement.dtype)
        return cls(
            components, adapter, o, timeline=ctx.timeline, frames=ctx.config.animation.frames, height=ctx.height,
            width=ctx.width, seed=ctx.seed, placement=placement, preview_every=ctx.config.output.images_interval,
        )

    def __init__(
        self,
        components: Any,  # vqclip.models.diffusion.SDComponents
        motion_adapter: Any,  # diffusers.MotionAdapter
        options: AnimateDiffOptions,
        *,
        timeline: Any,
        frames: int,
        height: int,
        width: int,
        seed: int,
        placement: Placement | None = None,
        preview_every: int = 0,
    ) -> None:
        from diffusers import UNetMotionModel

        from vqclip.models.diffusion import vae_scale_factor

        validate_options(options)
        max_len = int(motion_adapter.config.motion_max_seq_length)
        if options.context_frames > max_len:
            raise ConfigError(
                f"generation.animatediff.context_frames: {options.context_frames} is more than this motion adapter "
                f"handles ({max_len}); use at most {max_len} (usual: 16)"
            )
        self.o = options
        self.c = components
        self.timeline = timeline
        self.frames = int(frames)
        self.seed = int(seed)
        self.placement = placement or Placement(torch.device("cpu"))
        self.preview_every = int(preview_every or 0)
        cells = vae_scale_factor(components.vae)
        if height % cells or width % cells:
            raise ConfigError(f"size: {width}x{height} is not allowed for animatediff; width and height must be multiples of {cells}")
        self.latent_shape = (components.unet.config.in_channels, height // cells, width // cells)
        p = self.placement
        with quiet_diffusers():
            motion_unet = UNetMotionModel.from_unet2d(components.unet, motion_adapter).eval()
        self.unet = p.place(motion_unet, p.dtype)
        self.vae = p.place(components.vae, p.vae_dtype)
        if options.vae_tiling:
            self.vae.enable_tiling()
        self.text = TextConditioner(components.tokenizer, p.place(components.text_encoder, p.dtype), p, options.negative_prompt, "animatediff")
        self.scheduler_config = {**components.scheduler_config, **SCHEDULER_OVERRIDES, "beta_schedule": options.beta_schedule}
        self.windows = context_windows(self.frames, options.context_frames, options.context_overlap)
        self.frame_chunks = [range(self.frames)] if self.frames else []

    def state_dict(self) -> dict:
        """Nothing: the one chunk is sampled from the seed alone."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore (see :meth:`state_dict`)."""

    def describe(self) -> str:
        """Model text for PNG metadata."""
        return f"animatediff ({self.c.source}, {self.o.scheduler} {self.o.steps})"

    def _predict(self, latents: torch.Tensor, t: Any, cond: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
        """Guided noise for ``(1,C,F,h,w)`` latents, window by window, blended with pyramid weights."""
        dtype = self.placement.dtype
        dev = next(self.unet.parameters()).device

        def call(x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return self.unet(x.to(dev, dtype), t, encoder_hidden_states=emb.to(dev, dtype)).sample.float()

        if len(self.windows) == 1:
            return guided_noise(call, latents, cond, uncond, self.o.guidance_scale)
        total = torch.zeros_like(latents)
        weight = torch.zeros(self.frames, device=latents.device)
        for w in self.windows:
            idx = list(w)
            ww = window_weights(len(idx)).to(latents.device)
            eps = guided_noise(call, latents[:, :, idx], cond[idx], uncond[idx], self.o.guidance_scale)
            total[:, :, idx] += eps * ww[None, None, :, None, None]
            weight[idx] += ww
        return total / weight[None, None, :, None, None]

    @torch.no_grad()
    def sample(self, frames: range, emit: Callable[[dict], Any] | None = None) -> list[torch.Tensor] | None:
        """All frames as ``(1,3,H,W)`` float32 in [0,1]; None when ``emit`` answered "stop"."""
        emit = emit or (lambda event: None)
        if frames not in self.frame_chunks:
            raise ValueError(f"animatediff: {frames} is not one of the chunks {self.frame_chunks}")
        dev = self.placement.device
        scheduler = make_scheduler(self.o.scheduler, self.scheduler_config, "generation.animatediff.scheduler")
        scheduler.set_timesteps(self.o.steps, device=dev)
        noise = torch.stack([frame_noise(self.seed, f, self.latent_shape) for f in frames], dim=1)[None]
        x = noise.to(dev) * scheduler.init_noise_sigma
        cond, uncond = (e.to(dev) for e in self.text.frames(self.timeline, list(frames)))
        gen = torch.Generator().manual_seed(self.seed)  # only ancestral schedulers draw from it
        accepts_gen = "generator" in inspect.signature(scheduler.step).parameters
        total = len(scheduler.timesteps)
        with self.placement.active(self.unet):
            for i, t in enumerate(scheduler.timesteps):
                eps = self._predict(scheduler.scale_model_input(x, t), t, cond, uncond)
                out = scheduler.step(eps, t, x, **({"generator": gen} if accepts_gen else {}))
                x = out.prev_sample
                reply = emit(iteration_event(frames.start, self.frames, i + 1, total, i + 1, total))
                if self.preview_every and (i + 1) % self.preview_every == 0:
                    x0 = getattr(out, "pred_original_sample", None)
                    x0 = x if x0 is None else x0
                    image = decode_latents(self.vae, x0[:, :, 0], self.placement)[0]
                    reply = emit({"event": "preview", "frame": frames.start, "iteration": i + 1, "image": to_pil(image)}) or reply
                if reply == "stop":
                    return None
        check_finite(x, self.placement, "animatediff")
        return decode_latents(self.vae, x[0].permute(1, 0, 2, 3), self.placement, self.o.decode_batch)
