"""Pre-production panel: preset, prompt and style, checkpoint, size, the GPU memory check, a first-frame preview, save."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from vqclip.ui.common import NotebookEnv, download_line, error_html, preset_data, save_preset_yaml, setup_notebook, smoke_preset
from vqclip.ui.compat import image_widget, section, set_image
from vqclip.ui.controls import OPTIMIZED, CreativeControls
from vqclip.ui.jobs import Debouncer, Job

__all__ = ["PreProductionPanel", "STYLE_PHRASES", "SIZE_PRESETS"]

#: Phrases an artist can add to a prompt: artists, media, looks.
STYLE_PHRASES = [
    "in the style of Paul Klee", "in the style of Vincent van Gogh", "in the style of Hokusai", "in the style of Claude Monet",
    "in the style of Wassily Kandinsky", "in the style of M. C. Escher", "watercolor", "ukiyo-e woodblock print",
    "oil painting", "pencil sketch", "pen and ink drawing", "stained glass", "pixel art", "low poly", "art nouveau",
    "cyberpunk", "matte painting, trending on artstation", "unreal engine render", "35mm photograph", "isometric",
]

#: Frame sizes by aspect, small to large; sides are multiples of 16 (the f16 VQGANs' grid).
SIZE_PRESETS = {
    "16:9": [(448, 256), (576, 320), (640, 360), (768, 432), (1024, 576)],
    "9:16": [(256, 448), (320, 576), (360, 640), (432, 768)],
    "1:1": [(256, 256), (384, 384), (448, 448), (512, 512), (640, 640)],
    "4:3": [(384, 288), (512, 384), (640, 480), (768, 576)],
    "3:4": [(288, 384), (384, 512), (480, 640)],
    "21:9": [(672, 288), (896, 384)],
}
PREVIEW_SIDE = 128  # the quick preview renders the first frame with its longest side this big
PREVIEW_STEPS = 60  # at most this many steps for the preview's frame (the engines' defaults are 100-200)
ESTIMATE_DELAY = 0.4  # seconds without a change before the memory check runs (typing a width is many changes)


def _model_label(name: str, env: NotebookEnv) -> str:
    from vqclip.models.registry import get_model_info, model_size_text, model_status

    info = get_model_info(name)
    status = model_status(info, env.cache_dir)
    mark = {"yes": "downloaded", "packaged": "built in", "partial": "partly downloaded"}.get(status, "not downloaded")
    return f"{name} ({model_size_text(info, env.cache_dir)}, {mark})"


def with_toy_tuning(data: dict, preset: dict) -> dict:
    """The toy CLIP and the toy's tuned generation settings (the bundled ``default`` preset's) where ``preset`` sets none.

    Real-model settings give the toy models noise (a copied zoom_tunnel with toy models came out yellow);
    what the preset itself says, and a value typed into the panel, still win.
    """
    import copy

    toy = preset_data("default")
    d = copy.deepcopy(data)
    d.setdefault("models", {})["clip"] = copy.deepcopy(toy["models"]["clip"])
    gen, given = d.setdefault("generation", {}), preset.get("generation") or {}
    for key, value in (toy.get("generation") or {}).items():
        if key == "seed":
            continue
        if isinstance(value, dict):  # a section (cutouts, vqgan): the preset's own keys win
            gen[key] = {**value, **(given.get(key) or {})}
        elif key not in given and gen.get(key) is None:
            gen[key] = copy.deepcopy(value)
    return d


class PreProductionPanel(widgets.VBox):
    """Choose what to render and check it fits the GPU before anything runs."""

    def __init__(self, env: NotebookEnv | None = None, preset: str = "klee_garden", estimate: bool = True):
        from vqclip.settings.render import list_presets
        from vqclip.models.registry import list_models

        self.env = env or setup_notebook()
        self._quiet = False
        self._estimate_on = estimate
        self._estimates = Debouncer(self._check_fit, ESTIMATE_DELAY)
        self._preview_job: Job | None = None
        self.last_fit = None  # vqclip.preproduction.estimate.FitReport of the last check
        self.saved_path: Path | None = None
        self.preview_result = None
        presets = list_presets()
        names = [n for n, _ in presets]
        self.descriptions = dict(presets)
        # 1. Preset and prompt.
        self.preset = widgets.Dropdown(options=names, value=preset if preset in names else names[0], description="Preset")
        self.preset_info = widgets.HTML()
        self.prompt = widgets.Textarea(description="Prompt", layout=widgets.Layout(width="95%", height="64px"))
        self.style = widgets.Dropdown(options=STYLE_PHRASES, description="Style")
        self.add_style = widgets.Button(description="Add to prompt", icon="plus")
        # 2. Checkpoint.
        vqgans = [n for n in list_models("vqgan")]
        self.model = widgets.Dropdown(options=[(_model_label(n, self.env), n) for n in vqgans], description="VQGAN")
        self.model_info = widgets.HTML()
        # 3. Size, cutouts, precision.
        self.aspect = widgets.ToggleButtons(options=list(SIZE_PRESETS), description="Aspect")
        self.size = widgets.Dropdown(description="Size")
        self.width = widgets.BoundedIntText(value=640, min=16, max=4096, step=16, description="Width")
        self.height = widgets.BoundedIntText(value=360, min=16, max=4096, step=16, description="Height")
        self.cutn = widgets.IntSlider(value=32, min=1, max=128, description="Cutouts")
        self.precision = widgets.Dropdown(options=["auto", "fp16", "fp32", "bf16"], value="auto", description="Precision")
        self.memory = widgets.HTML()
        self.use_largest = widgets.Button(description="Use the largest size that fits", icon="compress", disabled=True,
                                          layout=widgets.Layout(width="auto"))
        # 4. Preview and save.
        self.preview_button = widgets.Button(description="Preview first frame", icon="eye", button_style="info",
                                            layout=widgets.Layout(width="auto"))
        self.preview_image = image_widget("256px")
        self.preview_status = widgets.HTML()
        self.save_name = widgets.Text(value="my_preset", description="Save as")
        self.save_button = widgets.Button(description="Save preset", icon="save", button_style="success")
        self.save_status = widgets.HTML()
        self.errors = widgets.HTML()
        self.toy_note = widgets.HTML()  # says so when the toy models render, and which words they do not know
        # 5. Every other creative setting; the VQGAN picker and cutouts show only for the vqgan engine.
        self.controls = CreativeControls(self.env.out_root / "uploads")
        self.controls.engine_box("vqgan").children = [self.model, self.model_info, self.cutn]

        self.preset.observe(self._on_preset, names="value")
        self.prompt.observe(lambda _: self.update_toy_note(), names="value")
        self.add_style.on_click(lambda _: self.add_style_phrase(self.style.value))
        self.model.observe(self._on_model, names="value")
        self.aspect.observe(self._on_aspect, names="value")
        self.size.observe(self._on_size, names="value")
        for w in (self.width, self.height, self.cutn, self.precision, self.controls.engine, self.controls.views):
            w.observe(lambda _: self.update_estimate(), names="value")
        self.controls.engine.observe(lambda _: self.update_toy_note(), names="value")
        self.use_largest.on_click(lambda _: self.apply_largest())
        self.preview_button.on_click(lambda _: self.start_preview())
        self.save_button.on_click(lambda _: self.save(self.save_name.value))

        super().__init__([
            widgets.HTML("<h3>Pre-production</h3>"),
            self.preset, self.preset_info, self.prompt, self.toy_note, widgets.HBox([self.style, self.add_style]),
            self.controls,
            self.aspect, self.size, widgets.HBox([self.width, self.height]),
            section("More settings", [self.precision]),
            self.memory, self.use_largest,
            self.preview_button, self.preview_status, self.preview_image,
            widgets.HBox([self.save_name, self.save_button]), self.save_status, self.errors,
        ])
        self._on_preset({"new": self.preset.value})

    # --- reading and writing the widgets ------------------------------------------------------

    def _on_preset(self, change: dict) -> None:
        name = change["new"]
        self.preset_info.value = f"<i>{html.escape(self.descriptions.get(name, ''))}</i>"
        data = preset_data(name)
        texts = (data.get("prompts") or {}).get("texts") or ""
        self.prompt.value = " | ".join(texts) if isinstance(texts, list) else str(texts)
        vq = (data.get("models") or {}).get("vqgan", "imagenet_f16_16384")
        if isinstance(vq, str) and vq in self.model_names:
            self.model.value = vq
        gen = data.get("generation") or {}
        self.controls.load(data)
        self.cutn.value = int((gen.get("cutouts") or {}).get("cutn", 32))
        self.precision.value = gen.get("precision", "auto")
        size = data.get("size") or {}
        self._set_size(int(size.get("width", 640)), int(size.get("height", 384)))
        self._on_model({"new": self.model.value})
        self.update_toy_note()

    def uses_toy_models(self) -> bool:
        """True when the render will use the toy models (smoke mode, or the toy VQGAN or toy CLIP chosen)."""
        clip = (preset_data(self.preset.value).get("models") or {}).get("clip") or []
        toy_clip = any((c.get("spec") if isinstance(c, dict) else c) == "toy" for c in clip)
        return self.env.smoke or toy_clip or (self.controls.engine.value == "vqgan" and self.model.value == "toy")

    def update_toy_note(self) -> None:
        """Say plainly when the toy models render, their size and the prompt words they do not know."""
        from vqclip.ui.toy import toy_note_html

        self.toy_note.value = toy_note_html(self.prompt.value, self.env.smoke) if self.uses_toy_models() else ""

    @property
    def model_names(self) -> list[str]:
        """The VQGAN registry names the picker offers."""
        return [v for _, v in self.model.options]

    def _on_model(self, change: dict) -> None:
        from vqclip.models.registry import get_model_info

        info = get_model_info(change["new"])
        self.model_info.value = f"<small>good for: {html.escape(info.good_for)}<br>source: {html.escape(info.source)}</small>"
        if change["new"] == "toy":  # the toy's tuned crops, unless the preset counts its own
            given = ((preset_data(self.preset.value).get("generation") or {}).get("cutouts") or {}).get("cutn")
            tuned = ((preset_data("default").get("generation") or {}).get("cutouts") or {}).get("cutn", self.cutn.value)
            self.cutn.value = int(given or tuned)
        self.update_toy_note()
        self.update_estimate()

    def _aspect_of(self, w: int, h: int) -> str | None:
        for name, sizes in SIZE_PRESETS.items():
            a, b = (int(x) for x in name.split(":"))
            if abs(w / h - a / b) < 0.03:
                return name
        return None

    def _set_size(self, w: int, h: int) -> None:
        self._quiet = True
        try:
            aspect = self._aspect_of(w, h)
            if aspect and self.aspect.value != aspect:
                self.aspect.value = aspect
            self._fill_sizes(self.aspect.value)
            opts = [v for _, v in self.size.options]
            self.size.value = (w, h) if (w, h) in opts else None
            self.width.value, self.height.value = w, h
        finally:
            self._quiet = False
        self.update_estimate()

    def _fill_sizes(self, aspect: str) -> None:
        self.size.options = [(f"{w} x {h}", (w, h)) for w, h in SIZE_PRESETS[aspect]]  # smoke mode shrinks at render time

    def _on_aspect(self, change: dict) -> None:
        if getattr(self, "_quiet", False):
            return
        self._fill_sizes(change["new"])
        sizes = [v for _, v in self.size.options]
        self.size.value = sizes[min(2, len(sizes) - 1)]

    def _on_size(self, change: dict) -> None:
        if getattr(self, "_quiet", False) or change["new"] is None:
            return
        self._quiet = True
        try:
            self.width.value, self.height.value = change["new"]
        finally:
            self._quiet = False
        self.update_estimate()

    def add_style_phrase(self, phrase: str) -> None:
        """Append a style phrase to the prompt (once)."""
        text = self.prompt.value.strip()
        if phrase.lower() in text.lower():
            return
        self.prompt.value = f"{text}, {phrase}" if text else phrase

    def unread_keys(self) -> set[str]:
        """The settings the chosen engine (with the preset's objective) never reads."""
        from vqclip.settings.render import unread_keys

        gen = preset_data(self.preset.value).get("generation")
        return unread_keys(self.controls.engine.value, gen.get("objective") if isinstance(gen, dict) else None)

    def overrides(self) -> list[str]:
        """The panel's own choices (prompt, size, precision, VQGAN, cutouts) as ``key=value`` overrides, for the chosen engine."""
        import json

        out = [f"prompts.texts={json.dumps(self.prompt.value)}"] if self.prompt.value.strip() else []
        out += [f"models.vqgan={self.model.value}", f"size.width={self.width.value}", f"size.height={self.height.value}",
                f"generation.cutouts.cutn={self.cutn.value}", f"generation.precision={self.precision.value}"]
        unread = self.unread_keys()  # the pixel engine has no VQGAN to pick and no cutouts to count
        return [o for o in out if o.partition("=")[0] not in unread and o.partition("=")[0].rsplit(".", 1)[0] not in unread]

    def preset_dict(self, smoke: bool | None = None) -> dict:
        """The chosen preset with the panel's changes, as a plain dict (shrunk when ``smoke``, default: in smoke mode)."""
        from vqclip.settings.render import apply_override

        data = self.controls.apply(preset_data(self.preset.value))  # with scenes, the prompt is a style over every scene
        for key in self.unread_keys():  # what the preset gave its own engine, the chosen one never reads
            parent, _, leaf = key.rpartition(".")
            section = data.get(parent) if parent else None
            if isinstance(section, dict):
                section.pop(leaf, None)
        if self.controls.engine.value == "vqgan" and self.model.value == "toy":
            data = with_toy_tuning(data, preset_data(self.preset.value))
        for item in self.overrides():
            apply_override(data, item)
        data["description"] = f"from {self.preset.value}: {self.prompt.value.strip()[:80]}"
        return smoke_preset(data) if (self.env.smoke if smoke is None else smoke) else data

    def config(self):
        """The validated RenderConfig of the current choices."""
        from vqclip.settings.render import load_config

        return load_config(self.preset_dict())

    # --- the GPU check --------------------------------------------------------------------------

    def update_estimate(self) -> None:
        """Check the current choices against the GPU soon, in the background; "checking..." until then."""
        if getattr(self, "_quiet", False) or not self._estimate_on or not hasattr(self, "memory"):
            return
        self.last_fit = None  # a stale "fits" must not outlive the change that made it wrong
        self.memory.value = "<i>checking the GPU memory...</i>"
        self.use_largest.disabled = True
        self._estimates.trigger()

    def wait_estimate(self, timeout: float = 60.0):
        """Wait for the pending memory check; return its FitReport (None if it failed)."""
        self._estimates.wait(timeout)
        return self.last_fit

    def _check_fit(self) -> None:
        """Estimate GPU memory for the current choices, by their engine, against the detected GPU (a T4 when there is none)."""
        from vqclip.preproduction.estimate import T4, check_fit
        from vqclip.settings.render import load_config

        try:
            cfg = load_config(self.preset_dict(smoke=False))  # the real render, also in smoke mode
            fit = check_fit(cfg, gpu=self.env.gpu or T4)
        except Exception as exc:  # shown in the panel: this runs in a background thread
            self.memory.value = error_html(exc, prefix="memory check: ")
            return
        self.last_fit = fit
        where = "" if self.env.gpu else " (no GPU here: checked against a Colab T4)"
        smoke = " The smoke render itself is tiny: this is for the real one." if self.env.smoke else ""
        s = fit.estimate
        if cfg.generation.engine in OPTIMIZED:
            line = (f"{cfg.generation.engine} engine: ~{s.total_gib:.1f} GiB GPU memory, ~{s.seconds_per_iteration():.2f} s per "
                    f"step on a T4 ({s.tflop:.2f} TFLOP, {s.precision}; estimates){where}.{smoke}")
        else:  # a diffusion engine: the whole render (denoising + decoding), not one step
            line = f"{s.summary()}{where}.{smoke}"
        color = "#070" if fit.fits else "#b00"
        self.memory.value = f"<b style='color:{color}'>{html.escape(fit.message)}</b><br><small>{html.escape(line)}</small>"
        self.use_largest.disabled = fit.fits or fit.largest is None
        self.use_largest.description = (f"Use {fit.largest[0]} x {fit.largest[1]} (fits)" if fit.largest and not fit.fits
                                        else "Use the largest size that fits")

    def apply_largest(self) -> None:
        """Switch to the largest size of this aspect that fits the GPU."""
        if self.last_fit is not None and self.last_fit.largest:
            self._set_size(*self.last_fit.largest)

    # --- preview and save -------------------------------------------------------------------------

    def preview_dict(self) -> dict:
        """The current choices at a low resolution and few steps: a quick look at the first frame before the real render."""
        data = self.preset_dict()
        w, h = data["size"]["width"], data["size"]["height"]
        scale = min(1.0, PREVIEW_SIDE / max(w, h))
        f = 16 if not self.env.smoke else 4
        data["size"] = {"width": max(f, round(w * scale / f) * f), "height": max(f, round(h * scale / f) * f)}
        gen = data.setdefault("generation", {})
        if gen.get("engine", "vqgan") in OPTIMIZED:  # null means the engine's default (100-200 steps): cap it
            steps = min(int(gen.get("iterations_first_frame") or PREVIEW_STEPS), PREVIEW_STEPS)
            gen["iterations_first_frame"] = steps
            data.setdefault("output", {})["images_interval"] = max(1, steps // 4)
        return data

    def start_preview(self) -> Job:
        """Render the first frame small in the background (the buttons stay live); return the Job."""
        if self._preview_job is not None and self._preview_job.running:
            return self._preview_job
        self.preview_status.value = "loading the models for a preview (the first use downloads them)..."
        self._preview_job = Job(self._preview)
        return self._preview_job

    def preview(self):
        """Render the first frame small and wait for it; return the RenderResult."""
        return self.start_preview().wait()

    async def preview_async(self):
        """Render the first frame small and await it, the other buttons live meanwhile; return the RenderResult."""
        return await self.start_preview().wait_async()

    def _preview(self):
        from vqclip.preproduction.preview import preview_first_frame

        # one reused folder (render replaces a finished render's frames), not a new temp dir per click
        out = self.env.out_root / "previews" / "first_frame"

        def show(event: dict) -> None:
            if event["event"] == "download":
                self.preview_status.value = download_line(event)
            elif event["event"] == "iteration":
                self.preview_status.value = f"preview: step {event['iteration']}/{event['iterations']}"
            elif event["event"] in ("preview", "frame") and event.get("image") is not None:
                set_image(self.preview_image, event["image"], max_side=256)

        try:
            self.preview_result = preview_first_frame(self.preview_dict(), out, callback=show)
        except Exception as exc:  # shown in the panel: a background thread's traceback is easy to miss
            self.preview_status.value = error_html(exc, prefix="preview: ")
            return None
        self.preview_status.value = f"preview done ({self.preview_result.seconds:.0f} s): {self.preview_result.frames[0]}"
        return self.preview_result

    def save(self, name: str) -> Path | None:
        """Save the current choices as ``<out_root>/presets/<name>.yaml`` (validated first)."""
        from vqclip.settings.render import load_config
        from vqclip.errors import VqclipError

        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,64}", name or ""):
            self.save_status.value = (f"<span style='color:#b00'>preset name {name!r} is not allowed; use letters, digits, "
                                      "_ and - (up to 64)</span>")
            return None
        data = self.preset_dict(smoke=False)  # the real choices; the production panel shrinks them in smoke mode
        try:
            load_config(data)
        except VqclipError as exc:
            self.save_status.value = error_html(exc)
            return None
        fit = self.last_fit
        header = f"saved from the pre-production notebook (based on {self.preset.value})"
        if fit is not None:
            header += f"\n{fit.estimate.summary()}"
        self.saved_path = save_preset_yaml(data, self.env.presets / f"{name}.yaml", header)
        self.save_status.value = f"saved {html.escape(str(self.saved_path))}"
        return self.saved_path

    def _repr_summary(self) -> dict[str, Any]:
        return {"preset": self.preset.value, "model": self.model.value, "size": (self.width.value, self.height.value)}
