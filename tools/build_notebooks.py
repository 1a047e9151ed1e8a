"""The four notebooks, written from one source so their setup cell and Colab links stay the same.

    python -m tools.build_notebooks            # rewrites notebooks/*.ipynb (outputs cleared)
    python -m tools.build_notebooks --links    # prints the "Open in Colab" Markdown for the README

``GITHUB_REPO`` is the one place the repository's GitHub path is written; it is a placeholder until
the project has its public home. ``tests/test_notebooks.py`` checks the committed notebooks equal
what this module writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

__all__ = ["GITHUB_REPO", "NOTEBOOKS", "colab_url", "colab_links_markdown", "build_notebook", "write_notebooks"]

GITHUB_REPO = "your-org/vqclip"  # placeholder GitHub "owner/name": change it here, then rerun this module
BRANCH = "main"

SETUP = '''\
# Setup: run this first. On Colab it installs vqclip without touching Colab's own torch (pinned as a
# pip constraint) and upgrades moviepy to 2.x; elsewhere it only picks the folders and finds the GPU.
# USE_DRIVE keeps renders and downloaded models on Google Drive: after a disconnect nothing is lost
# (reconnect, run this cell again, and Resume the render).
USE_DRIVE = False  # @param {{type:"boolean"}}
SMOKE = False  # @param {{type:"boolean"}}  toy models and tiny sizes: the whole notebook runs in seconds
VQCLIP_REPO = "https://github.com/{repo}"
import importlib, os, subprocess, sys
if "google.colab" in sys.modules:
    import torch, torchvision
    with open("/tmp/vqclip-constraints.txt", "w") as f:
        f.write(f"torch=={{torch.__version__}}\\ntorchvision=={{torchvision.__version__}}\\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/vqclip-constraints.txt",
                    f"vqclip @ git+{{VQCLIP_REPO}}@{branch}", "moviepy>=2.2.1,<3"], check=True)
    importlib.invalidate_caches()
if SMOKE:
    os.environ["VQCLIP_SMOKE"] = "1"
from vqclip.ui import setup_notebook
env = setup_notebook(use_drive=USE_DRIVE)
print(env.describe())'''

WATCH = '''\
from IPython.display import Video
Video(str({path}), embed=True, width=480, html_attributes="controls loop")'''

# name -> (title, intro markdown, [(kind, source), ...]) after the setup cell
NOTEBOOKS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "00_quickstart": (
        "vqclip quickstart: words to a short video",
        "Three cells: set up, render, watch. It renders the `fast_draft` preset (448x256, 48 frames; a few "
        "minutes on a free Colab T4, the first run also downloads ~1.3 GB of models). Choose *Runtime > Change "
        "runtime type > T4 GPU* first.",
        [
            ("code", "from vqclip.ui import ProductionPanel\n"
                     "panel = ProductionPanel(env, preset=\"fast_draft\")  # your own words: 01_pre_production\n"
                     "display(panel)\n"
                     "result = panel.run()  # live preview above; the notebook's stop button stops cleanly"),
            ("markdown", "## Watch"),
            ("code", WATCH.format(path="result.video")),
        ],
    ),
    "01_pre_production": (
        "Pre-production: choose, check, preview, save",
        "Pick a preset, write the prompt and add a style, choose the VQGAN checkpoint and the frame size. The "
        "panel estimates the GPU memory of your choice against this machine's GPU (a Colab T4 when there is "
        "none) and offers the largest size that fits. *Preview first frame* renders one small frame; *Save "
        "preset* writes a YAML file the production notebook picks up.",
        [
            ("code", "from vqclip.ui import PreProductionPanel\n"
                     "pre = PreProductionPanel(env, preset=\"klee_garden\")\n"
                     "pre"),
            ("markdown", "Press the buttons above, or run the cells below to do the same."),
            ("code", "pre.preview();"),
            ("code", "saved = pre.save(\"my_preset\")\n"
                     "print(saved)"),
        ],
    ),
    "02_production": (
        "Production: render the frames",
        "The newest preset you saved comes first in the list. *Render* runs in the background so *Stop* stays "
        "clickable; Stop saves the state and *Resume* continues, also after Colab disconnects (with "
        "`USE_DRIVE = True`). You see a preview every `images_interval` steps, a progress bar with the time "
        "left, and at the end a contact sheet and the draft video.",
        [
            ("code", "from vqclip.ui import ProductionPanel\n"
                     "prod = ProductionPanel(env)\n"
                     "prod"),
            ("markdown", "Or render right here (the notebook's stop button also stops cleanly and saves the state; "
                         "continue with `prod.run(resume=True)`):"),
            ("code", "result = prod.run()"),
            ("markdown", "## Watch the draft"),
            ("code", WATCH.format(path="result.video")),
        ],
    ),
    "03_post_production": (
        "Post-production: edit, add music, export",
        "Choose one or more finished renders, change the speed, loop or boomerang them, join them with "
        "crossfades, add fades, a title and music (upload a file), and export an mp4, webm or GIF.",
        [
            ("code", "from vqclip.ui import PostProductionPanel\n"
                     "post = PostProductionPanel(env)\n"
                     "post"),
            ("markdown", "Press *Export* above, or run:"),
            ("code", "piece = post.export()"),
            ("markdown", "## Watch"),
            ("code", WATCH.format(path="piece.path")),
        ],
    ),
}


def colab_url(name: str) -> str:
    """The "Open in Colab" address of a notebook in the repository."""
    return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{BRANCH}/notebooks/{name}.ipynb"


def colab_badge(name: str) -> str:
    """A Markdown "Open in Colab" badge for a notebook."""
    return f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(name)})"


def colab_links_markdown() -> str:
    """A Markdown table of the notebooks with their Colab badges, for the README."""
    rows = ["| notebook | what it does | |", "|---|---|---|"]
    for name, (title, _, _) in NOTEBOOKS.items():
        rows.append(f"| `notebooks/{name}.ipynb` | {title} | {colab_badge(name)} |")
    return "\n".join(rows)


def _cell(kind: str, source: str, name: str, i: int) -> dict:
    cell = {"cell_type": kind, "id": hashlib.sha1(f"{name}-{i}".encode()).hexdigest()[:8], "metadata": {},
            "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def build_notebook(name: str) -> dict:
    """One notebook as nbformat-4 JSON: title and Colab badge, the setup cell, the stage's cells."""
    title, intro, cells = NOTEBOOKS[name]
    parts = [("markdown", f"# {title}\n\n{colab_badge(name)}\n\n{intro}"),
             ("code", SETUP.format(repo=GITHUB_REPO, branch=BRANCH))] + cells
    return {
        "cells": [_cell(kind, src, name, i) for i, (kind, src) in enumerate(parts)],
        "metadata": {"accelerator": "GPU", "colab": {"provenance": []},
                     "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def notebook_text(name: str) -> str:
    """The notebook file's text."""
    return json.dumps(build_notebook(name), indent=1, ensure_ascii=False) + "\n"


def write_notebooks(folder: str | Path) -> list[Path]:
    """Write every notebook into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in NOTEBOOKS:
        path = folder / f"{name}.ipynb"
        path.write_text(notebook_text(name), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Rewrite notebooks/ or print the Colab links."""
    parser = argparse.ArgumentParser(prog="python -m tools.build_notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "notebooks"))
    parser.add_argument("--links", action="store_true", help="print the README's Open in Colab table")
    args = parser.parse_args(argv)
    if args.links:
        print(colab_links_markdown())
        return 0
    for p in write_notebooks(args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
