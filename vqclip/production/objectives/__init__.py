"""Objectives: how an optimized frame is judged. ``cutouts`` (VQGAN-CLIP) and ``views`` (paper 000).

Register one as ``name: "module:Class"`` in ``OBJECTIVES``; presets pick it with ``generation.objective``
and set its options under ``generation.<name>``.
"""

from __future__ import annotations

import importlib

from vqclip.errors import ConfigError

__all__ = ["OBJECTIVES", "get_objective"]

#: objective name -> "module:Class"; modules load only when an objective is asked for.
OBJECTIVES: dict[str, str] = {
    "cutouts": "vqclip.production.objectives.cutouts:CutoutsObjective",
    "views": "vqclip.production.objectives.views:ViewsObjective",
}


def get_objective(name: str):
    """The objective class registered as ``name`` (ConfigError with the choices when unknown)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"generation.objective: {name!r} is not an objective; use one of {', '.join(OBJECTIVES)}")
    module, _, cls = OBJECTIVES[name].partition(":")
    return getattr(importlib.import_module(module), cls)
