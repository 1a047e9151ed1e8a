"""The run folder every engine writes: seed, settings.yaml, resume state, frames with PNG metadata, contact sheet, video.

Layout::

    frames/000000.png ...   each with prompt, seed, frame, iteration and model in PNG text chunks
    settings.yaml           the fully resolved settings, seed included: load it to render again
    contact_sheet.png       a grid of frames
    video.mp4               the draft video (H.264, yuv420p, even size, +faststart)
    resume.pt               state to continue after a disconnect or Ctrl-C (``resume=True``)
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import secrets
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from vqclip.errors import ConfigError
from vqclip.settings.render import RenderConfig, config_hash, config_to_dict, frame_settings, settings_diff

__all__ = ["RenderResult", "RunFolder", "StopOnSigint", "to_pil", "FRAME_NAME"]

FRAME_NAME = "{:06d}.png"
_FRAME_RE = re.compile(r"^\d{6}\.png$")


@dataclass
class RenderResult:
    """What a render produced and how it ended."""

    out_dir: Path
    frames: list[Path]  # every frame written so far, in order
    settings: Path  # settings.yaml
    seed: int  # the seed used (drawn when the preset said -1)
    iterations: int  # steps over the whole render (optimizer or denoising), resumed ones included
    completed: bool  # every frame was rendered
    stop_reason: str  # done | interrupted (Ctrl-C) | stopped (callback) | max_iterations
    seconds: float  # wall time of this call
    video: Path | None = None
    contact_sheet: Path | None = None
    frame_losses: list[float] = field(default_factory=list)  # final loss of each frame rendered in this call (optimized engines)


class RunFolder:
    """One render's output folder: opened with the config (seed drawn, resume checked), written frame by frame."""

    def __init__(self, out: Path, cfg: RenderConfig, state: dict | None):
        self.out, self.cfg, self.state = out, cfg, state
        self.frames_dir = out / "frames"
        self.seed = cfg.generation.seed
        self.chash = config_hash(cfg)
        self.settings = out / "settings.yaml"
        self.t0 = time.time()

    @classmethod
    def open(cls, out_dir: str | Path, cfg: RenderConfig, resume: bool) -> "RunFolder":
        """Check the folder against ``resume``, fix the seed, write settings.yaml; ConfigError on a mismatch."""
        from vqclip.production.resume import STATE_FILE, load_state

        out = Path(out_dir).expanduser()
        state = load_state(out) if resume else None
        if state is None and (out / STATE_FILE).is_file() and not _finished(out):
            raise ConfigError(
                f"output folder {str(out)!r} holds an unfinished render; continue it with --resume "
                f"(resume=True) or choose another output folder"
            )
        if state is not None:
            seed = int(state["seed"])
            if cfg.generation.seed not in (-1, seed):
                raise ConfigError(f"generation.seed: {cfg.generation.seed} is not allowed with --resume; the render in {str(out)!r} used seed {seed} (set it or leave -1)")
        else:
            seed = cfg.generation.seed if cfg.generation.seed >= 0 else secrets.randbelow(2**31)
        cfg = dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, seed=seed))
        run = cls(out, cfg, state)
        if state is not None and state["config_hash"] != run.chash:
            changed = settings_diff(state.get("settings") or {}, frame_settings(cfg))
            what = "; ".join(changed[:4]) if changed else f"hash {run.chash} vs {state['config_hash']}"
            raise ConfigError(
                f"--resume: the settings differ from the render in {str(out)!r} ({what}); resume with the same "
                f"preset and --set values (see its settings.yaml), or render to a new folder"
            )
        run.frames_dir.mkdir(parents=True, exist_ok=True)
        if state is None:
            for old in run.frames_dir.iterdir():  # a finished older render in this folder: replace its frames
                if _FRAME_RE.match(old.name):
                    old.unlink()
        run._write_settings()
        return run

    def _write_settings(self) -> None:
        from vqclip.production.resume import atomic_write_bytes

        text = "# the fully resolved settings of this render; `vqclip render settings.yaml` repeats it\n"
        text += yaml.safe_dump(config_to_dict(self.cfg), sort_keys=False, allow_unicode=True)
        atomic_write_bytes(self.settings, text.encode("utf-8"))

    def save_state(self, payload: dict, complete: bool = False) -> None:
        """resume.pt: the engine's ``payload`` with the seed, the settings' identity and the global RNG states."""
        from vqclip.production.resume import capture_rng, save_state

        save_state(self.out, {"version": 2, "seed": self.seed, "config_hash": self.chash,
                              "settings": frame_settings(self.cfg), "complete": complete, **payload, "rng": capture_rng()})

    def write_frame(self, index: int, image, prompt: str, iteration: int, model: str) -> Path:
        """Save frame ``index`` (a PIL image) as PNG with its text metadata, atomically."""
        from PIL.PngImagePlugin import PngInfo

        from vqclip.production.resume import atomic_write_bytes

        info = PngInfo()
        meta = {"prompt": prompt, "seed": str(self.seed), "frame": str(index), "iteration": str(iteration),
                "model": model, "software": "vqclip"}
        for k, v in meta.items():
            info.add_itxt(k, v)
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=info)
        path = self.frames_dir / FRAME_NAME.format(index)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def finish(self, stop_reason: str, iterations: int, frame_losses: list[float]) -> RenderResult:
        """Contact sheet and draft video from every frame on disk; the result."""
        frames = sorted(p for p in self.frames_dir.iterdir() if _FRAME_RE.match(p.name))
        completed = stop_reason == "done"
        sheet = video = None
        if frames and self.cfg.output.contact_sheet:
            sheet = _write_contact_sheet(frames, self.out / "contact_sheet.png")
        if completed and self.cfg.output.video:
            from vqclip.video import write_video

            video = write_video(frames, self.out / "video.mp4", fps=self.cfg.output.fps, quality=self.cfg.output.video_quality)
        return RenderResult(
            out_dir=self.out, frames=frames, settings=self.settings, seed=self.seed, iterations=iterations,
            completed=completed, stop_reason=stop_reason, seconds=time.time() - self.t0, video=video,
            contact_sheet=sheet, frame_losses=frame_losses,
        )


