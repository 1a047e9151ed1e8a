"""The notebooks, written from one source so their setup cell and Colab links stay the same.

    python -m tools.build_notebooks            # rewrites notebooks/*.ipynb (outputs cleared)
    python -m tools.build_notebooks --links    # prints the "Open in Colab" Markdown for the README

The repository's address is read from pyproject.toml (``[project.urls] Repository``), the one place it
is written; so are the packages the panels need (the ``widgets`` extra). ``tests/test_notebooks.py``
checks the committed notebooks and the README's table equal what this module writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tomllib
from pathlib import Path

__all__ = ["REPOSITORY", "GITHUB_REPO", "NOTEBOOKS", "colab_url", "colab_links_markdown", "build_notebook",
           "write_notebooks", "setup_source"]

ROOT = Path(__file__).resolve().parents[1]
_PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
REPOSITORY = _PROJECT["urls"]["Repository"].rstrip("/")  # e.g. https://github.com/owner/name
GITHUB_REPO = REPOSITORY.removeprefix("https://github.com/")  # "owner/name", for the Colab links
WIDGETS = _PROJECT["optional-dependencies"]["widgets"]
BRANCH = "main"

SETUP = '''\
# Setup: run this first. Where vqclip is missing it installs it (from the clone this notebook sits in,
# else from VQCLIP_PIP, else from {repo}), keeping Colab's own torch; then it picks the output
# folders and finds the GPU. {drive_note}
USE_DRIVE = {use_drive}  # @param {{type:"boolean"}}
SMOKE = False  # @param {{type:"boolean"}}  toy models and tiny sizes: the whole notebook runs in seconds
VQCLIP_PIP = ""  # @param {{type:"string"}}  install this instead (a pip spec, a wheel, a folder or a git URL)
import importlib, importlib.util, subprocess, sys
from pathlib import Path


class SetupFailed(Exception):
    """Shows its three lines and no traceback (IPython prints what _render_traceback_ returns)."""

    def _render_traceback_(self):
        return list(self.args)


def install_vqclip():
    clone = next((p for p in (Path.cwd(), *Path.cwd().parents)
                  if (p / "pyproject.toml").is_file() and (p / "vqclip" / "__init__.py").is_file()), None)
    if not VQCLIP_PIP and importlib.util.find_spec("vqclip") is not None:
        return
    spec = VQCLIP_PIP or (str(clone) if clone else "vqclip @ git+{repo}@{branch}")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-color", "--disable-pip-version-check", spec, {widgets}]
    if "google.colab" in sys.modules:  # keep Colab's CUDA torch: constrain to its public version (no +cu tag)
        import torch, torchvision
        with open("/tmp/vqclip-constraints.txt", "w") as f:
            f.write("".join(f"{{m.__name__}}=={{m.__version__.split('+')[0]}}\\n" for m in (torch, torchvision)))
        cmd += ["-c", "/tmp/vqclip-constraints.txt"]
    print(f"installing {{spec}} ...")
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [l.strip() for l in (done.stderr or done.stdout).splitlines() if l.strip()]
        why = next((l for l in reversed(errors) if l.startswith("ERROR")), errors[-1] if errors else "pip failed")
        raise SetupFailed(f"vqclip setup: could not install {{spec}}",
                          f"why: {{why[:200]}}",
                          "what to do: check this runtime is online, or set VQCLIP_PIP to a vqclip wheel, folder "
                          "or git URL, and run this cell again")
    importlib.invalidate_caches()


install_vqclip()
from vqclip.ui import setup_notebook
env = setup_notebook(use_drive=USE_DRIVE, smoke=SMOKE or None)  # None: $VQCLIP_SMOKE decides (CI)
print(env.describe())'''

DRIVE_NOTES = {
    True: "On Colab each notebook gets its own runtime:\n# USE_DRIVE shares renders, presets and models between the stage notebooks through Google Drive.",
    False: "USE_DRIVE keeps renders and models on Google Drive, so a\n# disconnect loses nothing (reconnect, run this cell again, and Resume the render).",
}

WATCH = '''\
from IPython.display import Video
Video(str({path}), embed=True, width=480, html_attributes="controls loop")'''

# name -> (title, intro markdown, [(kind, source), ...]) after the setup cell
NOTEBOOKS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "studio": (
        "vqclip studio: from words to a finished video in one notebook",
        "Pre-production, production and post-production in one runtime: the workshop's notebook and the "
        "place to start on Colab (*Runtime > Change runtime type > T4 GPU* first). *Run all* works: the "
        "render runs in the background, so *Stop* acts at once, and each stage picks up what the one before "
        "made. Tick `SMOKE` for a seconds-long check with the toy models.",
        [
            ("markdown", "## 1. Pre-production: what to render"),
            ("code", "from vqclip.ui import PostProductionPanel, PreProductionPanel, ProductionPanel\n"
                     "pre = PreProductionPanel(env, preset=\"fast_draft\")\n"
                     "pre"),
            ("markdown", "## 2. Production: render the choices above (Stop saves the state; Resume continues)"),
            ("code", "prod = ProductionPanel(env, preset=pre)\n"
                     "display(prod)\n"
                     "result = await prod.run_async()  # Stop stays clickable, also in Run all"),
            ("markdown", "## 3. Post-production: speed, fades, title, music, export"),
            ("code", "post = PostProductionPanel(env)\n"
                     "display(post)\n"
                     "piece = post.export()"),
        ],
    ),
    "00_quickstart": (
        "vqclip quickstart: words to a short video",
        "Three cells: set up, render, watch. It renders the `fast_draft` preset (448x256, 48 frames; a few "
        "minutes on a free Colab T4, the first run also downloads ~1.3 GB of models). Choose *Runtime > Change "
        "runtime type > T4 GPU* first.",
        [
            ("code", "from vqclip.ui import ProductionPanel\n"
                     "panel = ProductionPanel(env, preset=\"fast_draft\")  # your own words: 01_pre_production\n"
                     "display(panel)\n"
                     "result = await panel.run_async()  # live preview above; Stop stays clickable, also in Run all"),
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
            ("code", "await pre.preview_async();"),
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
            ("markdown", "Or render right here (Stop and the notebook's stop button both stop cleanly and save the "
                         "state; continue with Resume or `await prod.run_async(resume=True)`):"),
            ("code", "result = await prod.run_async()"),
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


STAGE_NOTEBOOKS = ("01_pre_production", "02_production", "03_post_production")  # one runtime each on Colab: Drive by default


def setup_source(use_drive: bool) -> str:
    """The setup cell: install where missing, then folders, GPU and smoke mode."""
    return SETUP.format(repo=REPOSITORY, branch=BRANCH, widgets=", ".join(json.dumps(w) for w in WIDGETS), use_drive=use_drive,
                        drive_note=DRIVE_NOTES[use_drive])


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
    # the setup cell (i == 1) shows as a form on Colab: its settings, not its code
    cell = {"cell_type": kind, "id": hashlib.sha1(f"{name}-{i}".encode()).hexdigest()[:8],
            "metadata": {"cellView": "form"} if i == 1 else {},
            "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def build_notebook(name: str) -> dict:
    """One notebook as nbformat-4 JSON: title and Colab badge, the setup cell, the stage's cells."""
    title, intro, cells = NOTEBOOKS[name]
    parts = [("markdown", f"# {title}\n\n{colab_badge(name)}\n\n{intro}"),
             ("code", setup_source(use_drive=name in STAGE_NOTEBOOKS))] + cells
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
