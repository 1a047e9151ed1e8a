"""The bundled default preset really shows its prompt: a short render judged by the toy CLIP.

The default preset is what a newcomer renders first (README's main job), offline, with the toy pack.
These tests render a short version of it — the same settings, fewer frames — and check the pictures,
not just that files exist.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vqclip.settings.render import load_config
from vqclip.models.clip import load_perceptor
from vqclip.production.render import render
from vqclip.toy.data import COLOURS, SHAPES, caption
from vqclip.toy.metrics import dominant_colour

SHORT = ["animation.frames=6"]  # the default's own settings, a quarter of its frames


def _frames01(paths) -> torch.Tensor:
    arrays = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255 for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def toy_clip():
    return load_perceptor("toy")


@pytest.fixture(scope="module")
def default_render(tmp_path_factory):
    cfg = load_config("default", SHORT)
    return cfg, render(cfg, tmp_path_factory.mktemp("default"))


def test_toy_clip_ranks_the_prompt_first_among_every_other_caption(default_render, toy_clip):
    cfg, result = default_render
    intended = cfg.prompts.texts
    assert intended == caption("red", "circle", "blue") and result.completed and len(result.frames) == 6
    # every caption the toy world has: other colours, other backgrounds and other shapes (ring included)
    distractors = [caption(c, s, b) for c in COLOURS for s in SHAPES for b in COLOURS if c != b and caption(c, s, b) != intended]
    assert len(distractors) == 279
    images = F.interpolate(_frames01(result.frames), size=(toy_clip.input_size,) * 2, mode="area")
    with torch.no_grad():
        scores = toy_clip.encode_image(images) @ toy_clip.encode_text([intended] + distractors).T
    first = (scores.argmax(dim=1) == 0).float().mean().item()
    assert first >= 0.8, f"the intended caption ranks first on {first:.0%} of frames"


def test_another_prompt_gives_another_dominant_colour(default_render, tmp_path):
    _, result = default_render
    default_colour = dominant_colour(_frames01(result.frames[-1:]))
    assert default_colour in ("red", "blue")
    other = render(load_config("default", SHORT + ["animation.frames=1", "prompts.texts=a yellow star on a green background"]), tmp_path)
    other_colour = dominant_colour(_frames01(other.frames))
    assert other_colour in ("yellow", "green") and other_colour != default_colour
