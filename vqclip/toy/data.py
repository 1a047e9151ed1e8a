"""Synthetic scenes for the toy pack: one coloured shape on a plain background, with its caption.

Everything is drawn with PIL from a seeded numpy generator, so a seed always gives the same
images. The vocabularies are deliberately small: a tiny CLIP must learn them on a CPU in minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

# Saturated, well separated RGB anchors: a tiny model must tell them apart after augmentation.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (35, 75, 220),
    "purple": (135, 50, 175),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
TEMPLATE = "{a} {colour} {shape} on {b} {background} background"  # a/an as English wants: users type it so

_SUPERSAMPLE = 4  # draw at 4x and downsample with a box filter: anti-aliased edges
_COLOUR_JITTER = 10  # +- per RGB channel (0-255), so colours are a small cloud, not one point


@dataclass(frozen=True)
class Scene:
    """One synthetic scene: what is drawn where (geometry relative to the image side)."""

    shape: str
    colour: str
    background: str
    size: float  # outer diameter as a fraction of the image side
    cx: float  # centre, fraction of the image side
    cy: float
    angle: float  # rotation in degrees (ignored for circle and ring)
    jitter: tuple[int, ...] = (0, 0, 0, 0, 0, 0)  # RGB offsets: shape then background

    @property
    def caption(self) -> str:
        """The full caption, e.g. "a red circle on a blue background"."""
        return caption(self.colour, self.shape, self.background)


def caption(colour: str, shape: str, background: str) -> str:
    """The caption template filled in ("an orange star on a blue background"); prompts use the same text."""
    return TEMPLATE.format(a=_article(colour), colour=colour, shape=shape, b=_article(background), background=background)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def all_captions() -> list[str]:
    """Every caption the generator can produce (colour != background)."""
    return [caption(c, s, b) for c in COLOURS for s in SHAPES for b in COLOURS if b != c]


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene: shape, two different colours, size, position and angle."""
    names = list(COLOURS)
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour, background = (names[i] for i in rng.choice(len(names), size=2, replace=False))
    size = float(rng.uniform(0.35, 0.7))
    half = size / 2
    cx, cy = (float(rng.uniform(half + 0.03, 1 - half - 0.03)) for _ in range(2))
    angle = float(rng.uniform(-15, 15))
    jitter = tuple(int(v) for v in rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, size=6))
    return Scene(shape, colour, background, size, cx, cy, angle, jitter)


def _polygon(cx: float, cy: float, radii: list[float], angle: float, start: float) -> list[tuple[float, float]]:
    n = len(radii)
    pts = []
    for i, r in enumerate(radii):
        a = math.radians(start + angle + 360.0 * i / n)
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def _rgb(name: str, offsets: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(int(np.clip(v + o, 0, 255)) for v, o in zip(COLOURS[name], offsets))


def render_scene(scene: Scene, size: int = 64) -> np.ndarray:
    """Draw a scene as a (size, size, 3) uint8 RGB array."""
    big = size * _SUPERSAMPLE
    fg, bg = _rgb(scene.colour, scene.jitter[:3]), _rgb(scene.background, scene.jitter[3:])
    img = Image.new("RGB", (big, big), bg)
    draw = ImageDraw.Draw(img)
    cx, cy, r = scene.cx * big, scene.cy * big, scene.size * big / 2
    if scene.shape in ("circle", "ring"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
        if scene.shape == "ring":
            ri = 0.55 * r  # a thick ring: still a ring after downsampling to 64 px
            draw.ellipse((cx - ri, cy - ri, cx + ri, cy + ri), fill=bg)
    elif scene.shape == "square":
        draw.polygon(_polygon(cx, cy, [r] * 4, scene.angle, 45.0), fill=fg)  # r is its half-diagonal
    elif scene.shape == "triangle":
        # centroid at the centre; push down a little so the triangle fills its box
        draw.polygon(_polygon(cx, cy + 0.15 * r, [r * 1.1] * 3, scene.angle, -90.0), fill=fg)
    elif scene.shape == "star":
        draw.polygon(_polygon(cx, cy, [r, r * 0.45] * 5, scene.angle, -90.0), fill=fg)
    else:
        raise ValueError(f"scene.shape={scene.shape!r} is not one of {SHAPES}")
    return np.asarray(img.resize((size, size), Image.BOX))


def make_dataset(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, list[Scene]]:
    """`n` scenes from `seed`: images (n, size, size, 3) uint8 and their Scene records."""
    if n < 0:
        raise ValueError(f"n={n} must be >= 0")
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, scene in enumerate(scenes):
        images[i] = render_scene(scene, size)
    return images, scenes


def contact_sheet(images: np.ndarray, cols: int = 8, scale: int = 2) -> Image.Image:
    """Tile (N, H, W, 3) uint8 images into one PIL image, for looking at samples."""
    n, h, w, _ = images.shape
    rows = max(1, math.ceil(n / cols))
    sheet = np.full((rows * (h + 2), cols * (w + 2), 3), 128, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        sheet[r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = images[i]
    out = Image.fromarray(sheet)
    return out.resize((out.width * scale, out.height * scale), Image.NEAREST) if scale != 1 else out
