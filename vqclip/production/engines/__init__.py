"""Engines: the registered ways of making frames, by name (``generation.engine``).

Optimized engines are generators (``vqgan``, ``pixels``; judged by an objective from
:mod:`vqclip.production.objectives`); sampled engines (diffusion) subclass
:class:`vqclip.production.engines.base.SampledEngine`. To add one, give it a ``name`` and an ``Options``
dataclass and add ``name: "module:Class"`` to ``ENGINES``; presets set its options under ``generation.NAME``.
"""

from __future__ import annotations

import importlib

from vqclip.errors import ConfigError

__all__ = ["ENGINES", "engine_names", "get_engine"]

#: engine name -> "module:Class"; modules load only when an engine is asked for.
ENGINES: dict[str, str] = {
    "vqgan": "vqclip.production.generators.vqgan:VQGANGenerator",
    "pixels": "vqclip.production.generators.pixels:PixelGenerator",
    "t2v_zero": "vqclip.production.engines.t2v_zero:T2VZeroEngine",
    "animatediff": "vqclip.production.engines.animatediff:AnimateDiffEngine",
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
