"""Pre-production checks the panels and the CLI share: a first-frame preview and a memory estimate, by the configured engine."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from vqclip.preproduction.estimate import estimate_config

__all__ = ["preview_first_frame", "estimate_config"]


def preview_first_frame(config, out_dir: str | Path, callback: Callable[[dict], Any] | None = None):
    """Render frame 0 alone with the engine's own first-frame settings into ``out_dir``; returns the RenderResult."""
    from vqclip.production.render import render
    from vqclip.settings.render import RenderConfig, load_config

    cfg = config if isinstance(config, RenderConfig) else load_config(config)
    # One frame, no video: the resolved first-frame settings (iterations, lr, objective) stay the engine's own.
    cfg = dataclasses.replace(
        cfg, animation=dataclasses.replace(cfg.animation, frames=1),
        output=dataclasses.replace(cfg.output, video=False, contact_sheet=False),
    )
    return render(cfg, out_dir, callback=callback)
