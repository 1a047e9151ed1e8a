"""Text2Video-Zero (Khachatryan et al., paper 001) on diffusers' Stable Diffusion components.

A text-to-image model makes a video without training, by two changes to plain sampling:

1. Motion in the latents (§3.1, Algorithm 1): frame 1's noise is DDIM-denoised from T=1000 to T
   (941) and on to T′ (881); frame k's start is frame 1's T′ latent warped by the camera motion up to
   frame k, pushed back to T with the DDPM forward process; then every frame is denoised from T. The
   paper's single translation δ_k = λ(k−1)δ becomes vqclip's camera schedules: the warp for frame k is
   the composition of ``animation.zoom/angle/translation_x/translation_y`` of frames 1..k, in latent
   cells (pixels / 8). The paper's λ=12 along x is ``animation.translation_x: 12``.
2. Cross-frame attention (§3.2, eq. 8): every self-attention layer of the UNet attends with frame 1's
   keys and values (:class:`CrossFrameAttnProcessor`), so frame 1 fixes identity and appearance.

Long videos run in chunks of ``chunk_size`` frames; each later chunk is denoised together with frame 1
(the anchor, the same latents and the same per-frame noise), so identity holds across chunks and a
resumed render gives the same frames. Background smoothing (§3.3) is not offered: it blends latents
outside a salient-object mask that the paper takes from an in-house detector; vqclip has no such
model and a mask from a generic detector would be a new dependency for an optional refinement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch

from vqclip.errors import ConfigError
from vqclip.production.animate import Motion, affine_matrix
from vqclip.production.engines.base import SampledEngine
from vqclip.production.engines.diffusion_common import (
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
    to_pil,
)

__all__ = [
    "T2VZeroOptions",
    "T2VZeroEngine",
    "CrossFrameAttnProcessor",
    "install_cross_frame_attention",
    "latent_motion_matrices",
    "warp_latents",
    "chunk_ranges",
    "chunk_batch_frames",
    "step_plan",
    "chunk_steps",
]

_PADDING = {"reflect": "reflection", "replicate": "border", "zeros": "zeros"}


@dataclass
class T2VZeroOptions:
    """``generation.t2v_zero``: the paper's defaults unless noted."""

    steps: int = field(default=50, metadata={"range": (1, 1000)})  # DDIM steps from noise to image (paper: 50)
    guidance_scale: float = field(default=7.5, metadata={"range": (0, 50)})  # classifier-free guidance; 1 = off (half the UNet work)
    negative_prompt: str = ""  # what to steer away from (e.g. "blurry, low quality")
    noise_timestep: int = field(default=941, metadata={"range": (1, 999)})  # T: every frame is denoised from here (paper: 941)
    motion_timestep: int = field(default=881, metadata={"range": (0, 999)})  # T′ <= T: where frame 1's latent is warped (paper: 881)
    chunk_size: int = field(default=8, metadata={"range": (2, None)})  # frames denoised together, the anchor included (paper: 8)
    cross_frame_attention: bool = True  # paper §3.2; off = plain per-frame self-attention (an ablation)
    motion_in_latents: bool = True  # paper §3.1; off = independent noise per frame (an ablation)
    warp_mode: str = field(default="nearest", metadata={"choices": ("nearest", "bilinear")})  # nearest keeps the noise's statistics
    offload: bool = False  # models wait on the CPU and visit the GPU per phase: ~2 GB less VRAM, slower
    vae_tiling: bool = False  # decode large frames tile by tile (less VRAM above ~768 px)
    decode_batch: int = field(default=1, metadata={"range": (1, None)})  # frames decoded at once (1 = VAE slicing, least VRAM)


def validate_options(o: T2VZeroOptions, key: str = "generation.t2v_zero") -> None:
    """One ConfigError naming the first option outside what the engine can use."""
    check_fields(o, key)
    if o.motion_timestep > o.noise_timestep:
        raise ConfigError(
            f"{key}.motion_timestep: {o.motion_timestep!r} is not allowed; use a whole number from 0 to "
            f"noise_timestep ({o.noise_timestep}) (paper: 881)"
        )


# --- cross-frame attention (§3.2) ------------------------------------------------------------------


