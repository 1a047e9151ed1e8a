"""The toy pack's quality measures: zero-shot accuracy of a CLIP on synthetic scenes, PSNR, and a toy video judged frame by frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from vqclip.toy.data import COLOURS, SHAPES, Scene, caption

ATTRIBUTES = ("colour", "shape", "background")


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)


def _candidates(scene: Scene, attribute: str) -> tuple[list[str], int]:
    """Captions that differ from the scene's own in one attribute only, and the true one's index."""
    if attribute == "colour":
        options = [c for c in COLOURS if c != scene.background]
        texts = [caption(c, scene.shape, scene.background) for c in options]
        return texts, options.index(scene.colour)
    if attribute == "shape":
        texts = [caption(scene.colour, s, scene.background) for s in SHAPES]
        return texts, SHAPES.index(scene.shape)
    if attribute == "background":
        options = [b for b in COLOURS if b != scene.colour]
        texts = [caption(scene.colour, scene.shape, b) for b in options]
        return texts, options.index(scene.background)
    raise ValueError(f"attribute={attribute!r} is not one of {ATTRIBUTES}")


@torch.no_grad()
def zero_shot_accuracy(
    encode_image: Callable[[torch.Tensor], torch.Tensor],
    encode_text: Callable[[list[str]], torch.Tensor],
    images: np.ndarray,
    scenes: Sequence[Scene],
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy per attribute: pick the best of the captions that vary only that attribute.

    `encode_image` takes (B, 3, H, W) in [0, 1] and `encode_text` a list of strings; both return
    L2-normalised embeddings (the `Perceptor` interface). Also reports `caption`: the full
    caption ranked first among all captions the generator can make.
    """
    texts = sorted({t for s in scenes for a in ATTRIBUTES for t in _candidates(s, a)[0]})
    index = {t: i for i, t in enumerate(texts)}
    text_emb = encode_text(texts).float()
    image_emb = torch.cat(
        [encode_image(images_to_tensor(images[i : i + batch_size])).float() for i in range(0, len(images), batch_size)]
    )
    sims = image_emb @ text_emb.T
    correct = {a: 0 for a in ATTRIBUTES}
    for row, scene in zip(sims, scenes):
        for a in ATTRIBUTES:
            options, truth = _candidates(scene, a)
            scores = row[[index[t] for t in options]]
            correct[a] += int(scores.argmax().item() == truth)
    result = {a: correct[a] / max(1, len(scenes)) for a in ATTRIBUTES}
    all_texts = [caption(c, s, b) for c in COLOURS for s in SHAPES for b in COLOURS if b != c]
    full = image_emb @ encode_text(all_texts).float().T
    truth = torch.tensor([all_texts.index(s.caption) for s in scenes])
    result["caption"] = (full.argmax(dim=1) == truth).float().mean().item() if len(scenes) else 0.0
    return result


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two image batches in [0, 1] (mean squared error over all)."""
    mse = torch.mean((a.float().clamp(0, 1) - b.float().clamp(0, 1)) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * float(np.log10(1.0 / mse))


def colour_fractions(image01: torch.Tensor) -> dict[str, float]:
    """Share of pixels nearest to each palette colour, largest first, for a (3,H,W) or (1,3,H,W) image in [0,1]."""
    x = image01.detach().float().reshape(3, -1).T  # (H*W, 3)
    palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255.0
    nearest = torch.cdist(x, palette).argmin(dim=1)
    counts = torch.bincount(nearest, minlength=len(COLOURS)).float() / max(1, x.shape[0])
    pairs = sorted(zip(COLOURS, counts.tolist()), key=lambda kv: -kv[1])
    return dict(pairs)


def dominant_colour(image01: torch.Tensor) -> str:
    """The palette colour (see `vqclip.toy.data.COLOURS`) nearest to the most pixels."""
    return next(iter(colour_fractions(image01)))


@dataclass
class VideoJudgement:
    """How a toy video reads to the toy CLIP, frame by frame, and how it moves."""

    top: list[str]  # each frame's best caption among all of the toy world's captions
    ranked: float  # share of frames whose best caption is the frame's own prompt
    consistency: float  # mean cosine similarity of neighbouring frames' image embeddings
    frame_difference: float  # mean |frame t+1 - frame t| over pixels and channels, images in [0, 1]
    identity_flips: int  # neighbours whose best captions name different shapes while their prompts name one
    centroids: list[tuple[float, float]]  # (x, y) in pixels of what differs from the corner (background) colour

    def summary(self) -> dict:
        """The numbers as a JSON-ready dict (centroids rounded to 0.1 px)."""
        return {
            "frames": len(self.top), "ranked": round(self.ranked, 4), "consistency": round(self.consistency, 4),
            "frame_difference": round(self.frame_difference, 4), "identity_flips": self.identity_flips,
            "centroid_x": [round(x, 1) for x, _ in self.centroids], "centroid_y": [round(y, 1) for _, y in self.centroids],
        }


def _shape_of(text: str) -> str:
    return next((s for s in SHAPES if f" {s} " in f" {text} "), "")


def shape_centroid(image01: torch.Tensor, threshold: float = 0.3) -> tuple[float, float]:
    """(x, y) in pixels of the pixels whose colour differs from the top-left 3x3 corner's by > ``threshold`` (L1)."""
    background = image01[:, :3, :3].reshape(3, -1).mean(1)[:, None, None]
    ys, xs = torch.nonzero((image01 - background).abs().sum(0) > threshold, as_tuple=True)
    return (float(xs.float().mean()), float(ys.float().mean())) if len(xs) else (float("nan"), float("nan"))


def judge_video(frames01: torch.Tensor, prompts: Sequence[str], perceptor) -> VideoJudgement:
    """Judge (N, 3, H, W) frames in [0, 1] against each frame's prompt with a toy ``perceptor`` (its encode_image/_text)."""
    from vqclip.toy.data import all_captions

    if len(prompts) != len(frames01):
        raise ValueError(f"judge_video: {len(frames01)} frames but {len(prompts)} prompts")
    captions = all_captions()
    with torch.no_grad():
        image = torch.nn.functional.normalize(perceptor.encode_image(frames01.float()).float(), dim=-1)
        text = torch.nn.functional.normalize(perceptor.encode_text(captions).float(), dim=-1)
    top = [captions[i] for i in (image @ text.T).argmax(1).tolist()]
    flips = sum(
        _shape_of(a) != _shape_of(b) for a, b, pa, pb in zip(top, top[1:], prompts, prompts[1:]) if _shape_of(pa) == _shape_of(pb)
    )
    return VideoJudgement(
        top=top,
        ranked=sum(t == p for t, p in zip(top, prompts)) / max(1, len(top)),
        consistency=float((image[1:] * image[:-1]).sum(1).mean()) if len(top) > 1 else 1.0,
        frame_difference=float((frames01[1:] - frames01[:-1]).abs().mean()) if len(top) > 1 else 0.0,
        identity_flips=int(flips),
        centroids=[shape_centroid(f) for f in frames01],
    )


def frame_prompts(timeline, frames: int) -> list[str]:
    """Each frame's heaviest text prompt in a render's prompt timeline (the one a frame should show)."""
    out = []
    for f in range(frames):
        texts = timeline.text_targets(f)
        out.append(max(texts, key=lambda t: t[1])[0] if texts else "")
    return out
