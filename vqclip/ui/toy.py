"""What the panels say about the toy models: their size, what their world holds, words it does not know."""

from __future__ import annotations

import re

__all__ = ["toy_vocabulary", "unknown_words", "toy_summary", "toy_note_html"]

# the caption template's own words ("a red circle on a blue background") and glue words a prompt may use freely
_GRAMMAR = {"a", "an", "on", "background", "the", "with", "and", "in", "at", "of", "to", "is", "its"}


def toy_vocabulary() -> set[str]:
    """Every word the toy CLIP was trained on: its colours, shapes and the caption's own words."""
    from vqclip.toy.data import COLOURS, SHAPES

    return set(COLOURS) | set(SHAPES) | _GRAMMAR


def unknown_words(text: str) -> list[str]:
    """Words of a prompt outside the toy vocabulary, in order, each once ("a watercolor fox" -> watercolor, fox)."""
    known, out = toy_vocabulary(), []
    for word in re.findall(r"[A-Za-z]+", text.lower()):
        if word not in known and word not in out:
            out.append(word)
    return out


def toy_summary() -> str:
    """One line: what the toy models are, their size and what they know."""
    from vqclip.models.registry import packaged_dir
    from vqclip.toy.data import COLOURS, SHAPES

    d = packaged_dir()
    vq = (d / "toy_vqgan.ckpt").stat().st_size / 1e6
    clip = (d / "toy_clip.pt").stat().st_size / 1e6
    return (f"toy models (VQGAN {vq:.0f} MB, CLIP {clip:.0f} MB, trained here on synthetic pictures): they know only "
            f"one shape ({', '.join(SHAPES)}) in one colour ({', '.join(COLOURS)}) on a plain background, "
            "e.g. \"a red circle on a blue background\"")


def toy_note_html(prompt: str, smoke: bool) -> str:
    """The panel's honest note when toy models render: what they are, and which prompt words they do not know."""
    import html

    head = "<b>SMOKE MODE</b>: renders use the " if smoke else "Renders use the "
    note = f"<div style='background:#fff6d5;padding:4px 8px'>{head}{html.escape(toy_summary())}."
    if smoke:
        note += (" Frames are tiny (48x32) with a few steps; the memory check and the saved preset are for the real "
                 "choices below. Untick SMOKE in the setup cell and run it again to turn it off.")
    unknown = unknown_words(prompt)
    if unknown:
        note += (f"<br><span style='color:#b00'>The toy models do not know: {html.escape(', '.join(unknown))}. "
                 "They will draw colours and shapes, not these words.</span>")
    return note + "</div>"
