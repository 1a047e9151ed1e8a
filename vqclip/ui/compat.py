"""ipywidgets 7.7.1 (Colab) and 8.x behind one small API: uploads, tab titles, images, videos.

Colab ships ipywidgets 7.7.1; Jupyter installs 8. What differs for us: ``FileUpload.value`` is a dict
``{filename: {"metadata": {...}, "content": bytes}}`` in 7 and a tuple of
``{"name", "type", "size", "content": memoryview, "last_modified"}`` dicts in 8; ``Tab`` titles are
set with ``set_title`` in 7 and the ``titles`` trait in 8. ``Accordion`` misbehaves on Colab, so
collapsible parts are :func:`section` (a toggle button over a VBox) instead.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import ipywidgets as widgets

__all__ = ["IPYWIDGETS_MAJOR", "uploaded_files", "clear_upload", "tabs", "section", "png_bytes", "image_widget",
           "set_image", "video_widget"]

IPYWIDGETS_MAJOR = int(widgets.__version__.split(".")[0])


def uploaded_files(upload: widgets.FileUpload) -> list[tuple[str, bytes]]:
    """``[(filename, content bytes), ...]`` of a FileUpload, on ipywidgets 7 or 8."""
    value = upload.value
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": {...}, "content": bytes}}
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item["name"]), bytes(item["content"])) for item in value or ()]  # 8: tuple of dicts


def clear_upload(upload: widgets.FileUpload) -> None:
    """Forget the uploaded files (so the next upload is not mixed with the last)."""
    if IPYWIDGETS_MAJOR >= 8:
        upload.value = ()
        return
    # 7.x: value is derived from data/metadata and read-only; reset what it is built from.
    for name, empty in (("metadata", []), ("data", []), ("value", {})):
        if upload.has_trait(name):
            upload.set_trait(name, empty)


def tabs(children: Sequence[widgets.Widget], titles: Sequence[str]) -> widgets.Tab:
    """A Tab with titles, on ipywidgets 7 (set_title) or 8 (titles)."""
    tab = widgets.Tab(children=list(children))
    if tab.has_trait("titles"):
        tab.titles = tuple(titles)
    else:
        for i, title in enumerate(titles):
            tab.set_title(i, title)
    return tab


def section(title: str, children: Sequence[widgets.Widget], open: bool = False) -> widgets.VBox:
    """A collapsible part: a toggle button that shows or hides a VBox (instead of Accordion)."""
    body = widgets.VBox(list(children), layout=widgets.Layout(display="" if open else "none", padding="0 0 0 12px"))
    toggle = widgets.ToggleButton(value=open, description=title, icon="caret-down" if open else "caret-right",
                                  layout=widgets.Layout(width="auto"))

    def flip(change: dict) -> None:
        body.layout.display = "" if change["new"] else "none"
        toggle.icon = "caret-down" if change["new"] else "caret-right"

    toggle.observe(flip, names="value")
    box = widgets.VBox([toggle, body])
    box.toggle, box.body = toggle, body  # for tests and callers that open it
    return box


def png_bytes(image: Any, max_side: int | None = None) -> bytes:
    """A PIL image (or a path to one) as PNG bytes, optionally shrunk so its longest side is ``max_side``."""
    from PIL import Image

    img = Image.open(image) if isinstance(image, (str, Path)) else image
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def image_widget(width: str = "auto") -> widgets.Image:
    """A PNG Image widget, hidden until it has a picture (an empty one shows a broken-image icon)."""
    return widgets.Image(format="png", layout=widgets.Layout(width=width, max_width="100%", display="none"))


def set_image(widget: widgets.Image, image: Any, max_side: int | None = None) -> None:
    """Show a PIL image or an image file in an Image widget."""
    widget.value = png_bytes(image, max_side)
    widget.layout.display = ""


def video_widget(path: str | Path, width: int = 480) -> widgets.Video:
    """An inline player for an mp4/webm (Video.from_file exists in 7.4+ and 8)."""
    v = widgets.Video.from_file(str(path), autoplay=False, loop=True, controls=True)
    v.layout.width = f"{width}px"
    return v
