"""Same seed and settings give the same frames, bit for bit on CPU, across refactors of the render loop.

The hashes were rendered from the code before the production seam was reorganised (generators,
objectives, one step function) and must not change without a deliberate reason: a changed hash means
every user's saved settings.yaml would render different frames.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from vqclip.settings.render import load_config
from vqclip.production.render import render

VQGAN_CASE = {
    "prompts": {
        "texts": "a red circle on a blue background:1",
        "scenes": [{"texts": "a red circle", "frames": 2}, {"texts": "a yellow star on a green background", "frames": 2}],
    },
    "size": {"width": 40, "height": 36},
    "models": {"vqgan": "toy", "clip": [{"spec": "toy", "weight": 1.0}]},
    "generation": {
        "seed": 3, "iterations_first_frame": 6, "iterations_per_frame": 3, "lr": 0.2, "stability_weight": 0.3,
        "device": "cpu", "vqgan": {"init": "noise"}, "cutouts": {"cutn": 4, "cut_pow": 0.5, "augmentations": ["affine", "jitter"]},
    },
    "animation": {"zoom": "0:(1.0), 3:(1.05)", "angle": "0:(0), 3:(4)", "translation_x": "0:(0), 3:(2)"},
    "output": {"fps": 4, "images_interval": 0, "video": False, "contact_sheet": False},
}

PIXELS_CASE = {
    "prompts": {"scenes": [{"texts": "a red square on a blue background"}, {"texts": "a blue circle on a yellow background"}]},
    "size": {"width": 40, "height": 32},
    "models": {"clip": [{"spec": "toy", "weight": 1.0}]},
    "generation": {
        "engine": "pixels", "seed": 5, "device": "cpu", "iterations_first_frame": 4, "iterations_per_frame": 2,
        "pixels": {"temperature": 40, "frames_per_prompt": 1, "post_denoise": "median"}, "views": {"count": 2},
    },
    "output": {"fps": 4, "images_interval": 0, "video": False, "contact_sheet": False},
}

EXPECTED = {
    "vqgan": "7abe87b17003e7df94650c0912ac6bc769996e81ae33a9702e10e508fcde9074",
    "pixels": "7f05d56d8f5066a3195e5af1aaf4e323b622ffe05d3f6d076e512e03cb9c5f93",
}


def frames_digest(frames) -> str:
    """sha256 over the RGB pixels of every frame, in order (PNG metadata left out)."""
    h = hashlib.sha256()
    for p in frames:
        h.update(np.asarray(Image.open(p).convert("RGB")).tobytes())
    return h.hexdigest()


@pytest.fixture
def one_thread():
    """Bit-exact CPU results need a fixed thread count (reductions split differently across threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name, case, n_frames", [("vqgan", VQGAN_CASE, 4), ("pixels", PIXELS_CASE, 3)])
def test_frames_are_bit_identical_to_the_pinned_render(name, case, n_frames, tmp_path, one_thread):
    result = render(load_config(case), tmp_path / name)
    assert result.completed and len(result.frames) == n_frames
    assert frames_digest(result.frames) == EXPECTED[name]
