"""The denoise post-step for finished frames (`post_denoise`): CycleGAN as in paper 000 (Fig. 3), or kornia smoothing.

Directly optimized pixels are noisy (paper 000, Approach); the authors translate each finished frame
with a CycleGAN generator trained from noisy frames to photographs. Where that generator is not
available (offline, not downloaded), an edge-preserving smoothing from kornia stands in: a bilateral
filter (default), a self-guided filter, or a median filter. Every denoiser maps a (B, 3, H, W) batch
in [0, 1] to the same shape in [0, 1] and never changes the frame that the engine optimizes; only
the exported image is denoised.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from vqclip.errors import ConfigError, ModelError

__all__ = [
    "DENOISE_MODES",
    "FALLBACK_MODES",
    "DEFAULT_GENERATOR",
    "Denoiser",
    "make_denoiser",
    "bilateral_denoise",
    "guided_denoise",
    "median_denoise",
    "cyclegan_denoise",
]

DENOISE_MODES = ("cyclegan", "bilateral", "guided", "median", "none")
FALLBACK_MODES = ("bilateral", "guided", "median", "none")
# The registry name of the authors' published generator (netG_A of paper 000's code).
DEFAULT_GENERATOR = "cyclegan_text2video"


def bilateral_denoise(image01: torch.Tensor, kernel_size: int = 9, sigma_color: float = 0.5, sigma_space: float = 3.0) -> torch.Tensor:
    """Edge-preserving bilateral blur (kornia): smooths the optimizer's speckle, keeps strong edges.

    The defaults were chosen by eye on pixel-engine frames: their speckle is saturated (neighbours
    differ by 0.5 or more), so a colour sigma of 0.5 is needed before it smooths at all.
    """
    from kornia.filters import bilateral_blur

    out = bilateral_blur(image01.clamp(0, 1), kernel_size, sigma_color, (sigma_space, sigma_space))
    return out.clamp(0, 1)


def guided_denoise(image01: torch.Tensor, kernel_size: int = 9, eps: float = 0.1) -> torch.Tensor:
    """Self-guided filter (kornia): a local linear fit to the frame itself, edges kept where variance is high."""
    from kornia.filters import guided_blur

    x = image01.clamp(0, 1)
    return guided_blur(x, x, kernel_size, eps).clamp(0, 1)


def median_denoise(image01: torch.Tensor, kernel_size: int = 3) -> torch.Tensor:
    """Median filter (kornia): removes isolated outlier pixels, the cheapest of the three."""
    from kornia.filters import median_blur

    return median_blur(image01.clamp(0, 1), kernel_size).clamp(0, 1)


def cyclegan_denoise(generator: nn.Module, image01: torch.Tensor) -> torch.Tensor:
    """Translate noisy frames with the CycleGAN generator; its tanh output is mapped back to [0, 1] (paper 000, Fig. 3)."""
    param = next(generator.parameters())
    # The authors feed the optimized pixels as they are (no rescale to [-1, 1]) and map (g + 1) / 2.
    x = image01.to(device=param.device, dtype=param.dtype)
    with torch.no_grad():
        out = (generator(x) + 1) / 2
    return out.to(image01.dtype).clamp(0, 1)


_SMOOTHERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "bilateral": bilateral_denoise,
    "guided": guided_denoise,
    "median": median_denoise,
    "none": lambda x: x.clamp(0, 1),
}


@dataclass
class Denoiser:
    """A ready denoise step; `mode` is what runs, `requested` what the setting asked for (they differ after a fallback)."""

    mode: str
    requested: str
    generator: nn.Module | None = None
    note: str = ""
    _fn: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)

    def __call__(self, image01: torch.Tensor) -> torch.Tensor:
        """Denoise a (B, 3, H, W) or (3, H, W) batch in [0, 1]."""
        single = image01.dim() == 3
        x = image01[None] if single else image01
        out = cyclegan_denoise(self.generator, x) if self.mode == "cyclegan" else self._fn(x)
        return out[0] if single else out


def _load_named_generator(name: str, device, cache_dir, download: bool) -> nn.Module:
    """Resolve a registry name (kind ``denoiser``) to its verified cached file, downloading when allowed, and load it."""
    from vqclip.models.cyclegan import load_generator
    from vqclip.models.registry import resolve_model

    return load_generator(resolve_model(name, "denoiser", cache_dir=cache_dir, download=download).path, device=device)


def make_denoiser(
    mode: str = "none",
    generator: str | os.PathLike | nn.Module | None = None,
    *,
    fallback: str = "bilateral",
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    key: str = "post_denoise",
) -> Denoiser:
    """Build the `post_denoise` step; with `cyclegan` and no usable generator, warn and use `fallback`."""
    if mode not in DENOISE_MODES:
        raise ConfigError(f"{key}: {mode!r} is not a denoise mode; allowed: {', '.join(DENOISE_MODES)}")
    if fallback not in FALLBACK_MODES:
        raise ConfigError(f"{key}_fallback: {fallback!r} is not allowed; allowed: {', '.join(FALLBACK_MODES)}")
    if mode != "cyclegan":
        return Denoiser(mode=mode, requested=mode, _fn=_SMOOTHERS[mode])

    if isinstance(generator, nn.Module):
        return Denoiser(mode="cyclegan", requested=mode, generator=generator.to(device).eval().requires_grad_(False))
    spec = DEFAULT_GENERATOR if generator is None else generator
    try:
        path = Path(spec).expanduser()
        if path.suffix in (".pth", ".pt", ".ckpt", ".bin") or path.is_file():
            from vqclip.models.cyclegan import load_generator

            if not path.is_file():  # an explicit path that is wrong is a typo to fix, not a reason to fall back
                raise ModelError(f"{key}: cyclegan generator file {str(path)!r} does not exist")
            net = load_generator(path, device=device)
        else:
            net = _load_named_generator(str(spec), device, cache_dir, download)
    except ModelError as exc:
        if generator is not None and Path(generator).suffix:
            raise
        note = f"{key}: cyclegan generator {str(spec)!r} is not available ({exc}); using {fallback!r} instead"
        warnings.warn(note, RuntimeWarning, stacklevel=2)
        return Denoiser(mode=fallback, requested=mode, note=note, _fn=_SMOOTHERS[fallback])
    return Denoiser(mode="cyclegan", requested=mode, generator=net)
