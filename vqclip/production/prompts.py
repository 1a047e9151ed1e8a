"""Prompts: the ``text:weight:stop`` syntax, the scene timeline, prompt embeddings and the CLIP loss.

A prompt string is ``text[:weight[:stop]]``; several are joined with ``|``. A negative weight pushes
the picture away from the text; ``stop`` is a distance below which the prompt stops pulling. Image
prompts (``target_images``) use the same syntax with a file path instead of text.

A timeline is a list of scenes, each with its prompts and a number of frames. Across a scene, its
weight falls linearly from 1 to 0 while the next scene's rises from 0 to 1 (eq. 1 of Schaldenbrand
et al., "Text2Video: CLIP-guided pixel-level optimization"): the first frame sees only the first
scene, the last scene holds to the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch

from vqclip.errors import ConfigError

__all__ = [
    "Prompt", "Scene", "Timeline", "PromptBank", "parse_prompt", "parse_prompts", "build_timeline",
    "spherical_dist_loss",
]


@dataclass(frozen=True)
class Prompt:
    """One prompt: a text (or an image path when ``is_image``), its weight and its stop distance."""

    text: str
    weight: float = 1.0
    stop: float = -math.inf
    is_image: bool = False

    def __str__(self) -> str:
        s = self.text
        if self.weight != 1.0 or self.stop != -math.inf:
            s += f":{self.weight:g}"
        if self.stop != -math.inf:
            s += f":{self.stop:g}"
        return s


def _caret_error(key: str, source: str, column: int, problem: str) -> ConfigError:
    return ConfigError(
        f"{key}={source!r}: {problem} (column {column + 1}); a prompt is 'text[:weight[:stop]]', "
        f"several joined by '|'\n    {source}\n    {' ' * column}^"
    )


def _number(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def parse_prompt(
    text: str, key: str = "prompts.texts", is_image: bool = False, source: str | None = None, offset: int = 0
) -> Prompt:
    """Parse ``'text:weight:stop'``; trailing fields count only when they are numbers (paths keep their colons)."""
    source = text if source is None else source
    body, nums = text, []
    # Peel up to two numeric fields off the right, so "http://x" or "a ratio 3:4 scene" stay text.
    for _ in range(2):
        head, sep, tail = body.rpartition(":")
        if not sep:
            break
        value = _number(tail.strip())
        if value is None:
            if tail.strip() == "":
                raise _caret_error(key, source, offset + len(head), "a ':' with no number after it")
            break
        nums.insert(0, value)
        body = head
    if body.strip() == "":
        raise _caret_error(key, source, offset + len(text) - len(text.lstrip()), "the prompt has no text")
    if nums and not math.isfinite(nums[0]):
        raise _caret_error(key, source, offset + len(body), f"weight {nums[0]} is not a finite number")
    if len(nums) > 1 and math.isnan(nums[1]):
        raise _caret_error(key, source, offset + len(body), "stop is not a number")
    weight = nums[0] if nums else 1.0
    stop = nums[1] if len(nums) > 1 else -math.inf
    return Prompt(body.strip(), weight, stop, is_image)


def parse_prompts(value: str | Sequence[str] | None, key: str = "prompts.texts", is_image: bool = False) -> list[Prompt]:
    """Parse ``'a:1 | b:-0.5'`` (or a list of such strings) into prompts."""
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)
    prompts = []
    for i, item in enumerate(items):
        k = key if isinstance(value, str) else f"{key}[{i}]"
        if not isinstance(item, str):
            raise ConfigError(f"{k}: {item!r} is not a prompt; write 'text[:weight[:stop]]' as a string")
        offset = 0
        for part in item.split("|"):
            if part.strip():
                prompts.append(parse_prompt(part, k, is_image, source=item, offset=offset))
            elif len(item.split("|")) > 1:
                raise _caret_error(k, item, max(offset - 1, 0), "an empty prompt between '|'")
            offset += len(part) + 1
    if is_image:
        for p in prompts:
            if not Path(p.text).expanduser().is_file():
                raise ConfigError(f"{key}: image {p.text!r} is not a file; give the path of a PNG or JPEG")
    return prompts


@dataclass(frozen=True)
class Scene:
    """A span of frames with its own text and image prompts."""

    texts: tuple[Prompt, ...]
    images: tuple[Prompt, ...]
    frames: int
    blend: int | None = None  # frames at the end that mix with the next scene; None = all but the first, 0 = a cut


@dataclass(frozen=True)
class Timeline:
    """Scenes in order; ``weights(frame)`` blends neighbouring scenes linearly (paper 000, eq. 1) over each scene's ``blend`` last frames."""

    scenes: tuple[Scene, ...]
    always: tuple[Prompt, ...] = ()  # prompts acting on every frame at full weight (a style)

    @property
    def total_frames(self) -> int:
        """How many frames the scenes add up to."""
        return sum(s.frames for s in self.scenes)

    def weights(self, frame: int) -> list[tuple[int, float]]:
        """``[(scene_index, weight), ...]`` active at ``frame``; weights sum to 1."""
        start = 0
        for i, scene in enumerate(self.scenes):
            if frame < start + scene.frames or i == len(self.scenes) - 1:
                if i == len(self.scenes) - 1:
                    return [(i, 1.0)]
                # the last `mixed` frames mix with the next scene, its weight rising by 1/(mixed+1) a frame;
                # by default every frame but the first mixes (p = k / frames, paper 000's linear blend)
                mixed = scene.frames - 1 if scene.blend is None else scene.blend
                k = frame - start - (scene.frames - mixed) + 1
                p = k / (mixed + 1) if k > 0 else 0.0
                return [(i, 1.0 - p)] + ([(i + 1, p)] if p > 0 else [])
            start += scene.frames
        return [(len(self.scenes) - 1, 1.0)]

    def prompts_at(self, frame: int) -> list[tuple[Prompt, float]]:
        """Every prompt that acts on ``frame`` with its scene weight (0 < weight <= 1)."""
        out = [(p, 1.0) for p in self.always]
        for i, w in self.weights(frame):
            for p in self.scenes[i].texts + self.scenes[i].images:
                out.append((p, w))
        return out

    def text_targets(self, frame: int) -> list[tuple[str, float]]:
        """The text prompts ``frame`` should show, weighted by scene blend x own weight (pushed-away ones left out)."""
        return [(p.text, w * p.weight) for p, w in self.prompts_at(frame) if not p.is_image and p.weight > 0]

    def describe(self, frame: int) -> str:
        """The prompts acting on ``frame`` as one line, for PNG metadata and progress."""
        return " | ".join(f"{p}" + (f" (x{w:.2f})" if w != 1.0 else "") for p, w in self.prompts_at(frame))

    def all_prompts(self) -> list[Prompt]:
        """Every distinct prompt of every scene, in order."""
        seen: dict[Prompt, None] = dict.fromkeys(self.always)
        for s in self.scenes:
            for p in s.texts + s.images:
                seen.setdefault(p)
        return list(seen)


