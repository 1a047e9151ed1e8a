"""Post-production panel: pick renders, speed, loop/boomerang, fades, crossfades, a title, music; export and play."""

from __future__ import annotations

import html
import re
from pathlib import Path

import ipywidgets as widgets

from vqclip.ui.common import NotebookEnv, error_html, find_renders, setup_notebook
from vqclip.ui.compat import clear_upload, section, uploaded_files, video_widget
from vqclip.ui.judge import JudgeBox

__all__ = ["PostProductionPanel"]

AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".aac")
TITLE_POSITIONS = ["center", "top", "bottom", "top-left", "top-right", "bottom-left", "bottom-right"]


def _beat_song(render: Path) -> Path | None:
    """The song a render's motion follows (a beat schedule in its settings.yaml), when the file is still there."""
    import yaml

    try:
        anim = (yaml.safe_load((render / "settings.yaml").read_text(encoding="utf-8")) or {}).get("animation") or {}
    except (OSError, yaml.YAMLError):
        return None
    for value in anim.values():
        if isinstance(value, dict) and value.get("beats"):
            path = Path(str(value["beats"])).expanduser()
            path = path if path.is_absolute() else render / path
            if path.is_file():
                return path
    return None


class PostProductionPanel(widgets.VBox):
    """Join finished renders into a piece with vqclip.postproduction.run and play it inline."""

    def __init__(self, env: NotebookEnv | None = None):
        self.env = env or setup_notebook()
        self.result = None  # the last vqclip.postproduction.run.PostResult
        self.music_path: Path | None = None
        self.renders = widgets.SelectMultiple(description="Renders", layout=widgets.Layout(width="95%", height="96px"))
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.speed = widgets.FloatSlider(value=1.0, min=0.25, max=4.0, step=0.25, description="Speed (all)")
        self.scene_speeds: dict[str, widgets.FloatSlider] = {}  # render folder -> its own speed
        self.scene_box = widgets.VBox()
        self.loop = widgets.IntSlider(value=1, min=1, max=8, description="Loop")
        self.boomerang = widgets.Checkbox(value=False, description="Boomerang (forward, then back)")
        self.transition = widgets.Dropdown(options=["cut", "crossfade", "fade"], value="crossfade", description="Between")
        self.transition_duration = widgets.FloatSlider(value=1.0, min=0.1, max=4.0, step=0.1, description="Seconds")
        self.fade_in = widgets.FloatSlider(value=0.5, min=0.0, max=5.0, step=0.1, description="Fade in")
        self.fade_out = widgets.FloatSlider(value=1.0, min=0.0, max=5.0, step=0.1, description="Fade out")
        self.title = widgets.Text(description="Title", placeholder="text over the start of the piece")
        self.title_duration = widgets.FloatSlider(value=3.0, min=0.5, max=20.0, step=0.5, description="for (s)")
        self.title_position = widgets.Dropdown(options=TITLE_POSITIONS, value="center", description="at")
        self.music = widgets.FileUpload(accept=",".join(AUDIO_SUFFIXES), multiple=False, description="Music")
        self.music_status = widgets.HTML()
        # a render whose motion follows a song's beats offers that song as the music
        self.use_song = widgets.Button(description="Use the render's song", icon="music", layout=widgets.Layout(
            width="auto", display="none"))
        self.render_song: Path | None = None
        self.volume = widgets.FloatSlider(value=0.8, min=0.0, max=1.5, step=0.05, description="Volume")
        self.output_name = widgets.Text(value="piece", description="Save as")
        self.format = widgets.Dropdown(options=["mp4", "gif", "webm"], value="mp4", description="Format")
        self.export_button = widgets.Button(description="Export", icon="film", button_style="success")
        # Colab plays the piece inline but a student also wants the file: Colab's own download call
        self.download_button = widgets.Button(description="Download", icon="download", disabled=True,
                                              layout=widgets.Layout(display="" if self.env.in_colab else "none"))
        self.message = widgets.HTML()
        self.player = widgets.VBox()

        if self.env.smoke:  # smoke renders last a fraction of a second: keep fades and transitions shorter
            self.transition_duration.value = self.fade_in.value = self.fade_out.value = 0.1
        self.refresh_button.on_click(lambda _: self.refresh())
        self.renders.observe(lambda _: self._scene_rows(), names="value")
        self.speed.observe(lambda c: [setattr(w, "value", c["new"]) for w in self.scene_speeds.values()], names="value")
        self.download_button.on_click(lambda _: self.download())
        self.use_song.on_click(lambda _: self.choose_render_song())
        self.music.observe(lambda _: self._on_music(), names="value")
        self.export_button.on_click(lambda _: self.export())
        # the first render selected, judged as in the production panel
        self.judge = JudgeBox(lambda: Path(self.renders.value[0]) if self.renders.value else None, "Judge the first render")
        self.renders.observe(lambda _: self.judge.enable(bool(self.renders.value)), names="value")
        super().__init__([
            widgets.HTML("<h3>Post-production</h3>"),
            widgets.HBox([self.renders, self.refresh_button]), self.judge,
            widgets.HBox([self.speed, self.loop]), self.scene_box, self.boomerang,
            widgets.HBox([self.transition, self.transition_duration]),
            widgets.HBox([self.fade_in, self.fade_out]), self.title,
            widgets.HBox([self.title_duration, self.title_position]),
            section("Music", [widgets.HBox([self.music, self.volume]), self.use_song, self.music_status]),
            widgets.HBox([self.output_name, self.format, self.export_button, self.download_button]), self.message,
            self.player,
        ])
        self.refresh()
        self.judge.enable(bool(self.renders.value))

    def refresh(self) -> None:
        """List the finished renders (newest first) and select the newest."""
        found = find_renders(self.env.renders)
        self.renders.options = [(p.name, str(p)) for p in found]
        if found and not self.renders.value:
            self.renders.value = (str(found[0]),)

    def _scene_rows(self) -> None:
        """One speed slider per chosen render, so each scene can run at its own pace."""
        keep = {src: self.scene_speeds.get(src) for src in self.renders.value}
        for src, slider in keep.items():
            if slider is None:
                keep[src] = widgets.FloatSlider(value=self.speed.value, min=0.25, max=4.0, step=0.25,
                                                description=Path(src).name[:18], style={"description_width": "initial"})
        self.scene_speeds = keep
        self.scene_box.children = list(keep.values()) if len(keep) > 1 else []  # one scene: "Speed (all)" is its speed
        self.render_song = next(filter(None, (_beat_song(Path(src)) for src in self.renders.value)), None)
        self.use_song.layout.display = "" if self.render_song else "none"
        if self.render_song:
            self.use_song.description = f"Use the render's song: {self.render_song.name}"

    def choose_render_song(self) -> None:
        """Play the song the chosen render's motion follows as the piece's music."""
        if self.render_song is not None:
            self.music_path = self.render_song
            self.music_status.value = f"music: {html.escape(self.render_song.name)} (the song the motion follows)"

    def _on_music(self) -> None:
        files = uploaded_files(self.music)
        if not files:
            return
        name, content = files[-1]
        safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(name).name) or "music"
        if Path(safe).suffix.lower() not in AUDIO_SUFFIXES:
            self.music_status.value = (f"<span style='color:#b00'>music: {html.escape(name)!s} is not allowed; upload one of "
                                       f"{', '.join(AUDIO_SUFFIXES)}</span>")
            clear_upload(self.music)
            return
        folder = self.env.out_root / "music"
        folder.mkdir(parents=True, exist_ok=True)
        self.music_path = folder / safe
        self.music_path.write_bytes(content)
        self.music_status.value = f"music: {html.escape(safe)} ({len(content) / 1e6:.1f} MB)"

    def post_dict(self) -> dict:
        """The post settings of the current choices (see vqclip.settings.post.PostConfig)."""
        speeds = {src: w.value for src, w in self.scene_speeds.items()}
        scenes = [{"source": src, "speed": speeds.get(src, self.speed.value), "loop": self.loop.value,
                   "boomerang": self.boomerang.value} for src in self.renders.value]
        data = {
            "scenes": scenes, "transition": self.transition.value, "transition_duration": self.transition_duration.value,
            "fade_in": self.fade_in.value, "fade_out": self.fade_out.value,
            "output": {"path": str(self.output_path), "quality": "high"},
        }
        if self.title.value.strip():
            data["titles"] = [{"text": self.title.value.strip(), "duration": self.title_duration.value,
                               "position": self.title_position.value, "font": "sans-bold", "size": 0.12}]
        if self.music_path is not None:
            data["music"] = {"path": str(self.music_path), "volume": self.volume.value, "fade_out": 1.0}
        return data

    @property
    def output_path(self) -> Path:
        """Where the piece is written."""
        name = re.sub(r"[^A-Za-z0-9_\-]", "_", self.output_name.value.strip()) or "piece"
        return self.env.out_root / "post" / f"{name}.{self.format.value}"

    def export(self):
        """Compose and write the piece, then show it; returns the PostResult (None on a bad setting)."""
        from vqclip.errors import VqclipError
        from vqclip.postproduction.run import run_post

        if not self.renders.value:
            self.message.value = "<span style='color:#b00'>renders: none chosen; render something in the production notebook first</span>"
            return None
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self.message.value = "exporting..."
        try:
            self.result = run_post(self.post_dict())
        except VqclipError as exc:
            self.message.value = error_html(exc)
            return None
        self.download_button.disabled = False
        i = self.result.info
        self.message.value = (f"wrote {html.escape(str(self.result.path))}: {i.width}x{i.height}, {i.fps:g} fps, "
                              f"{self.result.duration:.1f} s{', with music' if i.has_audio else ''}")
        if self.result.path.suffix in (".mp4", ".webm"):
            self.player.children = [video_widget(self.result.path)]
        else:
            self.player.children = [widgets.Image(value=self.result.path.read_bytes(), format="gif")]
        return self.result

    def download(self) -> None:
        """Send the exported piece to the browser as a file download (Colab only)."""
        if self.result is None:
            return
        from google.colab import files  # only on Colab, where this button is shown

        files.download(str(self.result.path))
