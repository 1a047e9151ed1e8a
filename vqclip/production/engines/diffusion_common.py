"""What both diffusion engines share: timeline conditioning, guidance, schedulers, decoding, placement, noise.

Prompt timeline -> conditioning (both engines): a frame's text embedding is the weighted mean of the
CLIP text-encoder outputs of the prompts acting on it, weighted by scene weight x prompt weight. The
timeline's scene weights fall linearly across a scene while the next one's rise (paper 000, eq. 1), so
a scene change is a gradual blend of embeddings, the same idea as FreeNoise's prompt interpolation.
Prompts with a negative weight are blended into the frame's *unconditional* embedding, together with
``negative_prompt``, so classifier-free guidance pushes away from them. ``stop`` is a CLIP-loss notion
and is not read here; image prompts need an image encoder these engines do not have (a ConfigError).

Noise is drawn per frame on the CPU from a generator seeded by ``(seed, frame)``, so a frame's noise
does not depend on the device, the chunking or where a resumed render restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch

from vqclip.errors import ConfigError, ModelError

__all__ = [
    "SCHEDULERS",
    "Placement",
    "TextConditioner",
    "frame_noise",
    "guided_noise",
    "make_scheduler",
    "check_fields",
    "decode_latents",
    "check_finite",
    "iteration_event",
    "to_pil",
    "load_for_engine",
    "quiet_diffusers",
]

#: scheduler names a preset may give -> diffusers class.
SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}  # each makes exactly `steps` model calls, so progress totals are known before sampling


def check_fields(options: Any, key: str) -> None:
    """Apply each field's ``range``/``choices`` metadata (the settings loader reads the same) to options built in code."""
    for f in dataclasses.fields(options):
        value, meta = getattr(options, f.name), f.metadata
        where = f"{key}.{f.name}"
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"{where}: {value!r} is not allowed; use one of {', '.join(map(str, meta['choices']))}")
        if "range" in meta:
            lo, hi = meta["range"]
            whole = f.type in (int, "int")
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (not whole or float(value).is_integer())
            open_zero = lo == 0 and not whole  # as the settings loader reads a range: a number above 0
            if not ok or (lo is not None and (value < lo or (open_zero and value == 0))) or (hi is not None and value > hi):
                span = f"> {lo} and <= {hi}" if open_zero else f"from {lo} to {hi}" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
                raise ConfigError(f"{where}: {value!r} is not allowed; use {'a whole number' if whole else 'a number'} {span}")


def make_scheduler(name: str, config: dict[str, Any], key: str, **overrides: Any) -> Any:
    """A fresh diffusers scheduler ``name`` built from a model's scheduler config (+ overrides)."""
    import diffusers

    if name not in SCHEDULERS:
        raise ConfigError(f"{key}: {name!r} is not a scheduler; use one of {', '.join(SCHEDULERS)}")
    cls = getattr(diffusers, SCHEDULERS[name])
    return cls.from_config({**config, **overrides})


