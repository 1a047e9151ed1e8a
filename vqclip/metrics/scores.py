"""Per-frame scores: CLIP score (torchmetrics' 100·max(cos, 0); papers 001/002), frame consistency, flicker, FVD clips."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vqclip.errors import ConfigError

__all__ = ["clip_embeddings", "clip_scores", "frame_consistency", "flicker", "video_clips", "i3d_features", "c3d_probs", "frames_to_tensor01"]


def frames_to_tensor01(frames: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 -> (N,3,H,W) float32 in [0,1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(255.0)


def _clip_input(x01: torch.Tensor, size: int) -> torch.Tensor:
    # CLIP's own preprocessing: shorter side to `size` (bicubic), centre crop to a square
    h, w = x01.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x01, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


@torch.no_grad()
def clip_embeddings(perceptor, frames: np.ndarray, batch: int = 16, progress=None) -> torch.Tensor:
    """(N, D) L2-normalised CLIP image embeddings of (N,H,W,3) uint8 frames."""
    out = []
    for i in range(0, len(frames), batch):
        x = frames_to_tensor01(frames[i:i + batch]).to(perceptor.device)
        out.append(perceptor.encode_image(_clip_input(x, perceptor.input_size)).float().cpu())
        if progress is not None:
            progress(min(i + batch, len(frames)), len(frames))
    return torch.cat(out)


@torch.no_grad()
def clip_scores(perceptor, image_embeds: torch.Tensor, prompts: list[list[tuple[str, float]]]) -> list[float | None]:
    """Per frame: 100·max(cos(image, text), 0), weight-averaged over the frame's text prompts (None without one)."""
    texts = sorted({t for items in prompts for t, _ in items})
    if not texts:
        return [None] * len(prompts)
    text_embeds = perceptor.encode_text(texts).float().cpu()
    index = {t: i for i, t in enumerate(texts)}
    cos = image_embeds @ text_embeds.T  # (N, T)
    scores: list[float | None] = []
    for f, items in enumerate(prompts):
        total = sum(w for _, w in items)
        if not items or total <= 0:
            scores.append(None)
            continue
        scores.append(float(sum(w * 100.0 * max(cos[f, index[t]].item(), 0.0) for t, w in items) / total))
    return scores


def frame_consistency(image_embeds: torch.Tensor) -> list[float]:
    """CLIP cosine of each pair of consecutive frames (N-1 values)."""
    e = F.normalize(image_embeds.float(), dim=-1)
    return (e[1:] * e[:-1]).sum(dim=-1).tolist()


def flicker(frames: np.ndarray) -> list[float]:
    """Mean absolute difference of each pair of consecutive frames, in 0-255 pixel levels (N-1 values)."""
    f = frames.astype(np.int16)
    return np.abs(f[1:] - f[:-1]).mean(axis=(1, 2, 3)).astype(np.float64).tolist()


def video_clips(frames: np.ndarray, length: int = 16) -> tuple[list[np.ndarray], bool]:
    """Non-overlapping `length`-frame clips of a video (StyleGAN-V's 16); a shorter video is padded with its last frame.

    Returns (clips, padded).
    """
    if len(frames) >= length:
        return [frames[i:i + length] for i in range(0, len(frames) - length + 1, length)], False
    pad = np.repeat(frames[-1:], length - len(frames), axis=0)
    return [np.concatenate([frames, pad])], True


@torch.no_grad()
def c3d_probs(detector, clips: list[np.ndarray], device="cpu", batch: int = 4) -> np.ndarray:
    """(N, 101) UCF-101 class probabilities of (T,H,W,3) uint8 clips, called as StyleGAN-V's video IS does (uint8 in)."""
    out = []
    for i in range(0, len(clips), batch):
        x = torch.from_numpy(np.stack(clips[i:i + batch])).to(device).permute(0, 4, 1, 2, 3).contiguous()  # (B,3,T,H,W) uint8
        out.append(detector(x).detach().double().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def i3d_features(detector, clips: list[np.ndarray], device="cpu", batch: int = 4) -> np.ndarray:
    """(N, 400) I3D features of (T,H,W,3) uint8 clips, called as StyleGAN-V does (rescale, resize, return_features)."""
    if not clips:
        raise ConfigError("FVD: no clips to compute features of")
    out = []
    for i in range(0, len(clips), batch):
        x = torch.from_numpy(np.stack(clips[i:i + batch])).to(device).permute(0, 4, 1, 2, 3).float()  # (B,3,T,H,W) in [0,255]
        feats = detector(x, rescale=True, resize=True, return_features=True)
        out.append(feats.detach().double().cpu().numpy())
    return np.concatenate(out)