def build_timeline(prompts_cfg, frames: int) -> Timeline:
    """The timeline of a config's ``prompts``: its scenes (top-level prompts then act on every frame), or one scene."""
    texts = parse_prompts(prompts_cfg.texts, "prompts.texts")
    images = parse_prompts(prompts_cfg.target_images, "prompts.target_images", is_image=True)
    if prompts_cfg.scenes:
        scenes = []
        for i, s in enumerate(prompts_cfg.scenes):
            scenes.append(
                Scene(
                    tuple(parse_prompts(s.texts, f"prompts.scenes[{i}].texts")),
                    tuple(parse_prompts(s.target_images, f"prompts.scenes[{i}].target_images", is_image=True)),
                    s.frames,
                    s.blend,
                )
            )
        return Timeline(tuple(scenes), tuple(texts + images))
    return Timeline((Scene(tuple(texts), tuple(images), frames),))


def spherical_dist_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between L2-normalised embeddings (as in k-diffusion's CLIP guidance)."""
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.nn.functional.normalize(y, dim=-1)
    return (x - y).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def load_image01(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An image file as a ``(1,3,H,W)`` float tensor in [0,1]; ``size=(H,W)`` centre-crops and resizes."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        img = Image.open(Path(path).expanduser()).convert("RGB")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read image {str(path)!r}: {exc}") from None
    if size is not None:
        img = ImageOps.fit(img, (size[1], size[0]), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


@dataclass
class PromptBank:
    """Embeddings of every prompt of a timeline for each perceptor, and the CLIP loss of a frame."""

    timeline: Timeline
    perceptor_weights: list[float]
    embeds: list[dict[Prompt, torch.Tensor]] = field(default_factory=list)

    @classmethod
    @torch.no_grad()
    def build(cls, timeline: Timeline, perceptors: Sequence, weights: Sequence[float], device) -> "PromptBank":
        """Encode every text and image prompt once with every perceptor."""
        bank = cls(timeline, list(weights))
        prompts = timeline.all_prompts()
        texts = [p for p in prompts if not p.is_image]
        images = [p for p in prompts if p.is_image]
        for perceptor in perceptors:
            table: dict[Prompt, torch.Tensor] = {}
            if texts:
                e = perceptor.encode_text([p.text for p in texts]).float().to(device)
                table.update(zip(texts, e))
            for p in images:
                s = perceptor.input_size
                table[p] = perceptor.encode_image(load_image01(p.text, (s, s)).to(device)).float()[0]
            bank.embeds.append(table)
        return bank

    def loss(self, frame: int, image_embeds: Iterable[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Weighted CLIP loss of ``frame`` given each perceptor's cutout embeddings ``(cutn, D)``."""
        total = None
        parts: dict[str, float] = {}
        active = self.timeline.prompts_at(frame)
        for table, pw, emb in zip(self.embeds, self.perceptor_weights, image_embeds):
            emb = emb.float()
            for prompt, scene_w in active:
                dist = spherical_dist_loss(emb, table[prompt][None])
                d = dist * math.copysign(1.0, prompt.weight)
                # Below `stop` the prompt is satisfied: keep its value in the loss but stop its pull.
                d = torch.where(d < prompt.stop, d.detach(), d)
                term = d.mean() * abs(prompt.weight) * scene_w * pw
                total = term if total is None else total + term
                name = ("image:" if prompt.is_image else "") + prompt.text
                parts[name] = parts.get(name, 0.0) + float(dist.detach().mean()) * pw / sum(self.perceptor_weights)
        if total is None:
            raise ConfigError("prompts: no text or image prompt acts on frame %d; give prompts.texts" % frame)
        return total, parts
