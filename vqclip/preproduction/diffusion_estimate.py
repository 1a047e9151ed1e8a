"""GPU memory and time of a diffusion render (t2v_zero, animatediff), estimated on the ``meta`` device.

The UNet (with its motion modules for animatediff) and the VAE decoder are built from their configs on
PyTorch's ``meta`` device and run once: ``FlopCounterMode`` counts the FLOPs, and a dispatch mode counts
the bytes of live tensors (each storage once, freed when its last tensor dies) to find the peak of one
inference pass. Attention is counted as the fused SDPA kernels run it on a GPU (the output only: the
memory-efficient kernel a T4 uses never materialises the attention matrix).

At 512x512 in fp16 one SD 1.5 UNet pass is 0.80 TFLOP and peaks at 65 MiB of activations per sample;
the VAE decoder is 2.5 TFLOP and 0.77 GiB per frame in fp32. A render's peak is the larger of the
denoising phase (weights + the largest UNet batch) and the decoding phase (+ one VAE decode), plus the
CUDA context. Published figures (Text2Video-Zero's README: 12 GB with chunking; AnimateDiff: 12-13 GB
in fp16) are from implementations without fused attention and sit above these estimates.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["DiffusionEstimate", "estimate_sampled", "estimate", "SD15_UNET", "SD15_VAE"]

#: SD 1.5's unet/config.json and vae/config.json (the architecture parts), used when no local folder is given.
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
    block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
)
SD15_VAE = dict(
    block_out_channels=[128, 256, 512, 512], latent_channels=4, layers_per_block=2, sample_size=512,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
)
SD15_TEXT_PARAMS = 123_060_480  # CLIP ViT-L/14 text tower
STEP_OVERHEAD_S = 0.03  # Python, the scheduler and guidance arithmetic per denoising step


class _FusedAttention(TorchFunctionMode):
    """SDPA as a fused GPU kernel: only its output exists (the meta fallback would build the full matrix)."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            # QK^T and AV: 2 matmuls of (L x d)(d x S), 2 FLOPs per multiply-add
            self.flops += 4 * q.shape[:-2].numel() * q.shape[-2] * k.shape[-2] * q.shape[-1]
            return torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        return func(*args, **(kwargs or {}))


class _PeakBytes(TorchDispatchMode):
    """The peak of live tensor bytes while a function runs (each storage counted once, weights excluded)."""

    def __init__(self, exclude: set[int]):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.sizes: dict[int, int] = {}
        self.exclude = exclude

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                key = t.untyped_storage()._cdata
                if key in self.sizes or key in self.exclude:
                    continue
                self.sizes[key] = t.untyped_storage().nbytes()
                self.live += self.sizes[key]
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, key)
        return out


@dataclass(frozen=True)
class _Pass:
    tflop: float  # one pass, batch 1
    peak_bytes: int  # activations of one pass, batch 1


def _trace(module: torch.nn.Module, fn) -> _Pass:
    exclude = {p.untyped_storage()._cdata for p in module.parameters()}
    attention = _FusedAttention()
    with torch.no_grad(), FlopCounterMode(display=False) as flops, attention, _PeakBytes(exclude) as peak:
        fn()
    return _Pass((flops.get_total_flops() + attention.flops) / 1e12, peak.peak)


def _read_config(folder: Path | None, name: str, default: dict) -> dict:
    if folder is not None and (folder / name).is_file():
        raw = json.loads((folder / name).read_text())
        return {k: v for k, v in raw.items() if not k.startswith("_")}
    return dict(default)