class CrossFrameAttnProcessor:
    """Self-attention of every frame on the first frame of its group (paper 001, eq. 8); cross-attention unchanged.

    The batch is read as ``groups x frames`` (``frames`` arrives through the UNet's
    ``cross_attention_kwargs``); the keys and values of self-attention are computed from the group's
    first frame, which makes the first frame's own output exactly plain self-attention. The attention
    itself is diffusers' maintained SDPA processor.
    """

    def __init__(self) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.inner = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, frames: int | None = None):
        """Run ``attn`` with the first frame's keys/values when it is a self-attention over ``frames``-frame groups."""
        plain_tokens = hidden_states.ndim == 3 and attn.group_norm is None and attn.spatial_norm is None
        if encoder_hidden_states is None and frames and frames > 1 and plain_tokens:
            b = hidden_states.shape[0]
            if b % frames:
                raise ValueError(f"cross-frame attention: batch {b} is not a whole number of {frames}-frame groups")
            grouped = hidden_states.view(b // frames, frames, *hidden_states.shape[1:])
            # to_k/to_v act per token, so projecting the first frame's tokens gives its keys/values.
            encoder_hidden_states = grouped[:, :1].expand_as(grouped).reshape(hidden_states.shape)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def install_cross_frame_attention(unet: Any) -> None:
    """Put :class:`CrossFrameAttnProcessor` on every attention layer of ``unet`` (it only changes self-attention)."""
    unet.set_attn_processor(CrossFrameAttnProcessor())


# --- motion in the latents (§3.1) ----------------------------------------------------------------


def _scaled(m: Motion, cells: float) -> Motion:
    return Motion(m.zoom, m.angle, m.translation_x / cells, m.translation_y / cells)


def latent_motion_matrices(motions: Sequence[Motion], frames: Sequence[int], height: int, width: int, cells: int) -> torch.Tensor:
    """``(len(frames),2,3)`` warps from frame 0 to each frame: motions 1..k composed, in latent cells.

    ``motions[f]`` turns frame f−1 into frame f (``motions[0]`` is unused), as in the VQGAN loop;
    ``height``/``width`` are the latent's, ``cells`` the pixels per latent cell.
    """
    last = max(frames, default=0)
    if last >= len(motions):
        raise ConfigError(f"animation.frames: frame {last} has no motion (the schedule gives {len(motions)} frames)")
    acc = torch.eye(3)
    cumulative = [acc.clone()]
    for f in range(1, last + 1):
        step = torch.eye(3)
        step[:2] = affine_matrix(_scaled(motions[f], cells), height, width)[0]
        acc = step @ acc
        cumulative.append(acc.clone())
    return torch.stack([cumulative[f][:2] for f in frames])


def warp_latents(latent: torch.Tensor, matrices: torch.Tensor, mode: str = "nearest", border_mode: str = "reflect") -> torch.Tensor:
    """Warp one ``(1,C,h,w)`` latent by each ``(2,3)`` matrix: ``(n,C,h,w)`` (paper 001, W_k)."""
    from kornia.geometry.transform import warp_affine

    n = matrices.shape[0]
    h, w = latent.shape[-2:]
    src = latent.expand(n, *latent.shape[1:])
    return warp_affine(src, matrices.to(latent), dsize=(h, w), mode=mode, padding_mode=_PADDING[border_mode], align_corners=True)


# --- the step plan ------------------------------------------------------------------------------


def step_plan(steps: int, noise_timestep: int, motion_timestep: int) -> tuple[int, int]:
    """``(i_T, i_T′)``: after the first i DDIM steps a latent sits at T / T′ (paper: 50 steps -> (2, 5)).

    Read on SD's DDIM schedule (1000 training steps, "leading" spacing, offset 1: 981, 961, ... 1) so
    the plan, and the progress total built from it, do not depend on a model's scheduler details.
    """
    ts = [(1000 // steps) * i + 1 for i in range(steps)][::-1]
    i_noise = next((i for i, t in enumerate(ts) if t <= noise_timestep), steps - 1)
    i_motion = max(i_noise, next((i for i, t in enumerate(ts) if t <= motion_timestep), steps - 1))
    return i_noise, i_motion


def chunk_steps(chunk: range, steps: int, noise_timestep: int, motion_timestep: int) -> int:
    """Denoising steps one chunk reports: frame 0 alone down to T′ (first chunk only), then all from T."""
    i_noise, i_motion = step_plan(steps, noise_timestep, motion_timestep)
    return (i_motion if chunk.start == 0 else 0) + steps - i_noise


# --- chunks -------------------------------------------------------------------------------------


def chunk_ranges(frames: int, chunk_size: int) -> list[range]:
    """Frame ranges, one per sample call: ``chunk_size`` frames first, then ``chunk_size − 1`` (+ the anchor)."""
    out = [range(0, min(chunk_size, frames))] if frames > 0 else []
    start = out[0].stop if out else 0
    while start < frames:
        out.append(range(start, min(start + chunk_size - 1, frames)))
        start = out[-1].stop
    return out


def chunk_batch_frames(chunk: range) -> list[int]:
    """The frames denoised together for ``chunk``: frame 0 (the anchor) first, then the chunk's own."""
    return list(chunk) if chunk.start == 0 else [0, *chunk]


# --- the engine ---------------------------------------------------------------------------------


class T2VZeroEngine(SampledEngine):
    """Text2Video-Zero as a sampled engine: chunks of frames denoised with frame 1 as their anchor."""

    name: ClassVar[str] = "t2v_zero"
    Options: ClassVar[type] = T2VZeroOptions
    reads_models: ClassVar[tuple[str, ...]] = ("diffusion",)

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values the engine cannot use."""
        validate_options(options, key)

    @classmethod
    def chunks(cls, cfg: Any) -> list[range]:
        """``chunk_size`` frames, then ``chunk_size − 1`` per call (frame 0 rides along as the anchor)."""
        return chunk_ranges(cfg.animation.frames, cfg.generation.sections[cls.name].chunk_size)

    @classmethod
    def chunk_iterations(cls, cfg: Any, frames: range) -> int:
        """Denoising steps :meth:`sample` reports for ``frames``."""
        o = cfg.generation.sections[cls.name]
        return chunk_steps(frames, o.steps, o.noise_timestep, o.motion_timestep)

    @classmethod
    def build(cls, ctx: Any) -> "T2VZeroEngine":
        """Load ``models.diffusion`` and set up the sampler for the run's size, seed, timeline and camera."""
        o = ctx.options(cls.name)
        components, placement = load_for_engine(ctx, cls.name, o.offload)
        return cls(
            components, o, timeline=ctx.timeline, motions=ctx.motions, height=ctx.height, width=ctx.width, seed=ctx.seed,
            placement=placement, border_mode=ctx.config.animation.border_mode, preview_every=ctx.config.output.images_interval,
        )

    def __init__(
        self,
        components: Any,  # vqclip.models.diffusion.SDComponents
        options: T2VZeroOptions,
        *,
        timeline: Any,
        motions: Sequence[Motion],
        height: int,
        width: int,
        seed: int,
        placement: Placement | None = None,
        border_mode: str = "reflect",
        preview_every: int = 0,
    ) -> None:
        from vqclip.models.diffusion import vae_scale_factor

        validate_options(options)
        self.o = options
        self.c = components
        self.timeline = timeline
        self.motions = list(motions)
        self.frames = len(self.motions)
        self.seed = int(seed)
        self.placement = placement or Placement(torch.device("cpu"))
        self.border_mode = border_mode
        self.preview_every = int(preview_every or 0)
        self.cells = vae_scale_factor(components.vae)
        if height % self.cells or width % self.cells:
            raise ConfigError(f"size: {width}x{height} is not allowed for t2v_zero; width and height must be multiples of {self.cells}")
        self.latent_shape = (components.unet.config.in_channels, height // self.cells, width // self.cells)
        p = self.placement
        self.unet = p.place(components.unet, p.dtype)
        self.vae = p.place(components.vae, p.vae_dtype)
        if options.vae_tiling:
            self.vae.enable_tiling()
        self.text = TextConditioner(components.tokenizer, p.place(components.text_encoder, p.dtype), p, options.negative_prompt, "t2v_zero")
        if options.cross_frame_attention:
            install_cross_frame_attention(self.unet)
        self.scheduler = make_scheduler("ddim", components.scheduler_config, "generation.t2v_zero", clip_sample=False)
        self.scheduler.set_timesteps(options.steps)
        self.i_noise, self.i_motion = step_plan(options.steps, options.noise_timestep, options.motion_timestep)
        self.frame_chunks = chunk_ranges(self.frames, options.chunk_size)
        self.anchor: dict[str, torch.Tensor] = {}  # frame 0's latent at T and at T′ (CPU, fp32)

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """What later chunks need: frame 0's latents at T and T′ (CPU tensors)."""
        return {k: v.clone() for k, v in self.anchor.items()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the anchor saved by :meth:`state_dict` (an empty dict recomputes it)."""
        self.anchor = {k: v.detach().float().cpu().clone() for k, v in state.items() if k in ("x_noise", "x_motion")}

    def describe(self) -> str:
        """Model text for PNG metadata."""
        return f"t2v_zero ({self.c.source}, DDIM {self.o.steps})"

    # -- sampling -------------------------------------------------------------------------------

    def _model(self, t: int, frames_per_group: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        dtype = self.placement.dtype
        kwargs = {"frames": frames_per_group} if self.o.cross_frame_attention else None

        def call(x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            dev = next(self.unet.parameters()).device
            out = self.unet(x.to(dev, dtype), t, encoder_hidden_states=emb.to(dev, dtype), cross_attention_kwargs=kwargs)
            return out.sample.float()

        return call

    def _step(self, latents: torch.Tensor, t: int, cond, uncond) -> tuple[torch.Tensor, torch.Tensor]:
        eps = guided_noise(self._model(t, latents.shape[0]), latents, cond, uncond, self.o.guidance_scale)
        out = self.scheduler.step(eps, t, latents)
        return out.prev_sample, out.pred_original_sample

    def _compute_anchor(self, emit, counter: list[int], total: int, chunk_first: int) -> bool:
        """DDIM-denoise frame 0 from pure noise to T, then to T′ (Algorithm 1, lines 1-2); False if stopped."""
        ts = self.scheduler.timesteps
        dev = self.placement.device
        x = frame_noise(self.seed, 0, (1, *self.latent_shape)).to(dev) * self.scheduler.init_noise_sigma
        cond, uncond = (e.to(dev) for e in self.text.frames(self.timeline, [0]))
        if self.i_noise == 0:
            self.anchor["x_noise"] = x.cpu()
        for i in range(self.i_motion):
            x, _ = self._step(x, int(ts[i]), cond, uncond)
            if i + 1 == self.i_noise:
                self.anchor["x_noise"] = x.cpu()
            counter[0] += 1
            if emit(iteration_event(chunk_first, self.frames, counter[0], total, counter[0], total)) == "stop":
                self.anchor = {}
                return False
        self.anchor["x_motion"] = x.cpu()
        return True

    def _start_latents(self, batch_frames: list[int]) -> torch.Tensor:
        """x_T for each frame: frame 0 from the anchor, others warped from frame 0 at T′ and re-noised to T."""
        others = [f for f in batch_frames if f != 0]
        starts: dict[int, torch.Tensor] = {0: self.anchor["x_noise"]}
        if others:
            if self.o.motion_in_latents:
                h, w = self.latent_shape[1:]
                m = latent_motion_matrices(self.motions, others, h, w, self.cells)
                warped = warp_latents(self.anchor["x_motion"], m, self.o.warp_mode, self.border_mode)
                ac = self.scheduler.alphas_cumprod
                ts = self.scheduler.timesteps
                a = float(ac[int(ts[self.i_noise])] / ac[int(ts[self.i_motion])])  # ᾱ_T / ᾱ_T′
                for j, f in enumerate(others):
                    eps = frame_noise(self.seed, f, (1, *self.latent_shape), salt="renoise")
                    starts[f] = a**0.5 * warped[j : j + 1] + (1 - a) ** 0.5 * eps  # DDPM forward T′ -> T
            else:
                for f in others:
                    starts[f] = frame_noise(self.seed, f, (1, *self.latent_shape)) * self.scheduler.init_noise_sigma
        return torch.cat([starts[f] for f in batch_frames])

    @torch.no_grad()
    def sample(self, frames: range, emit: Callable[[dict], Any] | None = None) -> list[torch.Tensor] | None:
        """The chunk's frames as ``(1,3,H,W)`` float32 in [0,1]; None when ``emit`` answered "stop"."""
        emit = emit or (lambda event: None)
        if frames not in self.frame_chunks:
            raise ValueError(f"t2v_zero: {frames} is not one of the chunks {self.frame_chunks}")
        ts = self.scheduler.timesteps
        joint = len(ts) - self.i_noise
        need_anchor = not self.anchor
        total = (self.i_motion if need_anchor else 0) + joint
        counter = [0]
        with self.placement.active(self.unet):
            if need_anchor and not self._compute_anchor(emit, counter, total, frames.start):
                return None
            batch = chunk_batch_frames(frames)
            dev = self.placement.device
            x = self._start_latents(batch).to(dev)
            cond, uncond = (e.to(dev) for e in self.text.frames(self.timeline, batch))
            first = batch.index(frames.start)
            for i in range(self.i_noise, len(ts)):
                x, x0 = self._step(x, int(ts[i]), cond, uncond)
                counter[0] += 1
                reply = emit(iteration_event(frames.start, self.frames, counter[0], total, counter[0], total))
                if self.preview_every and counter[0] % self.preview_every == 0:
                    image = decode_latents(self.vae, x0[first : first + 1], self.placement)[0]
                    reply = emit({"event": "preview", "frame": frames.start, "iteration": counter[0], "image": to_pil(image)}) or reply
                if reply == "stop":
                    return None
        keep = [j for j, f in enumerate(batch) if f in frames]
        check_finite(x, self.placement, "t2v_zero")
        return decode_latents(self.vae, x[keep], self.placement, self.o.decode_batch)
