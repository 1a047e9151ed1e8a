"""The creative controls of the pre-production panel: engine, prompt timeline, motion, frames, timing, images.

:class:`CreativeControls` reads a preset dict (:meth:`CreativeControls.load`) and writes the choices
back into one (:meth:`CreativeControls.apply`), so the panel's preset stays the one typed config the
CLI reads. It shows only the settings of the chosen engine. Uploads (init/target images, a song for
beat-synced motion) are saved under ``<out_root>/uploads`` and referenced by absolute path.
"""

from __future__ import annotations

import copy
import random
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from vqclip.ui.compat import clear_upload, section, uploaded_files

__all__ = ["CreativeControls", "MOVES", "ENGINES", "OPTIMIZED", "IMAGE_SUFFIXES", "AUDIO_SUFFIXES"]

ENGINES = ["vqgan", "pixels", "t2v_zero", "animatediff"]
OPTIMIZED = ("vqgan", "pixels")  # engines that optimize a frame step by step (iterations, lr, CLIP objective)
MOTION_KEYS = ("zoom", "angle", "translation_x", "translation_y")
#: Named camera moves: keyframe text per motion schedule (zoom is a factor per frame, angle degrees per
#: frame, translations pixels per frame); what is not named stays still.
MOTIONS_STILL = {"zoom": "0:(1.0)", "angle": "0:(0)", "translation_x": "0:(0)", "translation_y": "0:(0)"}
MOVES: dict[str, dict[str, str]] = {
    "still": {},
    "slow zoom in": {"zoom": "0:(1.02)"},
    "slow zoom out": {"zoom": "0:(0.98)"},
    "orbit": {"angle": "0:(1.0)", "zoom": "0:(1.01)"},
    "pan left": {"translation_x": "0:(-2)"},
    "pan right": {"translation_x": "0:(2)"},
    "rise": {"translation_y": "0:(-2)"},
    "tunnel": {"zoom": "0:(1.04)", "angle": "0:(0.5)"},
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a")
SEED_MAX = 2**31 - 1


def _nullable_int(text: str, key: str) -> int | None:
    from vqclip.errors import ConfigError

    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"\d{1,6}", text):
        raise ConfigError(f"{key}: {text!r} is not allowed; use a whole number, or leave it empty for the engine's default")
    return int(text)


def _safe_name(name: str, fallback: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(name).name) or fallback


