"""The synthetic scene generator: deterministic by seed, captions that say what is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from vqclip.toy.data import COLOURS, SHAPES, Scene, all_captions, caption, contact_sheet, make_dataset, render_scene


def test_same_seed_same_images_other_seed_other_images():
    a, sa = make_dataset(16, seed=7)
    b, sb = make_dataset(16, seed=7)
    c, _ = make_dataset(16, seed=8)
    assert a.dtype == np.uint8 and a.shape == (16, 64, 64, 3)
    assert np.array_equal(a, b) and sa == sb
    assert not np.array_equal(a, c)


def test_captions_follow_the_template_and_cover_the_vocabulary():
    _, scenes = make_dataset(400, seed=0)
    for s in scenes[:50]:
        words = s.caption.split()
        assert words[1:3] == [s.colour, s.shape] and words[5:] == [s.background, "background"], s.caption
    assert all(s.colour != s.background for s in scenes)
    assert {s.shape for s in scenes} == set(SHAPES)
    assert {s.colour for s in scenes} == set(COLOURS) == {s.background for s in scenes}
    assert set(s.caption for s in scenes) <= set(all_captions())
    assert len(all_captions()) == len(COLOURS) * (len(COLOURS) - 1) * len(SHAPES)


@pytest.mark.parametrize("shape", SHAPES)
def test_pixels_show_the_caption(shape):
    scene = Scene(shape, "red", "blue", size=0.6, cx=0.5, cy=0.5, angle=0.0)
    img = render_scene(scene, size=64).astype(int)
    corner, centre = img[1, 1], img[32, 32]
    near_edge = img[32, 32 - (10 if shape == "square" else 14)]  # inside the outline (radius 19 px)
    assert np.abs(corner - COLOURS["blue"]).max() <= 2
    # a ring's hole shows the background; every other shape covers its centre
    expected_centre = "blue" if shape == "ring" else "red"
    assert np.abs(centre - COLOURS[expected_centre]).max() <= 2
    if shape in ("circle", "ring", "square"):
        assert np.abs(near_edge - COLOURS["red"]).max() <= 2


def test_shapes_stay_inside_the_image():
    images, scenes = make_dataset(300, seed=3)
    for img, s in zip(images, scenes):
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]]).astype(int)
        bg = np.array(COLOURS[s.background]) + np.array(s.jitter[3:])
        assert np.abs(border - np.clip(bg, 0, 255)).max() <= 2, s


def test_other_sizes_and_contact_sheet():
    scene = Scene("star", "yellow", "black", 0.5, 0.5, 0.5, 10.0)
    assert render_scene(scene, size=32).shape == (32, 32, 3)
    images, _ = make_dataset(10, seed=1)
    sheet = contact_sheet(images, cols=4, scale=1)
    assert sheet.size == (4 * 66, 3 * 66)


def test_bad_input_is_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="hexagon.*circle"):
        render_scene(Scene("hexagon", "red", "blue", 0.5, 0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match="n=-1"):
        make_dataset(-1, seed=0)
    assert caption("red", "circle", "blue") == "a red circle on a blue background"
    assert caption("orange", "star", "orange") == "an orange star on an orange background"
