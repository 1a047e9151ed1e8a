"""What the notebooks share: where outputs and models live (local, or Google Drive on Colab), smoke mode.

Smoke mode (``VQCLIP_SMOKE=1``, or ``setup_notebook(smoke=True)``) turns any preset into a seconds-long
render with the bundled toy models at a tiny size, so every notebook can run top to bottom in CI.
``VQCLIP_SMOKE_SET`` adds ``key=value`` overrides separated by ``;`` (tests use it to point at
tiny models of their own).
"""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["NotebookEnv", "setup_notebook", "in_colab", "smoke_enabled", "smoke_preset", "find_renders",
           "preset_data", "error_html", "download_line", "DRIVE_ROOT"]

DRIVE_ROOT = "/content/drive/MyDrive/vqclip"  # renders and the model cache on Google Drive: they survive disconnects


@dataclass
class NotebookEnv:
    """Where a notebook reads and writes, and how it runs."""

    out_root: Path  # renders/<name>/, presets/, post/, music/
    cache_dir: Path  # downloaded models ($VQCLIP_CACHE)
    in_colab: bool
    smoke: bool  # toy models, tiny sizes, few steps
    gpu: Any = None  # vqclip.preproduction.estimate.GpuInfo or None

    @property
    def renders(self) -> Path:
        """The folder holding one subfolder per render."""
        return self.out_root / "renders"

    @property
    def presets(self) -> Path:
        """The folder new presets are saved to."""
        return self.out_root / "presets"

    def describe(self) -> str:
        """One line for the setup cell's output."""
        gpu = f"GPU {self.gpu.name} ({self.gpu.total_bytes / 1024**3:.1f} GiB)" if self.gpu else "no GPU (CPU only)"
        mode = ", SMOKE MODE (toy models, tiny sizes)" if self.smoke else ""
        line = f"vqclip: outputs in {self.out_root}, models in {self.cache_dir}; {gpu}{mode}"
        if self.in_colab and not str(self.out_root).startswith(DRIVE_ROOT):
            line += ("\nnote: outputs live in this runtime only; the other stage notebooks (each its own runtime) "
                     "cannot see them. Tick USE_DRIVE to share them through Google Drive.")
        return line


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def smoke_enabled() -> bool:
    """True when ``VQCLIP_SMOKE`` is set to 1/true/yes."""
    return os.environ.get("VQCLIP_SMOKE", "").strip().lower() in ("1", "true", "yes", "on")


def setup_notebook(use_drive: bool = False, out_root: str | os.PathLike | None = None, smoke: bool | None = None) -> NotebookEnv:
    """Choose the output and model folders (mounting Google Drive on Colab when asked) and detect the GPU."""
    from vqclip.preproduction.estimate import detect_gpu

    colab = in_colab()
    if use_drive and colab:
        from google.colab import drive  # only on Colab

        drive.mount("/content/drive")
        root = Path(DRIVE_ROOT)
        os.environ.setdefault("VQCLIP_CACHE", str(root / "models"))
    elif out_root is not None or os.environ.get("VQCLIP_OUT"):
        root = Path(out_root or os.environ["VQCLIP_OUT"]).expanduser()
    else:
        root = Path("/content/vqclip" if colab else "vqclip_out").resolve()
    from vqclip.models.registry import default_cache_dir

    root.mkdir(parents=True, exist_ok=True)
    env = NotebookEnv(root, default_cache_dir(), colab, smoke_enabled() if smoke is None else smoke, detect_gpu())
    return env


def preset_data(preset: str | os.PathLike | dict) -> dict:
    """A preset (bundled name, path, or dict) as a plain dict, not yet validated."""
    from vqclip.settings.render import read_preset

    return copy.deepcopy(preset) if isinstance(preset, dict) else read_preset(preset)


