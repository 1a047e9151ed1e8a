"""Production panel: render with a live preview, a progress bar with ETA, Stop and Resume, the contact sheet, the draft video."""

from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from vqclip.ui.common import NotebookEnv, download_line, error_html, preset_data, setup_notebook, smoke_preset
from vqclip.ui.compat import image_widget, set_image, video_widget
from vqclip.ui.jobs import Job
from vqclip.ui.judge import JudgeBox

FROM_PANEL = "@pre-production panel"  # the preset choice that means "what the pre-production panel shows now"
ETA_AFTER = (3, 1.0)  # steps and seconds measured before a rate and ETA are shown (the first steps warm up)

__all__ = ["ProductionPanel", "preset_choices"]


def preset_choices(env: NotebookEnv) -> list[tuple[str, str]]:
    """(label, preset) pairs: the presets saved in this notebook's folder first (newest first), then the bundled ones."""
    from vqclip.settings.render import list_presets

    saved = sorted(env.presets.glob("*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True) if env.presets.is_dir() else []
    return [(f"{p.stem} (saved)", str(p)) for p in saved] + [(f"{n}: {d[:60]}", n) for n, d in list_presets()]


class _ConfigSource:
    """A RenderConfig given to the panel, shaped like the pre-production panel it otherwise renders from."""

    def __init__(self, data: dict, name: str):
        self.data, self.save_name = data, widgets.Text(value=name)

    def preset_dict(self, smoke: bool = False) -> dict:
        """The config as a preset dict (never shrunk here: the production panel shrinks in smoke mode)."""
        import copy

        return copy.deepcopy(self.data)


class ProductionPanel(widgets.VBox):
    """Render a preset into ``<out_root>/renders/<name>``; Stop saves the state, Resume continues."""

    def __init__(self, env: NotebookEnv | None = None, preset: Any = None, name: str | None = None):
        """``preset``: a bundled name, a YAML path, a RenderConfig, or a PreProductionPanel whose current choices are rendered."""
        self.env = env or setup_notebook()
        self.result = None  # the last RenderResult
        self.events: list[str] = []  # event kinds seen, for tests and the curious
        self._stop = threading.Event()
        self._job: Job | None = None
        self._t0 = 0.0
        self._it0 = 0
        self.source = None  # a PreProductionPanel when rendering its choices
        self.note_earlier = ""  # says which folder a new render did not overwrite
        self._stop_at: int | None = None
        choices = preset_choices(self.env)
        values = [v for _, v in choices]
        from vqclip.settings.render import RenderConfig, config_to_dict

        if isinstance(preset, RenderConfig):  # a typed config: rendered as it is (shrunk in smoke mode)
            self.source, preset = _ConfigSource(config_to_dict(preset), name or "render"), FROM_PANEL
            choices.insert(0, ("the config given", FROM_PANEL))
        elif preset is not None and not isinstance(preset, (str, Path)):
            self.source, preset = preset, FROM_PANEL
            choices.insert(0, ("the pre-production panel's choices", FROM_PANEL))
        elif preset is not None and preset not in values:
            choices.insert(0, (Path(preset).stem, preset))
            values.insert(0, preset)
        if preset is None:  # the newest saved preset, else the paper's example
            saved = [v for label, v in choices if label.endswith("(saved)")]
            preset = saved[0] if saved else "klee_garden" if "klee_garden" in values else values[0]
        self.preset = widgets.Dropdown(options=choices, value=preset, description="Preset",
                                       layout=widgets.Layout(width="95%"))
        self.name = widgets.Text(description="Render as")
        self.render_button = widgets.Button(description="Render", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.resume_button = widgets.Button(description="Resume", icon="forward", button_style="info")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Progress", layout=widgets.Layout(width="95%"))
        self.status = widgets.HTML()
        self.preview = image_widget("384px")
        self.contact_sheet = image_widget("95%")
        self.video_box = widgets.VBox()
        self.message = widgets.HTML()
        self.judged_dir: Path | None = None
        self.judge = JudgeBox(lambda: self.judged_dir)
        self.mode_note = widgets.HTML()
        if self.env.smoke:
            from vqclip.ui.toy import toy_summary

            self.mode_note.value = (f"<div style='background:#fff6d5;padding:4px 8px'><b>SMOKE MODE</b>: whatever the preset "
                                    f"says, this renders with the {html.escape(toy_summary())}, at 48x32 with a few steps. "
                                    "Untick SMOKE in the setup cell and run it again for real renders.</div>")

        self.preset.observe(lambda c: self._default_name(), names="value")
        self.render_button.on_click(lambda _: self.start(resume=False))
        self.resume_button.on_click(lambda _: self.start(resume=True))
        self.stop_button.on_click(lambda _: self.stop())
        self._default_name()
        super().__init__([
            widgets.HTML("<h3>Production</h3>"), self.mode_note, self.preset, self.name,
            widgets.HBox([self.render_button, self.stop_button, self.resume_button]),
            self.progress, self.status, self.preview, self.message,
            widgets.HTML("<b>Contact sheet</b>"), self.contact_sheet, widgets.HTML("<b>Draft video</b>"), self.video_box,
            self.judge,
        ])

    def _default_name(self) -> None:
        if self.preset.value == FROM_PANEL:
            self.name.value = self.source.save_name.value.strip() or "render"
        else:
            self.name.value = Path(str(self.preset.value)).stem

    @property
    def out_dir(self) -> Path:
        """Where this render goes."""
        return self.env.renders / (self.name.value.strip() or "render")

    def config(self):
        """The validated RenderConfig of the chosen preset (shrunk in smoke mode)."""
        from vqclip.settings.render import load_config

        if self.preset.value == FROM_PANEL:
            data = self.source.preset_dict(smoke=False)
        else:
            data = preset_data(self.preset.value)
        return load_config(smoke_preset(data) if self.env.smoke else data)

    # --- running ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while a render is going."""
        return self._job is not None and self._job.running

    def start(self, resume: bool = False) -> Job:
        """Render in a background thread, so Stop and the other buttons stay clickable; return the Job.

        A new render goes to a fresh folder (``name-2`` when ``name`` holds one); Resume continues ``name``.
        """
        if self.running:
            self.message.value = "a render is already running; press Stop first"
            return self._job
        if not resume:
            from vqclip.production.run import next_free_folder

            fresh = next_free_folder(self.out_dir)
            if fresh != self.out_dir:  # the name field follows, so Resume and post find this render
                self.note_earlier = f"{self.out_dir.name} holds an earlier render, kept as it is"
                self.name.value = fresh.name
            else:
                self.note_earlier = ""
        self._stop.clear()  # here, not in the thread: a Stop pressed right after Render must not be lost
        self._stop_at = None
        self._job = Job(self._render, resume)
        return self._job

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the background render to end (Stop stays clickable meanwhile); return its result."""
        if self._job is not None:
            self._job.wait(timeout, on_interrupt=self.stop)
        return self.result

    def stop(self) -> None:
        """Ask the render to stop at the next step; its state is saved and Resume continues it."""
        if self.running and not self._stop.is_set():
            self._stop_at = self.progress.value  # the step shown when Stop was handled
            self.message.value = "stopping after this step..."
        self._stop.set()

    def run(self, resume: bool = False):
        """Render and wait for it; return the RenderResult. In a notebook, ``await panel.run_async()`` keeps Stop live."""
        self.start(resume=resume)
        return self.wait()

    async def run_async(self, resume: bool = False):
        """Render and await it, Stop and the other buttons live meanwhile ("Run all" waits here); return the RenderResult."""
        job = self.start(resume=resume)
        await job.wait_async(on_interrupt=self.stop)
        return self.result

    def _render(self, resume: bool):
        from vqclip.production.render import render

        if resume:
            self.note_earlier = ""
        self.render_button.disabled = self.resume_button.disabled = True
        self.stop_button.disabled = False
        earlier = "" if resume or not self.note_earlier else f" ({html.escape(self.note_earlier)})"
        self.message.value = f"{'resuming' if resume else 'rendering'} into {html.escape(str(self.out_dir))}{earlier}"
        self.status.value = "loading the models (the first use downloads them)..."
        self._t0, self._it0 = time.time(), -1
        try:
            cfg = self.config()
            self.result = render(cfg, self.out_dir, callback=self._on_event, resume=resume)
        except Exception as exc:  # shown in the panel: a background thread's traceback is easy to miss
            self.message.value = error_html(exc, prefix="render: ")
            self.status.value = ""
            return None
        finally:
            self.render_button.disabled = self.resume_button.disabled = False
            self.stop_button.disabled = True
        self.show_result(self.result)
        return self.result

    def _on_event(self, event: dict) -> str | None:
        kind = event["event"]
        if kind not in self.events:
            self.events.append(kind)
        if kind == "iteration":
            self.status.value = self._progress_line(event)
        elif kind == "download":
            self.status.value = download_line(event)
        elif kind in ("preview", "frame") and event.get("image") is not None:
            set_image(self.preview, event["image"], max_side=384)
        return "stop" if self._stop.is_set() else None

    def _progress_line(self, event: dict) -> str:
        done, total = event["total_iteration"], max(1, event["total_iterations"])
        now = time.time()
        if self._it0 < 0:  # the first step includes model loading and warm-up: measure from its end
            self._it0, self._t0 = done, now
        self.progress.max, self.progress.value = total, min(done, total)
        where = f"frame {event['frame'] + 1}/{event['frames']}, step {event['iteration']}/{event['iterations']}"
        loss = event.get("losses", {}).get("total")
        if loss is not None:
            where += f", loss {loss:.3f}"
        steps, seconds = done - self._it0, now - self._t0
        if steps < ETA_AFTER[0] or seconds < ETA_AFTER[1]:
            return f"{where} &middot; ETA: measuring..."
        rate = steps / seconds
        speed = f"{rate:.1f} steps/s" if rate >= 1 else f"{1 / rate:.1f} s/step"
        return f"{where} &middot; {speed} &middot; ETA {_hms((total - done) / rate)}"

    def show_result(self, result) -> None:
        """The contact sheet, the draft video and what to do next."""
        if result is None:
            return
        self.judged_dir = Path(result.out_dir)
        self.judge.enable(bool(result.frames))
        if result.contact_sheet is not None and Path(result.contact_sheet).is_file():
            set_image(self.contact_sheet, result.contact_sheet)
        if result.completed:
            earlier = f"; {html.escape(self.note_earlier)}" if self.note_earlier else ""
            self.message.value = (f"done: {len(result.frames)} frames in {result.seconds:.0f} s (seed {result.seed}) "
                                  f"&rarr; {html.escape(str(result.out_dir))}{earlier}")
            self.show_video()
        else:
            lag = self.progress.value - self._stop_at if self._stop_at is not None else None
            when = f" ({lag} step{'s' if lag != 1 else ''} after Stop)" if lag is not None and result.stop_reason == "stopped" else ""
            self.message.value = (f"{result.stop_reason}{when} after {len(result.frames)} frames; the state is saved in "
                                  f"{html.escape(str(result.out_dir))}. Press Resume to continue, also after a "
                                  "disconnect (run the cells again, then Resume).")

    def show_video(self, width: int = 480):
        """Put the draft video in the panel (and return the player)."""
        path = self.out_dir / "video.mp4"
        if not path.is_file():
            return None
        player = video_widget(path, width=width)
        self.video_box.children = [player]
        return player


def _hms(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
