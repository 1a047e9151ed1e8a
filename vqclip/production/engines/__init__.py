"""Engines: what is optimized per frame. ``vqgan`` (a VQGAN latent) now; ``pixels`` and ``diffusion`` plug in the same way.

To add one, subclass :class:`vqclip.production.engines.base.Engine` in its own module, give it a ``name`` and an
``Options`` dataclass, and add ``name: "module:Class"`` to ``ENGINES``. Presets then select it with
``generation.engine: NAME`` and set its options under ``generation.NAME``.
"""

from __future__ import annotations

import importlib

from vqclip.errors import ConfigError

__all__ = ["ENGINES", "engine_names", "get_engine"]

#: engine name -> "module:Class"; modules load only when an engine is asked for.
ENGINES: dict[str, str] = {
    "vqgan": "vqclip.production.engines.vqgan:VQGANEngine",
    "pixels": "vqclip.production.engines.pixels:PixelEngine",
}


def engine_names() -> list[str]:
    """The registered engine names."""
    return list(ENGINES)


def get_engine(name: str):
    """The engine class registered as ``name`` (ConfigError with the choices when unknown)."""
    if name not in ENGINES:
        raise ConfigError(f"generation.engine: {name!r} is not an engine; use one of {', '.join(ENGINES)}")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)