@dataclass
class DiffusionEstimate:
    """Memory and work of one diffusion render; :meth:`seconds` turns the work into time on a GPU."""

    engine: str
    width: int
    height: int
    frames: int
    precision: str  # fp16 | bf16 | fp32 (the UNet's; the VAE always decodes in fp32)
    denoise_weights_bytes: int  # on the GPU while denoising: UNet (+ motion modules), text encoder, VAE (offload: the UNet)
    denoise_bytes: int  # activations of the largest UNet batch
    decode_weights_bytes: int  # on the GPU while decoding (offload: the VAE alone)
    decode_bytes: int  # activations of decoding ``decode_batch`` frames
    unet_tflop: float  # every UNet pass of the render
    vae_tflop: float  # decoding every frame
    steps: int  # denoising steps of the render (all chunks)
    unet_samples: int  # frame latents through the UNet over the render (guidance doubles them)
    context_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Peak GPU memory: the larger of the denoising and the decoding phase, plus the CUDA context."""
        from vqclip.preproduction.estimate import FRAGMENTATION

        phase = max(self.denoise_weights_bytes + self.denoise_bytes, self.decode_weights_bytes + self.decode_bytes)
        return int(phase * FRAGMENTATION) + self.context_bytes

    @property
    def total_gib(self) -> float:
        """:attr:`total_bytes` in GiB."""
        from vqclip.preproduction.estimate import GiB

        return self.total_bytes / GiB

    def summary(self) -> str:
        """One line: size, frames, memory and time of the whole render on a T4."""
        return (f"{self.width}x{self.height}, {self.frames} frames, {self.engine}, {self.precision}: ~{self.total_gib:.1f} GiB GPU memory, "
                f"~{self.seconds() / 60:.1f} min on a T4 (estimate)")

    def seconds(self, gpu: Any = None) -> float:
        """Estimated seconds for the whole render on ``gpu`` (default: Colab's T4)."""
        from vqclip.preproduction.estimate import T4

        gpu = gpu or T4
        return self.unet_tflop / gpu.tflops(self.precision) + self.vae_tflop / gpu.tflops("fp32") + self.steps * STEP_OVERHEAD_S


def estimate_sampled(
    engine: str,
    width: int,
    height: int,
    frames: int,
    options: Any,
    precision: str = "fp16",
    model_folder: str | Path | None = None,
    adapter_folder: str | Path | None = None,
) -> DiffusionEstimate:
    """Trace the engine's UNet and VAE on the meta device for this size and count the passes its options make."""
    from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from vqclip.preproduction.estimate import CUDA_CONTEXT_BYTES
    from vqclip.production.engines.diffusion_common import quiet_diffusers

    folder = Path(model_folder) if model_folder else None
    unet_cfg = _read_config(folder / "unet" if folder else None, "config.json", SD15_UNET)
    vae_cfg = _read_config(folder / "vae" if folder else None, "config.json", SD15_VAE)
    half = torch.float32 if precision == "fp32" else torch.float16
    cells = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    h, w = height // cells, width // cells
    ctx_dim = unet_cfg.get("cross_attention_dim", 768)
    with quiet_diffusers(), torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_cfg)
        if engine == "animatediff":
            adapter_cfg = _read_config(Path(adapter_folder) if adapter_folder else None, "config.json", {})
            unet = UNetMotionModel.from_unet2d(unet, MotionAdapter.from_config(adapter_cfg), load_weights=False)
        unet = unet.to(half)
        vae = AutoencoderKL.from_config(vae_cfg)
    guided = 2 if options.guidance_scale > 1 else 1
    text = torch.empty(1, 77, ctx_dim, device="meta", dtype=half)
    if engine == "animatediff":
        window = min(frames, options.context_frames)
        latents = torch.empty(1, unet_cfg.get("in_channels", 4), window, h, w, device="meta", dtype=half)
        one = _trace(unet, lambda: unet(latents, 500, encoder_hidden_states=text.expand(window, -1, -1)))
        per_sample = _Pass(one.tflop / window, one.peak_bytes // window)
        from vqclip.production.engines.animatediff import context_windows

        windows = context_windows(frames, options.context_frames, options.context_overlap)
        samples = options.steps * sum(len(win) for win in windows) * guided
        batch = window * guided
        steps = options.steps
    else:
        latents = torch.empty(1, unet_cfg.get("in_channels", 4), h, w, device="meta", dtype=half)
        per_sample = _trace(unet, lambda: unet(latents, 500, encoder_hidden_states=text))
        from vqclip.production.engines.t2v_zero import chunk_batch_frames, chunk_ranges, step_plan

        i_noise, i_motion = step_plan(options.steps, options.noise_timestep, options.motion_timestep)
        chunks = chunk_ranges(frames, options.chunk_size)
        joint = options.steps - i_noise
        samples = guided * (i_motion + joint * sum(len(chunk_batch_frames(c)) for c in chunks))
        batch = min(options.chunk_size, frames) * guided
        steps = i_motion + joint * len(chunks)
    decode_batch = min(getattr(options, "decode_batch", 1), frames)
    z = torch.empty(decode_batch, vae_cfg.get("latent_channels", 4), h, w, device="meta")
    dec = _trace(vae, lambda: vae.decode(z))
    unet_bytes = sum(p.numel() for p in unet.parameters()) * (4 if half == torch.float32 else 2)
    text_bytes = SD15_TEXT_PARAMS * (4 if half == torch.float32 else 2)
    vae_bytes = sum(p.numel() for p in vae.parameters()) * 4
    offload = bool(getattr(options, "offload", False))
    # With offload only the model of the current phase is on the GPU.
    weights_denoise = unet_bytes if offload else unet_bytes + text_bytes + vae_bytes
    weights_decode = vae_bytes if offload else weights_denoise
    return DiffusionEstimate(
        engine, width, height, frames, "fp32" if half == torch.float32 else precision,
        denoise_weights_bytes=weights_denoise, denoise_bytes=per_sample.peak_bytes * batch,
        decode_weights_bytes=weights_decode, decode_bytes=dec.peak_bytes,
        unet_tflop=per_sample.tflop * samples, vae_tflop=dec.tflop / decode_batch * frames, steps=steps,
        unet_samples=samples, context_bytes=CUDA_CONTEXT_BYTES,
    )


def estimate(cfg: Any, gpu: Any = None) -> tuple[int, float]:
    """``(peak GPU bytes, seconds)`` of a render config whose engine is t2v_zero or animatediff."""
    g = cfg.generation
    engine = g.engine
    options = g.sections[engine]
    precision = (getattr(g, "precision", "auto") or "auto").lower()
    precision = "fp16" if precision == "auto" else precision
    folder = cfg.models.diffusion.get("path") if isinstance(cfg.models.diffusion, dict) else None
    adapter = getattr(cfg.models, "motion_adapter", None)
    adapter = adapter.get("path") if isinstance(adapter, dict) else None
    e = estimate_sampled(engine, cfg.size.width, cfg.size.height, cfg.animation.frames, options, precision, folder, adapter)
    return e.total_bytes, e.seconds(gpu)
