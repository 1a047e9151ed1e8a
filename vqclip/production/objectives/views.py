"""The ``views`` objective (paper 000, eqs. 1-3): augmented views, cosine to the prompts, negatives, perceptor alternation.

Each step encodes ``count`` views of the frame — resized so its short side is the perceptor's input
size, a random perspective (white fill) and a random resized crop to a square — and minimises
``-sum_n w_n cos(E(view), E(prompt_n)) + sum_neg w_neg cos(E(view), E(neg))``, averaged over views.
Several perceptors (the authors use ViT-B/32 and ViT-B/16) are alternated step by step
(``perceptor_mode: alternate``) or summed every step (``sum``), each with its weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vqclip.errors import ConfigError
from vqclip.production.engines.base import EngineContext, Objective

__all__ = ["ViewsObjective", "ViewsOptions", "PixelViews", "parse_negative", "PERCEPTOR_MODES"]

PERCEPTOR_MODES = ("alternate", "sum")


@dataclass
class ViewsOptions:
    """Settings of the ``views`` objective (``generation.views`` in a preset); defaults follow paper 000's code."""

    count: int = field(default=4, metadata={"range": (1, None)})  # augmented views per step: random perspective + random resized crop (no cutout grid)
    crop_scale: list = field(default_factory=lambda: [0.7, 0.999])  # area range of the random resized crop (the authors')
    distortion: float = field(default=0.5, metadata={"range": (0, 1), "open_low": False})  # random perspective distortion scale (the authors')
    perceptor_mode: str = field(default="alternate", metadata={"choices": PERCEPTOR_MODES})  # alternate: one perceptor per step, in turn (the authors'); sum: all every step
    negative_prompts: list = field(default_factory=lambda: ["Words and text."])  # pushed away from, 'text[:weight]'


def parse_negative(text: str, key: str) -> tuple[str, float]:
    """``'text[:weight]'`` -> (text, weight); the weight defaults to 1."""
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            return head.strip(), float(tail)
        except ValueError:
            pass
    if not text.strip():
        raise ConfigError(f"{key}: an empty negative prompt; write 'text[:weight]'")
    return text.strip(), 1.0


class PixelViews(torch.nn.Module):
    """k augmented views of a frame for a perceptor of input size S: short side to S, random perspective, random resized crop."""

    def __init__(self, size: int, views: int = 4, crop_scale=(0.7, 0.999), distortion: float = 0.5):
        super().__init__()
        import kornia.augmentation as K

        self.size, self.views = int(size), int(views)
        self.perspective = K.RandomPerspective(distortion_scale=distortion, p=1.0)
        self.crop = K.RandomResizedCrop((self.size, self.size), scale=tuple(crop_scale))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(1,3,H,W)`` -> ``(views,3,S,S)``, differentiable with respect to the image."""
        h, w = image.shape[-2:]
        s = self.size / min(h, w)
        # Resize once so the short side is S: CLIP looks at the whole frame, and at 720p the
        # augmentations then run on ~400x224 instead of the full frame.
        size = (max(self.size, round(h * s)), max(self.size, round(w * s)))
        if size != (h, w):
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
        batch = image.expand(self.views, -1, -1, -1)
        # Perspective with a white border, as the authors' fill=1: warp (x - 1) with zero fill, add 1 back.
        batch = self.perspective(batch - 1.0) + 1.0
        return self.crop(batch)


class ViewsObjective(Objective):
    """Paper 000's eq. 3 without the stability term (the step adds that for every objective)."""

    name = "views"
    Options = ViewsOptions

    @classmethod
    def validate_options(cls, options: ViewsOptions, key: str) -> None:
        """Check crop_scale and the negative prompts (count, distortion and perceptor_mode are checked by their fields)."""
        scale = tuple(options.crop_scale) if isinstance(options.crop_scale, (list, tuple)) else ()
        if len(scale) != 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scale) \
                or not 0 < scale[0] <= scale[1] <= 1:
            raise ConfigError(f"{key}.crop_scale: {options.crop_scale!r} is not allowed; use [min, max] with 0 < min <= max <= 1")
        if not isinstance(options.negative_prompts, (list, tuple)) or not all(isinstance(p, str) for p in options.negative_prompts):
            raise ConfigError(f"{key}.negative_prompts: {options.negative_prompts!r} is not allowed; use a list of 'text[:weight]' strings")
        for p in options.negative_prompts:
            parse_negative(p, f"{key}.negative_prompts")

    @classmethod
    @torch.no_grad()
    def build(cls, ctx: EngineContext, perceptors: list, bank) -> "ViewsObjective":
        """Views per perceptor and the negative prompts' embeddings; prompt embeddings come from the bank."""
        o: ViewsOptions = ctx.options(cls.name)
        negatives = [parse_negative(t, "generation.views.negative_prompts") for t in o.negative_prompts]
        neg_embeds, views = [], []
        for perceptor in perceptors:
            neg = perceptor.encode_text([t for t, _ in negatives]).float() if negatives else torch.zeros(0, 1)
            neg_embeds.append(F.normalize(neg, dim=-1).to(ctx.device))
            views.append(PixelViews(perceptor.input_size, o.count, o.crop_scale, o.distortion).to(ctx.device))
        neg_w = torch.tensor([w for _, w in negatives], dtype=torch.float32, device=ctx.device)
        return cls(perceptors, bank, views, neg_embeds, neg_w, o.perceptor_mode)

    def __init__(self, perceptors, bank, views, negatives, negative_weights, perceptor_mode: str = "alternate"):
        self.perceptors, self.bank, self.views = perceptors, bank, views
        self.negatives, self.negative_weights, self.perceptor_mode = negatives, negative_weights, perceptor_mode

    def loss(self, frame: int, iteration: int, image: torch.Tensor):
        """``-sum w cos(E(view), E(prompt))`` plus the negatives, over this step's perceptors (one in turn, or all)."""
        total = image.new_zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        active = self.bank.timeline.prompts_at(frame)
        n = len(self.perceptors)
        chosen = range(n) if self.perceptor_mode == "sum" or n == 1 else [iteration % n]
        for i in chosen:
            emb = F.normalize(self.perceptors[i].encode_image(self.views[i](image)).float(), dim=-1)
            text = total.new_zeros(())
            for prompt, scene_w in active:
                sim = (emb @ F.normalize(self.bank.embeds[i][prompt].float(), dim=-1)).mean()
                text = text - prompt.weight * scene_w * sim
                name = ("image:" if prompt.is_image else "") + prompt.text
                parts[name] = parts.get(name, 0.0) + float(sim.detach())
            if len(self.negatives[i]):
                text = text + ((emb @ self.negatives[i].T).mean(0) * self.negative_weights).sum()
            total = total + float(self.bank.perceptor_weights[i]) * text
        return total, parts
