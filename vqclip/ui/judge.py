"""The "Judge" box of the production and post panels: a render's eval (score curve + numbers) with one button."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from vqclip.ui.common import error_html
from vqclip.ui.compat import image_widget, set_image
from vqclip.ui.jobs import Job

__all__ = ["JudgeBox", "judge_spec"]


def judge_spec(run_dir: str | Path) -> str:
    """The CLIP that judges a render: the toy CLIP when it used toy models (offline), else ViT-B-32/openai as in the papers."""
    import yaml

    settings = yaml.safe_load((Path(run_dir) / "settings.yaml").read_text(encoding="utf-8")) or {}
    models = settings.get("models") or {}
    toy = models.get("vqgan") == "toy" or models.get("diffusion") == "toy" or any(
        (c.get("spec") if isinstance(c, dict) else c) == "toy" for c in models.get("clip") or [])
    return "toy" if toy else "ViT-B-32/openai"


class JudgeBox(widgets.VBox):
    """A button that runs :func:`vqclip.metrics.evaluate` on ``run_dir()`` off the kernel thread and shows the plot."""

    def __init__(self, run_dir: Callable[[], Path | None], label: str = "Judge this render"):
        self.run_dir = run_dir
        self.button = widgets.Button(description=label, icon="check", disabled=True,
                                     tooltip="CLIP score per frame, frame-to-frame consistency and flicker (vqclip eval)")
        self.status = widgets.HTML()
        self.plot = image_widget("95%")
        self.job: Job | None = None
        self.button.on_click(lambda _: self.evaluate())
        super().__init__([widgets.HTML("<b>Judge</b>"), self.button, self.status, self.plot])

    def enable(self, on: bool = True) -> None:
        """Allow judging (once there are frames to judge)."""
        self.button.disabled = not on

    def evaluate(self) -> Job | None:
        """Judge the render: the score curve and the headline numbers appear in the box when done."""
        from vqclip.metrics import evaluate

        folder = self.run_dir()
        if folder is None or (self.job is not None and self.job.running):
            return self.job
        spec = judge_spec(folder)
        self.status.value = f"<small>judging {html.escape(Path(folder).name)} with {html.escape(spec)}…</small>"

        def work():
            try:
                report = evaluate(folder, clip=spec)
            except Exception as exc:  # shown in the panel: this runs in a background thread
                self.status.value = error_html(exc, prefix="judge: ")
                return None
            guided = " (the same CLIP guided this render: its score is inflated)" if report.judge_guided else ""
            self.status.value = f"<small>{html.escape(report.summary())}{html.escape(guided)}</small>"
            if report.plot_path is not None and Path(report.plot_path).is_file():
                set_image(self.plot, report.plot_path)
            return report

        self.job = Job(work)
        return self.job
