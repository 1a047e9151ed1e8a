"""The eval plot, drawn with PIL (no plotting dependency): CLIP score per frame above, consistency per pair below."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_report"]

_W, _PANEL_H, _LEFT, _RIGHT, _TOP, _GAP = 900, 190, 64, 16, 30, 44
_SCORE, _CONS, _SCENE, _GRID, _INK = (200, 60, 40), (40, 90, 200), (120, 120, 120), (225, 225, 225), (30, 30, 30)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed bitmap font
        return ImageFont.load_default()


def _panel(draw, top: int, n_frames: int, values: list, offset: float, colour, title: str, fmt: str, font) -> None:
    """One time series in a box: x = frame, y = value (auto range), missing values leave gaps."""
    box = (_LEFT, top, _W - _RIGHT, top + _PANEL_H)
    draw.rectangle(box, outline=_INK)
    draw.text((_LEFT, top - 18), title, fill=_INK, font=font)
    vals = [v for v in values if v is not None]
    if not vals:
        draw.text((_LEFT + 10, top + _PANEL_H // 2), "no values", fill=_SCENE, font=font)
        return
    lo, hi = min(vals), max(vals)
    pad = max((hi - lo) * 0.1, 1e-3 * max(1.0, abs(hi)))
    lo, hi = lo - pad, hi + pad
    span_x = max(n_frames - 1, 1)

    def xy(i: float, v: float) -> tuple[float, float]:
        return (_LEFT + (i + offset) / span_x * (box[2] - _LEFT), box[3] - (v - lo) / (hi - lo) * _PANEL_H)

    for k in range(5):  # horizontal grid with labels
        v = lo + (hi - lo) * k / 4
        y = xy(0, v)[1]
        draw.line((_LEFT + 1, y, box[2] - 1, y), fill=_GRID)
        draw.text((4, y - 6), format(v, fmt), fill=_INK, font=font)
    run: list[tuple[float, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if len(run) > 1:
                draw.line(run, fill=colour, width=2)
            run = []
            continue
        run.append(xy(i, v))
    if len(run) > 1:
        draw.line(run, fill=colour, width=2)
    elif len(run) == 1:
        x, y = run[0]
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)


def plot_report(report, path: str | Path) -> Path:
    """Draw the report's per-frame CLIP score and consecutive-frame consistency with scene starts; save a PNG."""
    from PIL import Image, ImageDraw

    path = Path(path)
    height = _TOP + 2 * _PANEL_H + _GAP + 40
    image = Image.new("RGB", (_W, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(13)
    n = max(report.frames, 1)
    score = f"{report.clip_score:.2f}" if report.clip_score is not None else "n/a"
    cons = f"{report.consistency:.4f}" if report.consistency is not None else "n/a"
    top2 = _TOP + _PANEL_H + _GAP
    _panel(draw, _TOP, n, report.clip_score_per_frame, 0.0, _SCORE,
           f"CLIP score per frame (mean {score}, judge {report.clip}{', guided the render' if report.judge_guided else ''})", ".1f", font)
    # a pair's consistency sits between its two frames
    _panel(draw, top2, n, report.consistency_per_pair, 0.5, _CONS, f"consistency of consecutive frames (CLIP cosine, mean {cons})", ".3f", font)
    span_x = max(n - 1, 1)
    for s in report.scene_starts:
        x = _LEFT + s / span_x * (_W - _RIGHT - _LEFT)
        for top in (_TOP, top2):
            for y in range(top, top + _PANEL_H, 8):  # dashed
                draw.line((x, y, x, min(y + 4, top + _PANEL_H)), fill=_SCENE, width=1)
        draw.text((x + 3, _TOP + 3), "scene", fill=_SCENE, font=font)
    for i in range(0, n, max(1, n // 10)):  # frame ticks under the lower panel
        x = _LEFT + i / span_x * (_W - _RIGHT - _LEFT)
        draw.text((x - 4, top2 + _PANEL_H + 4), str(i), fill=_INK, font=font)
    draw.text((_W // 2 - 20, top2 + _PANEL_H + 20), "frame", fill=_INK, font=font)
    image.save(path)
    return path
