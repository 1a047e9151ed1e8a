"""The VQGAN generator: a frame is a VQGAN latent ``z``, snapped to the codebook and decoded (VQGAN-CLIP).

As in the VQGAN-CLIP notebooks: ``z`` starts from random codebook entries or from an encoded image,
every forward pass snaps it to its nearest codebook vectors with a straight-through gradient, and
after each optimizer step it is clamped to the codebook's per-channel range so it never drifts where
the decoder was not trained. Sizes that are not a multiple of the model's factor get a latent grid
rounded up; the decoded canvas is centre-cropped to the exact output size (no resampling, so pixels
stay sharp and the aspect ratio exact; at most ``factor - 1`` pixels are computed and thrown away).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vqclip.production.engines.base import EngineContext, Generator
from vqclip.errors import ConfigError

__all__ = ["VQGANGenerator", "VQGANOptions"]


@dataclass
class VQGANOptions:
    """Settings of the ``vqgan`` generator (``generation.vqgan`` in a preset)."""

    init: str = "codes"  # first frame without init_image: codes (random codebook entries) | noise (encoded noise)
    quantize: bool = True  # snap z to the codebook with a straight-through gradient, as VQGAN-CLIP does
    clamp: bool = True  # keep z inside the codebook's per-channel min..max after each step
    checkpoint: bool = False  # recompute the decoder's blocks in backward: several times less activation memory, ~1 more decoder pass per step (large frames, small GPUs)


INITS = ("codes", "noise")


def _autocast_off(device: torch.device):
    """A region in full precision; a device without autocast (meta, in the estimator) has none to turn off."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class VQGANGenerator(Generator):
    """Optimizes a VQGAN latent; the picture is the decoder's output cropped to the frame size."""

    name = "vqgan"
    Options = VQGANOptions
    default_objective = "cutouts"
    reads_models = ("vqgan",)

    @classmethod
    def defaults(cls, options: VQGANOptions) -> dict:
        """The VQGAN-CLIP notebooks' values: 200 steps from noise, 30 from a warped frame, lr 0.1, no stability pull."""
        return {"iterations_first_frame": 200, "iterations_per_frame": 30, "lr": 0.1, "stability_weight": 0.0}

    @classmethod
    def validate_options(cls, options: VQGANOptions, key: str) -> None:
        """Check the option values (types are checked by the config loader)."""
        if options.init not in INITS:
            raise ConfigError(f"{key}.init: {options.init!r} is not allowed; use one of {', '.join(INITS)}")

    @classmethod
    def build(cls, ctx: EngineContext) -> "VQGANGenerator":
        """Load the configured VQGAN (registry name or local files) and wrap it."""
        from vqclip.models.registry import resolve_model
        from vqclip.models.vqgan import load_vqgan

        m = ctx.config.models
        config_path, ckpt_path = resolve_model(m.vqgan, "vqgan", cache_dir=m.cache_dir, download=m.download,
                                               callback=getattr(ctx, "callback", None)).paths
        model = load_vqgan(config_path, ckpt_path, device=ctx.device)
        label = m.vqgan if isinstance(m.vqgan, str) else str(m.vqgan.get("checkpoint", "local"))
        return cls(ctx, model, label)

    @classmethod
    def build_meta(cls, ctx: EngineContext) -> "VQGANGenerator":
        """The configured VQGAN's architecture on ``ctx.device`` (meta: shapes, no weights, no download)."""
        from vqclip.models.registry import get_model_info, model_dir
        from vqclip.models.vqgan import build_vqgan

        spec = ctx.config.models.vqgan
        if isinstance(spec, dict):
            arch: Any = Path(str(spec["config"])).expanduser()
        else:
            info = get_model_info(spec)
            if info.kind != "vqgan":
                raise ConfigError(f"models.vqgan: {spec!r} is a {info.kind}, not a VQGAN")
            arch = info.architecture if info.arch is not None else model_dir(info) / info.files[0].filename
            if isinstance(arch, Path) and not arch.is_file():
                raise ConfigError(f"models.vqgan: {spec!r} ships its architecture in {str(arch)!r}, which is missing; reinstall vqclip")
        with torch.device(ctx.device):
            model = build_vqgan(arch).requires_grad_(False)
        return cls(ctx, model, spec if isinstance(spec, str) else Path(str(spec["config"])).stem)

    def __init__(self, ctx: EngineContext, model, label: str = "vqgan"):
        self.ctx, self.model, self.label = ctx, model, label
        self.options: VQGANOptions = ctx.options(self.name)
        if ctx.channels_last:
            self.model = model.to(memory_format=torch.channels_last)
        from vqclip.production.speed import checkpoint_blocks, fuse_upsample_convs, off_pinned_path

        if off_pinned_path(ctx.precision, ctx.config.generation.compile):  # may change the last bits
            fuse_upsample_convs(self.model.decoder)
        if self.options.checkpoint:
            checkpoint_blocks(self.model.decoder, ctx.precision.autocast if ctx.precision is not None else None)
        f = int(model.factor)
        self.grid = (math.ceil(ctx.height / f), math.ceil(ctx.width / f))
        self.canvas = (self.grid[0] * f, self.grid[1] * f)
        self.top = (self.canvas[0] - ctx.height) // 2
        self.left = (self.canvas[1] - ctx.width) // 2
        codebook = model.codebook.detach().to(ctx.device, torch.float32)
        self.z_min = codebook.min(dim=0).values[None, :, None, None]
        self.z_max = codebook.max(dim=0).values[None, :, None, None]
        self.z = torch.zeros(1, codebook.shape[1], *self.grid, device=ctx.device, requires_grad=True)

    @torch.no_grad()
    def start(self, image01: torch.Tensor | None) -> None:
        """``z`` from an image (padded to the latent grid and encoded) or from random codes/noise."""
        if image01 is None and self.options.init == "codes":
            codebook = self.model.codebook.detach().float()
            # Draw on the CPU generator so a seed gives the same start on every device.
            idx = torch.randint(codebook.shape[0], (self.grid[0] * self.grid[1],))
            z = codebook[idx.to(codebook.device)].view(1, *self.grid, -1).permute(0, 3, 1, 2)
        else:
            if image01 is None:
                image01 = torch.rand(1, 3, self.ctx.height, self.ctx.width)
            z = self.model.encode(self._pad(image01.to(self.ctx.device, torch.float32)))
        self.z.copy_(z.to(self.z.device, self.z.dtype))

    def _pad(self, image01: torch.Tensor) -> torch.Tensor:
        """Pad an output-sized image to the decoder's canvas (edge pixels repeat into the unseen margin)."""
        bottom = self.canvas[0] - self.ctx.height - self.top
        right = self.canvas[1] - self.ctx.width - self.left
        if self.top == bottom == self.left == right == 0:
            return image01
        return F.pad(image01, (self.left, right, self.top, bottom), mode="replicate")

    def parameters(self) -> list[torch.Tensor]:
        """The latent ``z``."""
        return [self.z]

    def synth(self) -> torch.Tensor:
        """Snap ``z`` to the codebook (straight-through), decode, crop to the output size."""
        z = self.z
        if self.options.quantize:
            # Nearest-code distances in fp16 would pick wrong codes among thousands: keep them fp32.
            with _autocast_off(self.ctx.device):
                z = self.model.quantize_st(z)
        if self.ctx.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        out = self.model.decode(z)
        return out[:, :, self.top : self.top + self.ctx.height, self.left : self.left + self.ctx.width]

    @torch.no_grad()
    def after_step(self) -> None:
        """Clamp ``z`` to the codebook's range."""
        if self.options.clamp:
            self.z.copy_(torch.maximum(torch.minimum(self.z, self.z_max), self.z_min))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The latent, on the CPU."""
        return {"z": self.z.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the latent."""
        with torch.no_grad():
            self.z.copy_(state["z"].to(self.z.device, self.z.dtype))

    def describe(self) -> str:
        """The VQGAN's name for PNG metadata."""
        return f"vqgan:{self.label}"
