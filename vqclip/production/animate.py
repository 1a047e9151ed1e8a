"""Frame-to-frame motion: each new frame starts from the previous one zoomed, rotated and shifted.

The four schedules of ``animation`` give one number per frame; :func:`warp` applies them about the
frame's centre with kornia's ``warp_affine``. A zoom of 2 shows the central half of the picture at
twice the size; positive angles turn counter-clockwise; translations are in pixels. The edges a
warp uncovers are filled per ``border_mode`` (reflect, replicate or zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vqclip.production.schedule import parse_schedule

__all__ = ["Motion", "motion_schedule", "affine_matrix", "warp"]

_PADDING = {"reflect": "reflection", "replicate": "border", "zeros": "zeros"}


@dataclass(frozen=True)
class Motion:
    """The transform that turns frame ``t-1`` into the start of frame ``t``."""

    zoom: float = 1.0
    angle: float = 0.0
    translation_x: float = 0.0
    translation_y: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when the warp would not move a pixel."""
        return self.zoom == 1.0 and self.angle == 0.0 and self.translation_x == 0.0 and self.translation_y == 0.0


def motion_schedule(animation, fps: float | None = None) -> list[Motion]:
    """One :class:`Motion` per frame from a config's ``animation`` section (beat schedules need ``fps``)."""
    n = animation.frames
    cols = {
        name: parse_schedule(getattr(animation, name), f"animation.{name}").values(n, fps=fps)
        for name in ("zoom", "angle", "translation_x", "translation_y")
    }
    return [Motion(*(cols[k][t] for k in ("zoom", "angle", "translation_x", "translation_y"))) for t in range(n)]


def affine_matrix(motion: Motion, height: int, width: int) -> torch.Tensor:
    """The ``(1,2,3)`` source-to-destination matrix: scale and rotate about the centre, then shift."""
    from kornia.geometry.transform import get_rotation_matrix2d

    center = torch.tensor([[(width - 1) / 2, (height - 1) / 2]], dtype=torch.float32)
    m = get_rotation_matrix2d(
        center, torch.tensor([motion.angle], dtype=torch.float32), torch.full((1, 2), motion.zoom, dtype=torch.float32)
    )
    m[:, 0, 2] += motion.translation_x
    m[:, 1, 2] += motion.translation_y
    return m


def warp(image: torch.Tensor, motion: Motion, border_mode: str = "reflect") -> torch.Tensor:
    """Apply ``motion`` to ``(B,3,H,W)`` images; returns the same size."""
    if motion.is_identity:
        return image
    from kornia.geometry.transform import warp_affine

    h, w = image.shape[-2:]
    m = affine_matrix(motion, h, w).to(image.device, image.dtype).expand(image.shape[0], 2, 3)
    return warp_affine(image, m, dsize=(h, w), mode="bilinear", padding_mode=_PADDING[border_mode], align_corners=True)
