"""The toy presets end to end on the shipped toy diffusion pack (CPU, seconds): same code paths as SD 1.5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import torch

from vqclip.models.clip import load_perceptor
from vqclip.production.render import render
from vqclip.settings.render import load_config
from vqclip.production.prompts import build_timeline
from vqclip.toy.metrics import VideoJudgement, frame_prompts, judge_video

QUICK = ["output.video=false"]
PRESETS = Path(__file__).resolve().parents[1] / "presets"


def frames(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)).astype(np.float32) for p in result.frames]


def flicker(images: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive frames (0-255 scale)."""
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(images, images[1:])]))


def judge(result) -> VideoJudgement:
    """The render's frames judged by the toy CLIP against each frame's heaviest prompt."""
    cfg = load_config(result.settings)
    x = torch.from_numpy(np.stack(frames(result)) / 255).permute(0, 3, 1, 2).float()
    return judge_video(x, frame_prompts(build_timeline(cfg.prompts, len(result.frames)), len(result.frames)), load_perceptor("toy"))


def test_t2v_zero_toy_is_steadier_than_its_ablation(tmp_path):
    result = render(load_config(PRESETS / "t2v_zero_toy.yaml", QUICK), tmp_path / "t2v")
    assert result.completed and len(result.frames) == 12
    plain = render(load_config(PRESETS / "t2v_zero_toy.yaml", QUICK + [
        "generation.t2v_zero.cross_frame_attention=false", "generation.t2v_zero.motion_in_latents=false"]), tmp_path / "plain")
    # cross-frame attention + motion in the latents (paper 001) against independent frames
    assert flicker(frames(result)) < 0.5 * flicker(frames(plain))

    # Judged by the toy CLIP: every frame shows its prompt, neighbours agree, and the star moves as the
    # camera schedule says (animation.translation_x: 2 px per frame). Measured: 12/12 ranked first of
    # 280 captions, consistency 0.977, shift 20.6 px against 22 expected.
    judged = judge(result)
    assert judged.ranked >= 0.8, judged.top
    assert judged.consistency >= 0.9
    shift, expected = judged.centroids[-1][0] - judged.centroids[0][0], 2.0 * (len(judged.top) - 1)
    assert abs(shift - expected) <= 0.25 * expected, judged.centroids


def test_animatediff_toy_shows_each_scene_and_moves(tmp_path):
    result = render(load_config(PRESETS / "animatediff_toy.yaml", QUICK), tmp_path / "ad")
    assert result.completed and len(result.frames) == 16
    # Measured: 15/16 frames ranked to their prompt (the one mixed frame between the scenes reads
    # purple), neighbour consistency 0.94, no identity flips, the triangle drifts 11 px right.
    judged = judge(result)
    assert judged.ranked >= 0.8, judged.top
    assert judged.identity_flips == 0, judged.top
    assert judged.consistency >= 0.9
    # Motion a still picture would not have, and not flicker either: the centroid travels >= 5 px
    # (8 % of the side; a still image travels 0) along a steady path (x rises with time, r >= 0.8).
    x = np.array([c[0] for c in judged.centroids])
    assert abs(x[-1] - x[0]) >= 5.0, x
    assert abs(np.corrcoef(np.arange(len(x)), x)[0, 1]) >= 0.8, x
