"""vqclip: words to short videos with iterative VQGAN-CLIP, CLIP-guided pixels and diffusion engines.

The three stages of production, as a small public API (nothing is imported until a name is used, so
``import vqclip`` does no work and loads no model)::

    cfg = vqclip.load_config("default", ["generation.seed=3"])   # pre-production: a typed, resolved config
    vqclip.estimate_config(cfg)                                  # memory and time before rendering
    result = vqclip.render(cfg, "renders/default")               # production: frames, settings, video
    vqclip.run_post("piece.yaml")                                # post-production: speed, titles, music
    vqclip.evaluate("renders/default", clip="toy")               # CLIP score, consistency, flicker
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "load_config", "load_post_config", "apply_override", "list_presets",
    "available_models", "resolve_model",
    "estimate_config", "preview_first_frame",
    "render", "RenderResult",
    "run_post",
    "evaluate",
    "ConfigError", "ModelError",
]

#: public name -> "module:attribute"; a module is imported on first use of one of its names.
_WHERE = {
    "load_config": "vqclip.settings.render:load_config",
    "load_post_config": "vqclip.settings.post:load_post_config",
    "apply_override": "vqclip.settings.render:apply_override",
    "list_presets": "vqclip.settings.render:list_presets",
    "available_models": "vqclip.models.registry:list_models",
    "resolve_model": "vqclip.models.registry:resolve_model",
    "estimate_config": "vqclip.preproduction.preview:estimate_config",
    "preview_first_frame": "vqclip.preproduction.preview:preview_first_frame",
    "render": "vqclip.production.render:render",
    "RenderResult": "vqclip.production.run:RenderResult",
    "run_post": "vqclip.postproduction.run:run_post",
    "evaluate": "vqclip.metrics:evaluate",
    "ConfigError": "vqclip.errors:ConfigError",
    "ModelError": "vqclip.errors:ModelError",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        module, _, attr = _WHERE[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'vqclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
