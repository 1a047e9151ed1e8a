"""The toy presets end to end on the shipped toy diffusion pack (CPU, seconds): same code paths as SD 1.5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("diffusers")

from vqclip.production.render import render  # noqa: E402
from vqclip.settings.render import load_config  # noqa: E402
toy_diffusion = pytest.importorskip("vqclip.toy.diffusion", reason="the toy diffusion pack is not in this build")
toy_diffusion_dir, toy_motion_adapter_dir = toy_diffusion.toy_diffusion_dir, toy_diffusion.toy_motion_adapter_dir

pytestmark = pytest.mark.skipif(
    not (toy_diffusion_dir() / "unet").is_dir() or not (toy_motion_adapter_dir() / "config.json").is_file(),
    reason="the toy diffusion pack is not built (python -m tools.train_toy_diffusion)",
)
QUICK = ["output.video=false"]
PRESETS = Path(__file__).resolve().parents[1] / "presets"


def frames(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)).astype(np.float32) for p in result.frames]


def flicker(images: list[np.ndarray]) -> float:
    """Mean absolute change between consecutive frames (0-255 scale)."""
    return float(np.mean([np.abs(a - b).mean() for a, b in zip(images, images[1:])]))


def test_t2v_zero_toy_is_steadier_than_its_ablation(tmp_path):
    result = render(load_config(PRESETS / "t2v_zero_toy.yaml", QUICK), tmp_path / "t2v")
    assert result.completed and len(result.frames) == 12
    plain = render(load_config(PRESETS / "t2v_zero_toy.yaml", QUICK + [
        "generation.t2v_zero.cross_frame_attention=false", "generation.t2v_zero.motion_in_latents=false"]), tmp_path / "plain")
    # cross-frame attention + motion in the latents (paper 001) against independent frames
    assert flicker(frames(result)) < 0.5 * flicker(frames(plain))


def test_animatediff_toy_morphs_red_into_blue(tmp_path):
    result = render(load_config(PRESETS / "animatediff_toy.yaml", QUICK), tmp_path / "ad")
    images = frames(result)
    assert result.completed and len(images) == 16
    first, last = images[0].reshape(-1, 3).mean(0), images[-1].reshape(-1, 3).mean(0)
    assert first[0] > first[2] and last[2] > last[0]  # red circle first, blue circle last (the timeline's scenes)