def smoke_preset(data: dict) -> dict:
    """The same preset shrunk for smoke mode: toy models, a tiny size, 2-4 steps a frame, a handful of frames."""
    from vqclip.settings.render import apply_override, unread_keys

    d = copy.deepcopy(data)
    d.setdefault("models", {})
    gen = d.setdefault("generation", {})
    unread = unread_keys(gen.get("engine") or "vqgan", gen.get("objective"))  # e.g. the pixel engine has no VQGAN and no cutouts
    if "models.vqgan" not in unread:
        d["models"]["vqgan"] = "toy"
    engine = gen.get("engine") or "vqgan"
    gen.update(device="cpu", max_iterations=-1)
    if "models.clip" in unread:  # a diffusion engine: the toy diffusion pack, 64 px (its latents are 16x16)
        d["models"]["diffusion"] = "toy"
        if "models.motion_adapter" not in unread:
            d["models"]["motion_adapter"] = "toy"
        d["size"] = {"width": 64, "height": 64}
        gen[engine] = {**(gen.get(engine) or {}), "steps": 4}
    else:
        d["models"]["clip"] = [{"spec": "toy", "weight": 1.0}]
        d["size"] = {"width": 48, "height": 32}
        gen.update(iterations_first_frame=4, iterations_per_frame=2)
    if "generation.cutouts" not in unread:
        gen["cutouts"] = {**(gen.get("cutouts") or {}), "cutn": 4}
    if "generation.views" not in unread:
        gen["views"] = {**(gen.get("views") or {}), "count": 2}
    if gen.get("engine") == "pixels":
        gen["pixels"] = {**(gen.get("pixels") or {}), "frames_per_prompt": 1, "post_denoise": "none"}
    anim = d.setdefault("animation", {})
    scenes = (d.get("prompts") or {}).get("scenes") or []
    if scenes:
        for s in scenes:
            if isinstance(s, dict):
                s["frames"] = 2
        anim.pop("frames", None)
    else:
        anim["frames"] = 4
    out = d.setdefault("output", {})
    out.update(images_interval=2, fps=out.get("fps", 12))
    for item in [s for s in os.environ.get("VQCLIP_SMOKE_SET", "").split(";") if s.strip()]:
        apply_override(d, item.strip())
    return d


def find_renders(root: str | os.PathLike) -> list[Path]:
    """Render folders under ``root`` (each holds frames/ and settings.yaml), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / "frames").is_dir() and (p / "settings.yaml").is_file()
             and any((p / "frames").glob("*.png"))]
    return sorted(found, key=lambda p: (p / "settings.yaml").stat().st_mtime, reverse=True)


def save_preset_yaml(data: dict, path: Path, header: str = "") -> Path:
    """Write a preset dict as YAML with a comment header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


SHORT_ERROR = 160  # characters of an error shown before the rest is folded away


def error_html(error: BaseException | str, prefix: str = "") -> str:
    """An error as one or two short red lines, the full text folded into a "details" toggle."""
    import html

    text = f"{prefix}{error}" if isinstance(error, str) else f"{prefix}{_error_text(error)}"
    first = text.strip().splitlines()[0] if text.strip() else "error"
    if len(first) > SHORT_ERROR:  # cut at the end of a sentence or clause when there is one
        cut = max(first.rfind(sep, 40, SHORT_ERROR) for sep in (". ", "; ", ": "))
        first = first[: cut + 1] if cut > 0 else first[:SHORT_ERROR].rstrip() + "\u2026"
    out = f"<div style='color:#b00;white-space:normal;max-width:95%'>{html.escape(first)}"
    if first.rstrip("\u2026") != text.strip():
        out += (f"<details><summary style='cursor:pointer;color:#555'>details</summary>"
                f"<pre style='white-space:pre-wrap;font-size:smaller;color:#333'>{html.escape(text.strip())}</pre></details>")
    return out + "</div>"


def _error_text(exc: BaseException) -> str:
    from vqclip.errors import VqclipError

    # our own errors are written for people; anything else is a bug: name its type so it can be reported
    return str(exc) if isinstance(exc, VqclipError) else f"{type(exc).__name__}: {exc}"


def download_line(event: dict) -> str:
    """A download event as one status line: "downloading NAME: 120 of 980 MB"."""
    import html

    total = event.get("total") or 0
    got = f"{event['bytes'] / 1e6:.0f}" + (f" of {total / 1e6:.0f} MB" if total else " MB")
    return f"downloading {html.escape(str(event['name']))}: {got}"
