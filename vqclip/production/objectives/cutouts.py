"""The ``cutouts`` objective (VQGAN-CLIP): random crops of the frame through every perceptor, spherical prompt loss."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vqclip.errors import ConfigError
from vqclip.production.engines.base import EngineContext, Objective

__all__ = ["CutoutsObjective", "CutoutsOptions"]


@dataclass
class CutoutsOptions:
    """Settings of the ``cutouts`` objective (``generation.cutouts`` in a preset)."""

    mode: str = "crops"  # crops | pooled; see vqclip.production.cutouts.CUTOUT_MODES
    cutn: int = field(default=32, metadata={"range": (1, 1024)})  # random crops of the frame per step, all through CLIP in one batch
    cut_pow: float = field(default=1.0, metadata={"range": (0, 10)})  # crop size distribution: >1 favours small crops (detail), <1 large ones (composition)
    augmentations: list[str] = field(default_factory=lambda: ["affine", "perspective", "jitter", "erasing"])  # see vqclip.production.cutouts.AUGMENTATIONS


class CutoutsObjective(Objective):
    """Cutouts of the frame, one batch per perceptor input size, scored by :meth:`PromptBank.loss`."""

    name = "cutouts"
    Options = CutoutsOptions

    @classmethod
    def validate_options(cls, options: CutoutsOptions, key: str) -> None:
        """mode from CUTOUT_MODES (with what each looks like), augmentations from the known names; ranges are in the fields."""
        from vqclip.production.cutouts import AUGMENTATIONS, CUTOUT_MODES

        if options.mode not in CUTOUT_MODES:
            allowed = "; ".join(f"{k} ({v})" for k, v in CUTOUT_MODES.items())
            raise ConfigError(f"{key}.mode: {options.mode!r} is not allowed; use one of: {allowed}")
        for i, a in enumerate(options.augmentations):
            if a not in AUGMENTATIONS:
                raise ConfigError(f"{key}.augmentations[{i}]: {a!r} is not allowed; use names from {', '.join(AUGMENTATIONS)}")

    @classmethod
    def build(cls, ctx: EngineContext, perceptors: list, bank) -> "CutoutsObjective":
        """One cutout maker per perceptor input size."""
        from vqclip.production.cutouts import Cutouts

        o: CutoutsOptions = ctx.options(cls.name)
        makers = {s: Cutouts(s, o.cutn, o.cut_pow, o.augmentations, o.mode).to(ctx.device) for s in sorted({p.input_size for p in perceptors})}
        return cls(perceptors, bank, makers)

    def __init__(self, perceptors: list, bank, makers: dict):
        self.perceptors, self.bank, self.makers = perceptors, bank, makers

    def loss(self, frame: int, iteration: int, image: torch.Tensor):
        """Spherical distance of every perceptor's cutout embeddings to the frame's prompts."""
        # Every size's cutouts first, then the encodes: the order kornia draws random numbers in.
        batches = {s: maker(image) for s, maker in self.makers.items()}
        embeds = [p.encode_image(batches[p.input_size]) for p in self.perceptors]
        return self.bank.loss(frame, embeds)
