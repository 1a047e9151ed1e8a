"""Frame-to-frame motion: zoom about the centre, rotation direction, translation, border modes, schedules."""

import pytest
import torch

from vqclip.production.animate import Motion, motion_schedule, warp
from vqclip.settings.render import load_config


def _square(size=64, half=8):
    img = torch.zeros(1, 3, size, size)
    c = size // 2
    img[:, :, c - half : c + half, c - half : c + half] = 1.0
    return img


def test_zoom_two_doubles_the_centre():
    out = warp(_square(), Motion(zoom=2.0))
    mask = out[0, 0] > 0.5
    ys, xs = mask.nonzero(as_tuple=True)
    # the 16-pixel centre square becomes 32 pixels wide, still centred
    assert (int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())) == (16, 47, 16, 47)
    assert int(mask.sum()) == 32 * 32
    assert out[0, :, 32, 32].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_translation_and_rotation_directions():
    img = torch.zeros(1, 3, 64, 64)
    img[:, :, :, 40:] = 1.0  # the right part is white
    shifted = warp(img, Motion(translation_x=8), "zeros")
    assert int((shifted[0, 0] > 0.5).nonzero()[:, 1].min()) == 48
    turned = warp(img, Motion(angle=90))  # counter-clockwise: the right side goes to the top
    assert turned[0, 0, :16, 32].mean() > 0.9 and turned[0, 0, 48:, 32].mean() < 0.1


def test_border_modes_fill_uncovered_edges():
    img = torch.full((1, 3, 32, 32), 0.5)
    assert warp(img, Motion(zoom=0.5), "zeros")[0, 0, 0, 0] == 0.0
    assert warp(img, Motion(zoom=0.5), "replicate")[0, 0, 0, 0] == pytest.approx(0.5)
    assert warp(img, Motion(zoom=0.5), "reflect")[0, 0, 0, 0] == pytest.approx(0.5)
    assert warp(img, Motion()) is img  # identity is free


def test_motion_schedule_from_config():
    cfg = load_config({"prompts": {"texts": "x"}, "animation": {"frames": 5, "zoom": "0:(1.0), 4:(1.2)", "angle": "2*t"}})
    ms = motion_schedule(cfg.animation)
    assert [m.zoom for m in ms] == pytest.approx([1.0, 1.05, 1.1, 1.15, 1.2])
    assert [m.angle for m in ms] == [0.0, 2.0, 4.0, 6.0, 8.0]
