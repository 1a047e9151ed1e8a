"""Judging renders: CLIP score, frame consistency, flicker, FVD and Inception Score (`vqclip eval`).

Imports are lazy so `import vqclip.metrics` loads no model and no torch extension.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["evaluate", "evaluate_runs", "EvalReport", "FVDResult", "fvd_between", "frechet_distance", "inception_score"]

_HOMES = {
    "evaluate": "vqclip.metrics.run",
    "evaluate_runs": "vqclip.metrics.run",
    "EvalReport": "vqclip.metrics.run",
    "FVDResult": "vqclip.metrics.run",
    "fvd_between": "vqclip.metrics.run",
    "frechet_distance": "vqclip.metrics.frechet",
    "inception_score": "vqclip.metrics.inception",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'vqclip.metrics' has no attribute {name!r}")
