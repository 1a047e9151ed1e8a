"""Cutouts: random square crops of a frame, resized to a perceptor's input and augmented with kornia.

CLIP sees a 224-pixel square; a frame is bigger and not square. Judging many random crops at once
(``cutn`` of them, one batch) makes the gradient cover the whole frame and, with augmentations,
keeps the optimizer from fooling CLIP with pixel-exact adversarial patterns. Crop sizes follow
``rand ** cut_pow`` between the perceptor's input size (or the frame's short side, if smaller) and
the short side, so ``cut_pow > 1`` favours small crops (detail) and ``< 1`` large ones (composition).

Two modes (``generation.cutouts.mode``):

- ``crops`` (default): the random crops above, as the original VQGAN-CLIP notebook takes them. CLIP sees
  zoomed-in parts of the frame, so at 384 px and above the render grows fine detail and texture
  everywhere; pick it for detailed, busy images.
- ``pooled``: every cutout is the WHOLE frame squeezed to the perceptor's input (mean of average and max
  pooling; ``cut_pow`` is not used), then heavily augmented (:data:`POOLED_AUGMENTATIONS`: perspective 0.7,
  hue 0.1, black borders, one erase box shared by all cutouts, added noise, no clamp), as the popular
  nerdyrodent-style notebooks do. CLIP judges only the whole composition, so renders look like theirs:
  bolder, larger shapes and fewer tiny repeated motifs; pick it to match those notebooks' look.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AUGMENTATIONS", "CUTOUT_MODES", "POOLED_AUGMENTATIONS", "Cutouts", "build_augmentations"]


def _augmentations() -> dict[str, Callable[[], nn.Module]]:
    import kornia.augmentation as K

    return {
        "affine": lambda: K.RandomAffine(degrees=15, translate=0.1, shear=5, p=0.7, padding_mode="border"),
        "perspective": lambda: K.RandomPerspective(distortion_scale=0.2, p=0.7),
        "jitter": lambda: K.ColorJitter(brightness=0.05, contrast=0.05, saturation=0.05, hue=0.01, p=0.7),
        "erasing": lambda: K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 3.3), p=0.7),
        "hflip": lambda: K.RandomHorizontalFlip(p=0.5),
        "noise": lambda: K.RandomGaussianNoise(std=0.05, p=0.5),
        "sharpness": lambda: K.RandomSharpness(sharpness=0.3, p=0.4),
        "grayscale": lambda: K.RandomGrayscale(p=0.1),
    }


#: The named augmentations a preset may list in ``generation.augmentations``, and what each does.
AUGMENTATIONS = {
    "affine": "rotate up to 15 deg, shift up to 10%, shear up to 5 deg (p=0.7)",
    "perspective": "tilt the crop as if seen at an angle, distortion 0.2 (p=0.7)",
    "jitter": "small brightness/contrast/saturation/hue changes (p=0.7)",
    "erasing": "blank a random 10-40% rectangle (p=0.7)",
    "hflip": "mirror left-right (p=0.5); avoid with text or asymmetric subjects",
    "noise": "add Gaussian noise, std 0.05 (p=0.5)",
    "sharpness": "sharpen, factor 0.3 (p=0.4)",
    "grayscale": "drop colour (p=0.1)",
}


#: ``generation.cutouts.mode`` values and what each looks like (see the module doc).
CUTOUT_MODES = {
    "crops": "random crops between the perceptor's input and the short side (cut_pow): fine detail everywhere",
    "pooled": "the whole frame pooled to the perceptor's input, strong augmentations: the popular notebooks' look",
}

#: The fixed augmentation set of the ``pooled`` mode (``generation.cutouts.augmentations`` is not used).
POOLED_AUGMENTATIONS = {
    "affine": "rotate up to 15 deg, shift up to 10%, shear up to 5 deg, black borders (p=0.7)",
    "perspective": "distortion 0.7 (p=0.7)",
    "jitter": "hue 0.1, saturation 0.1 (p=0.7)",
    "erasing": "one 10-40% box, the same for every cutout (p=0.7)",
    "noise": "Gaussian noise with a std drawn per cutout in 0..0.1; no clamp to [0, 1]",
}

#: Largest std of the ``pooled`` mode's added noise.
POOLED_NOISE = 0.1


def _pooled_augmentations() -> nn.Module:
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomAffine(degrees=15, translate=0.1, shear=5, p=0.7, padding_mode="zeros"),
        K.RandomPerspective(distortion_scale=0.7, p=0.7),
        K.ColorJitter(hue=0.1, saturation=0.1, p=0.7),
        K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), same_on_batch=True, p=0.7),
    )


def build_augmentations(names: Sequence[str]) -> nn.Module:
    """A kornia pipeline of the named augmentations, applied independently to each cutout."""
    import kornia.augmentation as K

    makers = _augmentations()
    mods = [makers[n]() for n in names]
    return K.AugmentationSequential(*mods) if mods else nn.Identity()


class Cutouts(nn.Module):
    """``cutn`` random square crops of an image, resized to ``cut_size`` and augmented, as one batch."""

    def __init__(self, cut_size: int, cutn: int, cut_pow: float = 1.0, augmentations: Sequence[str] = (), mode: str = "crops"):
        super().__init__()
        if mode not in CUTOUT_MODES:
            raise ValueError(f"cutout mode {mode!r} is not one of {', '.join(CUTOUT_MODES)}")
        self.cut_size, self.cutn, self.cut_pow, self.mode = int(cut_size), int(cutn), float(cut_pow), mode
        self.augment = build_augmentations(list(augmentations)) if mode == "crops" else _pooled_augmentations()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(1,3,H,W)`` in [0,1] -> ``(cutn,3,cut_size,cut_size)``."""
        if self.mode == "pooled":
            return self._pooled(image)
        _, _, h, w = image.shape
        max_size = min(h, w)
        min_size = min(max_size, self.cut_size)
        # Sizes and offsets come from the CPU generator so a seed means the same crops on any device.
        sizes = (torch.rand(self.cutn) ** self.cut_pow * (max_size - min_size) + min_size).long().tolist()
        u = torch.rand(self.cutn, 2)
        cuts = []
        for size, (uy, ux) in zip(sizes, u.tolist()):
            oy = int(uy * (h - size + 1))
            ox = int(ux * (w - size + 1))
            cuts.append(self._resize(image[:, :, oy : oy + size, ox : ox + size]))
        batch = torch.cat(cuts, dim=0)
        return self.augment(batch).clamp(0, 1) if not isinstance(self.augment, nn.Identity) else batch

    def _resize(self, crop: torch.Tensor) -> torch.Tensor:
        """Area-average when shrinking (no aliasing), bilinear when growing."""
        s = self.cut_size
        if crop.shape[-1] >= s:
            return F.adaptive_avg_pool2d(crop, s)
        return F.interpolate(crop, size=(s, s), mode="bilinear", align_corners=False)

    def _pooled(self, image: torch.Tensor) -> torch.Tensor:
        """The whole frame pooled to ``cut_size`` once per cutout, augmented, plus noise; not clamped."""
        s = self.cut_size
        # Average pooling keeps the overall colour, max pooling keeps thin bright strokes visible at 224 px.
        pooled = (F.adaptive_avg_pool2d(image, s) + F.adaptive_max_pool2d(image, s)) / 2
        batch = self.augment(pooled.expand(self.cutn, -1, -1, -1).contiguous())
        std = batch.new_empty(self.cutn, 1, 1, 1).uniform_(0, POOLED_NOISE)
        return batch + std * torch.randn_like(batch)
