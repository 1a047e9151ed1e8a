"""Notebook widgets for the three stages (the only part of vqclip that imports IPython/ipywidgets).

    from vqclip.ui import setup_notebook, PreProductionPanel, ProductionPanel, PostProductionPanel
    env = setup_notebook(use_drive=True)   # on Colab: outputs and models on Google Drive
    pre = PreProductionPanel(env)          # a widget: the last expression of a cell shows it
    prod = ProductionPanel(env, preset=pre) # renders what the pre-production panel shows
    result = await prod.run_async()        # Stop stays clickable while the cell waits, in "Run all" too

Works on ipywidgets 7.7.1 (Colab) and 8.x (see :mod:`vqclip.ui.compat`). Nothing is imported until used.
"""

from __future__ import annotations

import importlib

__all__ = ["setup_notebook", "NotebookEnv", "PreProductionPanel", "ProductionPanel", "PostProductionPanel"]

_WHERE = {
    "setup_notebook": "vqclip.ui.common", "NotebookEnv": "vqclip.ui.common",
    "PreProductionPanel": "vqclip.ui.pre", "ProductionPanel": "vqclip.ui.production",
    "PostProductionPanel": "vqclip.ui.post",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'vqclip.ui' has no attribute {name!r}")