def _finished(out: Path) -> bool:
    """True when ``out`` holds a completed render (its state says so)."""
    from vqclip.production.resume import load_state

    try:
        return bool(load_state(out).get("complete"))
    except ConfigError:
        return False


def to_pil(image01: torch.Tensor):
    """A ``(1,3,H,W)`` tensor in [0,1] as a PIL image."""
    from PIL import Image

    arr = image01[0].detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def _write_contact_sheet(frames: list[Path], path: Path, max_frames: int = 24, columns: int = 6) -> Path:
    """A grid of up to ``max_frames`` evenly spaced frames, each labelled with its number."""
    from PIL import Image, ImageDraw

    from vqclip.production.resume import atomic_write_bytes

    picks = frames if len(frames) <= max_frames else [frames[round(i * (len(frames) - 1) / (max_frames - 1))] for i in range(max_frames)]
    first = Image.open(picks[0])
    scale = min(1.0, 192 / max(first.size))
    tw, th = max(1, round(first.width * scale)), max(1, round(first.height * scale))
    cols = min(columns, len(picks))
    rows = math.ceil(len(picks) / cols)
    pad, label = 4, 14
    sheet = Image.new("RGB", (cols * (tw + pad) + pad, rows * (th + pad + label) + pad), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, fp in enumerate(picks):
        x, y = pad + (i % cols) * (tw + pad), pad + (i // cols) * (th + pad + label)
        sheet.paste(Image.open(fp).convert("RGB").resize((tw, th), Image.Resampling.LANCZOS), (x, y))
        draw.text((x, y + th + 1), f"frame {int(fp.stem)}", fill=(220, 220, 220))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


class StopOnSigint:
    """Turn the first Ctrl-C into a request to stop at the next step (state gets saved); the second one raises."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