@contextlib.contextmanager
def quiet_diffusers() -> Iterator[None]:
    """Hide diffusers' warnings for one call (e.g. from_unet2d's own dtype cast warns about itself)."""
    import logging

    log = logging.getLogger("diffusers")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def frame_noise(seed: int, frame: int, shape: Sequence[int], salt: str = "noise") -> torch.Tensor:
    """Standard normal noise for one frame, the same for a given (seed, frame, salt) on every device."""
    digest = hashlib.sha256(f"{seed}:{frame}:{salt}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.randn(tuple(shape), generator=gen, dtype=torch.float32)


@dataclass
class Placement:
    """Where the models run: the device, the UNet/text dtype, the VAE dtype and whether models are offloaded.

    On a T4 the UNet and text encoder run in fp16 while the VAE stays fp32: the SD 1.5 VAE overflows in
    fp16 and decodes black (NaN) frames on Turing GPUs. With ``offload`` each model sits on the CPU and
    visits the GPU only for its phase (text, denoising, decoding), trading PCIe time for ~4 GB of VRAM.
    """

    device: torch.device
    dtype: torch.dtype = torch.float32
    vae_dtype: torch.dtype = torch.float32
    offload: bool = False

    @classmethod
    def for_run(cls, device: torch.device, precision: str, offload: bool = False) -> "Placement":
        """fp16 weights on CUDA for ``fp16``/``auto`` (no bf16 on T4s; bf16 where asked), fp32 elsewhere."""
        if device.type != "cuda":
            return cls(device)
        precision = (precision or "auto").lower()
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(precision, torch.float16)
        return cls(device, dtype, torch.float32, offload)

    def place(self, module: Any, dtype: torch.dtype) -> Any:
        """Put ``module`` where it lives between phases, cast to ``dtype`` if it was loaded otherwise."""
        home = torch.device("cpu") if self.offload else self.device
        if next(module.parameters()).dtype != dtype:
            module = module.to(dtype=dtype)
        return module.to(home)

    @contextlib.contextmanager
    def active(self, module: Any) -> Iterator[Any]:
        """Have ``module`` on the compute device for a phase (and back on the CPU after, when offloading)."""
        if self.offload:
            module.to(self.device)
        try:
            yield module
        finally:
            if self.offload:
                module.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()


class TextConditioner:
    """Per-frame text embeddings from the prompt timeline (see the module docstring for the blend)."""

    def __init__(self, tokenizer: Any, text_encoder: Any, placement: Placement, negative_prompt: str = "", engine: str = "diffusion"):
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder
        self.placement = placement
        self.negative_prompt = negative_prompt
        self.engine = engine
        self._cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), L, D)`` last hidden states of the text encoder, in fp32 on the CPU (cached per text)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            length = min(int(self.tokenizer.model_max_length), int(self.text_encoder.config.max_position_embeddings))
            ids = self.tokenizer(todo, padding="max_length", max_length=length, truncation=True, return_tensors="pt").input_ids
            with self.placement.active(self.text_encoder) as enc:
                dev = next(enc.parameters()).device
                out = enc(ids.to(dev))[0].float().cpu()
            self._cache.update(zip(todo, out))
        return torch.stack([self._cache[t] for t in texts])

    def frames(self, timeline: Any, frames: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond, uncond)``, each ``(len(frames), L, D)``: the blended embeddings of each frame."""
        conds, unconds = [], []
        for f in frames:
            pos: list[tuple[str, float]] = []
            neg: list[tuple[str, float]] = [(self.negative_prompt, 1.0)] if self.negative_prompt else []
            for prompt, scene_w in timeline.prompts_at(f):
                if prompt.is_image:
                    raise ConfigError(
                        f"prompts.target_images: {prompt.text!r} cannot be used by the {self.engine} engine, which reads "
                        "text prompts only; remove target_images or use engine vqgan or pixels"
                    )
                w = scene_w * prompt.weight
                if w > 0:
                    pos.append((prompt.text, w))
                elif w < 0:
                    neg.append((prompt.text, -w))
            if not pos:
                raise ConfigError(f"prompts.texts: no prompt with a positive weight acts on frame {f}; give prompts.texts")
            conds.append(self._blend(pos))
            unconds.append(self._blend(neg or [("", 1.0)]))
        return torch.stack(conds), torch.stack(unconds)

    def _blend(self, weighted: list[tuple[str, float]]) -> torch.Tensor:
        emb = self.encode([t for t, _ in weighted])
        w = torch.tensor([w for _, w in weighted], dtype=torch.float32)
        return (emb * w[:, None, None]).sum(0) / w.sum()


def guided_noise(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    guidance_scale: float,
) -> torch.Tensor:
    """Classifier-free guidance: ``u + s·(c − u)`` from one batched call (``model(x, embeddings)``)."""
    if guidance_scale <= 1.0:
        return model(latents, cond)
    out = model(torch.cat([latents, latents]), torch.cat([uncond, cond]))
    u, c = out.chunk(2)
    return u + guidance_scale * (c - u)


def check_finite(latents: torch.Tensor, placement: Placement, engine: str) -> None:
    """One ModelError when sampling overflowed (fp16 on Turing GPUs is the known cause) instead of black frames."""
    if not bool(torch.isfinite(latents).all()):
        hint = (
            "use generation.precision: fp32 (half precision overflowed)"
            if placement.dtype != torch.float32
            else "check the model files (they produce NaN even in fp32)"
        )
        raise ModelError(f"generation.engine: {engine!r} produced NaN/inf latents on {placement.device} in {str(placement.dtype).removeprefix('torch.')}; {hint}")


@torch.no_grad()
def decode_latents(vae: Any, latents: torch.Tensor, placement: Placement, batch: int = 1) -> list[torch.Tensor]:
    """``(n,C,h,w)`` latents -> n ``(1,3,H,W)`` float32 images in [0,1] on the CPU, ``batch`` frames at a time."""
    scale = float(getattr(vae.config, "scaling_factor", 1.0))
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    out: list[torch.Tensor] = []
    with placement.active(vae) as v:
        dev, dtype = next(v.parameters()).device, next(v.parameters()).dtype
        for i in range(0, latents.shape[0], max(1, batch)):
            z = latents[i : i + batch].to(dev, dtype) / scale + shift
            img = v.decode(z).sample.float()
            out.extend((img / 2 + 0.5).clamp(0, 1).cpu().split(1))
    return out


def iteration_event(frame: int, frames: int, iteration: int, iterations: int, total_iteration: int, total_iterations: int) -> dict:
    """The render loop's ``iteration`` event for one denoising step (diffusion has no losses to report)."""
    return {
        "event": "iteration", "frame": frame, "frames": frames, "iteration": iteration, "iterations": iterations,
        "total_iteration": total_iteration, "total_iterations": total_iterations, "losses": {},
    }


def to_pil(image01: torch.Tensor):
    """A ``(1,3,H,W)`` image in [0,1] as a PIL image (for preview events)."""
    from PIL import Image

    arr = (image01[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(arr)


def load_for_engine(ctx: Any, engine: str, offload: bool) -> tuple[Any, Placement]:
    """The SD components of ``models.diffusion`` (default SD 1.5), loaded in the dtypes the run places them in."""
    from vqclip.models.diffusion import DEFAULT_DIFFUSION, load_sd_components, require_diffusers, resolve_diffusion_folder

    require_diffusers(engine)
    models = ctx.config.models
    precision = getattr(ctx.precision, "name", "fp32") if ctx.precision is not None else "fp32"
    placement = Placement.for_run(ctx.device, precision, offload)
    folder = resolve_diffusion_folder(models.diffusion or DEFAULT_DIFFUSION, "diffusion", models.cache_dir, models.download)
    return load_sd_components(folder, dtype=placement.dtype, vae_dtype=placement.vae_dtype), placement