class CreativeControls(widgets.VBox):
    """Engine, scenes, motion, frames, fps, seed, iterations, init/target images and beat-synced zoom."""

    def __init__(self, uploads: Path):
        self.uploads = Path(uploads)
        self._loading = False
        self.init_image: str | None = None
        self.target_images: list[str] = []
        self.song: str | None = None
        self._engine_boxes: dict[str, widgets.Widget] = {}
        # Engine, and what only that engine reads.
        self.engine = widgets.Dropdown(options=ENGINES, value="vqgan", description="Engine")
        self.engine_info = widgets.HTML()
        self.temperature = widgets.BoundedFloatText(value=0.5, min=0.01, max=10.0, step=0.05, description="Temperature")
        self.fast = widgets.Checkbox(value=False, description="Fast mode (fewer steps)")
        self.views = widgets.BoundedIntText(value=8, min=1, max=64, description="Views")
        self.diffusion = widgets.Text(description="Model", placeholder="a registry name or a local diffusers folder")
        # Prompt timeline: scenes, each with its prompt and frame count.
        self.scenes_box = widgets.VBox()
        self.add_scene = widgets.Button(description="Add scene", icon="plus")
        self.timeline_note = widgets.HTML()
        # Motion.
        self.move = widgets.Dropdown(options=list(MOVES), value="still", description="Move")
        self.motion = {k: widgets.Text(description=k.replace("translation_", "pan ").replace("_", " "),
                                       placeholder="0:(1.0), 30:(1.05)", layout=widgets.Layout(width="48%"))
                       for k in MOTION_KEYS}
        self.beat_upload = widgets.FileUpload(accept=",".join(AUDIO_SUFFIXES), multiple=False, description="Song")
        self.beat_sync = widgets.Checkbox(value=False, description="Zoom pulses on the beat", disabled=True)
        self.beat_pulse = widgets.FloatSlider(value=1.08, min=1.0, max=1.3, step=0.01, description="Pulse")
        self.beat_status = widgets.HTML()
        # Frames and timing.
        self.frames = widgets.BoundedIntText(value=24, min=1, max=100000, description="Frames")
        self.fps = widgets.BoundedIntText(value=12, min=1, max=60, description="FPS")
        self.seed = widgets.BoundedIntText(value=0, min=0, max=SEED_MAX, description="Seed")
        self.dice = widgets.Button(description="", icon="random", tooltip="a new random seed", layout=widgets.Layout(width="40px"))
        self.iterations_first = widgets.Text(description="Steps, 1st", placeholder="default", layout=widgets.Layout(width="220px"))
        self.iterations_per = widgets.Text(description="Steps, next", placeholder="default", layout=widgets.Layout(width="220px"))
        # Images.
        self.init_upload = widgets.FileUpload(accept=",".join(IMAGE_SUFFIXES), multiple=False, description="Init image")
        self.target_upload = widgets.FileUpload(accept=",".join(IMAGE_SUFFIXES), multiple=True, description="Targets")
        self.clear_images = widgets.Button(description="No images", icon="times")
        self.images_status = widgets.HTML()

        self.engine.observe(lambda _: self._show_engine(), names="value")
        self.add_scene.on_click(lambda _: self.add_scene_row("", 24))
        self.move.observe(lambda c: None if self._loading else self.set_move(c["new"]), names="value")
        self.dice.on_click(lambda _: self.roll_seed())
        self.init_upload.observe(lambda _: self._on_image(self.init_upload, target=False), names="value")
        self.target_upload.observe(lambda _: self._on_image(self.target_upload, target=True), names="value")
        self.clear_images.on_click(lambda _: self._clear_images())
        self.beat_upload.observe(lambda _: self._on_song(), names="value")
        self.beat_sync.observe(lambda _: self._show_beats(), names="value")

        self._engine_boxes = {
            "vqgan": widgets.VBox(),  # the panel puts its VQGAN picker and cutouts here (see engine_box)
            "pixels": widgets.VBox([self.temperature, self.fast, self.views]),
            "t2v_zero": widgets.VBox([self.diffusion]),
            "animatediff": widgets.VBox([self.diffusion]),
        }
        self.engine_settings = widgets.VBox()
        self.optimized_settings = widgets.HBox([self.iterations_first, self.iterations_per])
        super().__init__([
            widgets.HBox([self.engine, self.engine_info]), self.engine_settings,
            section("Scenes (a prompt timeline)", [self.timeline_note, self.scenes_box, self.add_scene]),
            section("Motion", [self.move, widgets.HBox([self.motion["zoom"], self.motion["angle"]]),
                               widgets.HBox([self.motion["translation_x"], self.motion["translation_y"]]),
                               widgets.HTML("<small>keyframes: <code>FRAME:(VALUE), ...</code>; zoom is a factor per frame, "
                                            "angle degrees per frame, pan pixels per frame</small>"),
                               widgets.HBox([self.beat_upload, self.beat_sync, self.beat_pulse]), self.beat_status]),
            section("Frames, timing, seed", [widgets.HBox([self.frames, self.fps]), widgets.HBox([self.seed, self.dice]),
                                             self.optimized_settings]),
            section("Images", [widgets.HBox([self.init_upload, self.target_upload, self.clear_images]), self.images_status]),
        ])
        self._show_engine()
        self._show_beats()

    # --- what the panel calls ----------------------------------------------------------------------

    def engine_box(self, name: str) -> widgets.VBox:
        """The box shown only for engine ``name`` (the panel adds its own widgets, e.g. the VQGAN picker)."""
        return self._engine_boxes[name]

    def load(self, data: dict) -> None:
        """Show a preset's settings in the controls."""
        gen = data.get("generation") or {}
        self.engine.value = gen.get("engine") or "vqgan"
        pixels, views = gen.get("pixels") or {}, gen.get("views") or {}
        self.temperature.value = float(pixels.get("temperature", 0.5))
        self.fast.value = bool(pixels.get("fast", False))
        self.views.value = int(views.get("count", 8))
        diffusion = (data.get("models") or {}).get("diffusion")
        self.diffusion.value = diffusion if isinstance(diffusion, str) else ""
        prompts = data.get("prompts") or {}
        self.scenes_box.children = []
        for scene in prompts.get("scenes") or []:
            texts = scene.get("texts", "")
            self.add_scene_row(" | ".join(texts) if isinstance(texts, list) else str(texts), int(scene.get("frames", 24)))
        anim = data.get("animation") or {}
        self._loading = True  # showing a preset's motion is not choosing a named move
        self.move.value = "still"
        self._loading = False
        self.song, self.beat_sync.value = None, False
        for key in MOTION_KEYS:
            raw = anim.get(key)
            if isinstance(raw, dict) and key == "zoom":  # a beat mapping: keep its song
                self.song = str(raw.get("beats"))
                self.beat_pulse.value = float(raw.get("pulse", 1.08))
                self.beat_sync.value = True
                self.motion[key].value = ""
            else:
                self.motion[key].value = "" if raw is None else str(raw)
        self._show_beats()
        self.frames.value = int(anim.get("frames", 24) or 24)
        self.fps.value = int(round(float((data.get("output") or {}).get("fps", 12))))
        self.seed.value = int(gen.get("seed") or 0)
        for box, key in ((self.iterations_first, "iterations_first_frame"), (self.iterations_per, "iterations_per_frame")):
            box.value = "" if gen.get(key) is None else str(gen[key])
        self.init_image = prompts.get("init_image")
        targets = prompts.get("target_images") or []
        self.target_images = [targets] if isinstance(targets, str) else list(targets)
        self._show_images()
        self._show_timeline()

    def apply(self, data: dict) -> dict:
        """A copy of ``data`` with the controls' choices written in (only the chosen engine's sections)."""
        d = copy.deepcopy(data)
        gen = d.setdefault("generation", {})
        engine = self.engine.value
        gen["engine"] = engine
        if engine == "pixels":
            gen["pixels"] = {**(gen.get("pixels") or {}), "temperature": self.temperature.value, "fast": self.fast.value}
            gen["views"] = {**(gen.get("views") or {}), "count": self.views.value}
        if engine in ("t2v_zero", "animatediff") and self.diffusion.value.strip():
            d.setdefault("models", {})["diffusion"] = self.diffusion.value.strip()
        if engine in OPTIMIZED:
            for box, key in ((self.iterations_first, "iterations_first_frame"), (self.iterations_per, "iterations_per_frame")):
                gen[key] = _nullable_int(box.value, f"generation.{key}")
        else:
            for key in ("iterations_first_frame", "iterations_per_frame"):
                gen.pop(key, None)
        gen["seed"] = self.seed.value
        prompts = d.setdefault("prompts", {})
        scenes = self.scenes()
        if scenes:
            prompts["scenes"] = scenes
        else:
            prompts.pop("scenes", None)
        if self.init_image:
            prompts["init_image"] = self.init_image
        else:
            prompts.pop("init_image", None)
        if self.target_images:
            prompts["target_images"] = list(self.target_images)
        else:
            prompts.pop("target_images", None)
        anim = d.setdefault("animation", {})
        if scenes:
            anim.pop("frames", None)  # the scenes' frame counts make the length
        else:
            anim["frames"] = self.frames.value
        for key in MOTION_KEYS:
            text = self.motion[key].value.strip()
            if text:
                anim[key] = text
            else:
                anim.pop(key, None)
        if self.beat_sync.value and self.song:
            anim["zoom"] = {"beats": self.song, "base": 1.0, "pulse": self.beat_pulse.value}
        d.setdefault("output", {})["fps"] = self.fps.value
        return d

    # --- scenes ---------------------------------------------------------------------------------

    def add_scene_row(self, text: str, frames: int) -> widgets.HBox:
        """Add a scene (its prompt and frame count) to the end of the timeline."""
        prompt = widgets.Text(value=text, placeholder="what this scene shows", layout=widgets.Layout(width="60%"))
        count = widgets.BoundedIntText(value=frames, min=1, max=100000, description="frames",
                                       layout=widgets.Layout(width="160px"))
        remove = widgets.Button(icon="trash", tooltip="remove this scene", layout=widgets.Layout(width="40px"))
        row = widgets.HBox([prompt, count, remove])
        row.prompt, row.count = prompt, count

        def drop(_: Any) -> None:
            self.scenes_box.children = [r for r in self.scenes_box.children if r is not row]
            self._show_timeline()

        remove.on_click(drop)
        self.scenes_box.children = [*self.scenes_box.children, row]
        self._show_timeline()
        return row

    def scenes(self) -> list[dict]:
        """The timeline as the preset's ``prompts.scenes`` (rows without a prompt are left out)."""
        return [{"texts": r.prompt.value.strip(), "frames": r.count.value} for r in self.scenes_box.children
                if r.prompt.value.strip()]

    def _show_timeline(self) -> None:
        rows = self.scenes_box.children
        self.frames.disabled = bool(rows)
        if rows:
            total = sum(r.count.value for r in rows)
            self.timeline_note.value = (f"<small>{len(rows)} scenes, {total} frames; the prompt above is a style over "
                                        "every scene</small>")
        else:
            self.timeline_note.value = "<small>one prompt for the whole render; add scenes to tell a story</small>"

    # --- motion -----------------------------------------------------------------------------------

    def set_move(self, name: str) -> None:
        """Fill the motion keyframes with a named move ("slow zoom in", "orbit", "pan left", ...)."""
        for key in MOTION_KEYS:
            self.motion[key].value = MOVES[name].get(key, MOTIONS_STILL[key])

    def _on_song(self) -> None:
        saved = self._save_upload(self.beat_upload, AUDIO_SUFFIXES, "song", self.beat_status)
        if saved:
            self.song = saved[-1]
            self.beat_sync.value = True
        self._show_beats()

    def _show_beats(self) -> None:
        self.beat_sync.disabled = self.song is None
        self.beat_pulse.layout.display = "" if self.beat_sync.value else "none"
        self.motion["zoom"].disabled = bool(self.beat_sync.value)
        if self.song:
            state = "the zoom pulses on its beats" if self.beat_sync.value else "tick the box to pulse the zoom on its beats"
            self.beat_status.value = f"<small>song: {Path(self.song).name}; {state}</small>"

    # --- seed, images -----------------------------------------------------------------------------

    def roll_seed(self) -> int:
        """A new random seed (the dice button)."""
        self.seed.value = random.SystemRandom().randint(0, SEED_MAX)
        return self.seed.value

    def _save_upload(self, upload: widgets.FileUpload, suffixes: tuple, kind: str, status: widgets.HTML) -> list[str]:
        files = uploaded_files(upload)
        if not files:
            return []
        saved = []
        for name, content in files:
            safe = _safe_name(name, kind)
            if Path(safe).suffix.lower() not in suffixes:
                import html

                status.value = (f"<span style='color:#b00'>{kind}: {html.escape(name)} is not allowed; upload one of "
                                f"{', '.join(suffixes)}</span>")
                clear_upload(upload)
                return []
            path = self.uploads / safe
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            saved.append(str(path))
        clear_upload(upload)  # the next pick starts fresh (and a file is not kept twice in the notebook)
        return saved

    def _on_image(self, upload: widgets.FileUpload, target: bool) -> None:
        saved = self._save_upload(upload, IMAGE_SUFFIXES, "image", self.images_status)
        if not saved:
            return
        if target:
            self.target_images += saved
        else:
            self.init_image = saved[-1]
        self._show_images()

    def _clear_images(self) -> None:
        self.init_image, self.target_images = None, []
        self._show_images()

    def _show_images(self) -> None:
        parts = []
        if self.init_image:
            parts.append(f"starts from {Path(self.init_image).name}")
        if self.target_images:
            parts.append("steers towards " + ", ".join(Path(p).name for p in self.target_images))
        self.images_status.value = f"<small>{'; '.join(parts) or 'no images: starts from noise'}</small>"

    def _show_engine(self) -> None:
        engine = self.engine.value
        self.engine_settings.children = [self._engine_boxes[engine]]
        self.optimized_settings.layout.display = "" if engine in OPTIMIZED else "none"
        self.engine_info.value = {
            "vqgan": "<small>VQGAN-CLIP: a VQGAN latent optimized frame by frame</small>",
            "pixels": "<small>paper 000: pixels optimized directly, fast, painterly</small>",
            "t2v_zero": "<small>Text2Video-Zero: a diffusion model samples chunks of frames (GPU)</small>",
            "animatediff": "<small>AnimateDiff: a video diffusion model (GPU, ~12 GB)</small>",
        }[engine]
