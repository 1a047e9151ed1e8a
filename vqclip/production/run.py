"""The run folder every engine writes: seed, settings.yaml, resume state, frames with PNG metadata, contact sheet, video.

Layout::

    frames/000000.png ...   each with prompt, seed, frame, iteration and model in PNG text chunks
    settings.yaml           the fully resolved settings, seed included: load it to render again
    contact_sheet.png       a grid of frames
    video.mp4               the draft video (H.264, yuv420p, even size, +faststart)
    resume.pt               state to continue after a disconnect or Ctrl-C (``resume=True``)
    .lock                   the pid of the render that owns the folder (removed when it ends; a dead pid's lock is stale)

A folder is owned by one render at a time. A new render never replaces an earlier one: it goes to
:func:`next_free_folder` (``name-2``, ``name-3``...) unless ``overwrite=True``. Nothing in the folder
changes until the render's checks, device, precision and models are ready (:meth:`RunFolder.commit`).
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
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

__all__ = ["RenderResult", "RunFolder", "StopOnSigint", "to_pil", "FRAME_NAME", "next_free_folder", "holds_render", "locked_by_other", "holds_unfinished", "LOCK_FILE"]

FRAME_NAME = "{:06d}.png"
_FRAME_RE = re.compile(r"^\d{6}\.png$")
LOCK_FILE = ".lock"
# what a render leaves in its folder: removed together when a render is overwritten
_OUTPUTS = ("video.mp4", "contact_sheet.png", "resume.pt")


def holds_render(out: str | Path) -> bool:
    """True when ``out`` holds anything of a render (frames, settings, state, video), a lock file aside."""
    out = Path(out).expanduser()
    if not out.is_dir():
        return False
    return any(p.name != LOCK_FILE for p in out.iterdir())


def next_free_folder(out: str | Path) -> Path:
    """``out`` when it holds no render, else the first free ``out-2``, ``out-3``...: a new render never replaces one."""
    base = Path(out).expanduser()
    candidate, n = base, 1
    while holds_render(candidate) or locked_by_other(candidate) is not None:
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OSError:
        return False
    return True


def locked_by_other(out: Path) -> int | None:
    """The pid of another live process that holds ``out``'s lock, else None (no lock, a stale one, or ours)."""
    try:
        pid = int((out / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid != os.getpid() and _pid_alive(pid) else None


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

    def __init__(self, out: Path, cfg: RenderConfig, state: dict | None, overwrite: bool = False):
        self.out, self.cfg, self.state, self.overwrite = out, cfg, state, overwrite
        self.created = not out.exists()  # an empty folder we made only for the lock goes away on failure
        self.committed = False
        self._lock: Path | None = None
        self.frames_dir = out / "frames"
        self.seed = cfg.generation.seed
        self.chash = config_hash(cfg)
        self.settings = out / "settings.yaml"
        self.t0 = time.time()

    @classmethod
    def open(cls, out_dir: str | Path, cfg: RenderConfig, resume: bool, overwrite: bool = False) -> "RunFolder":
        """Check the folder against ``resume``, fix the seed and take the lock; ConfigError on a mismatch. Nothing else changes yet."""
        from vqclip.production.resume import STATE_FILE, load_state

        out = Path(out_dir).expanduser()
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output folder: {str(out)!r} is a file, not a folder; choose a folder path")
        holder = locked_by_other(out)
        if holder is not None:
            raise ConfigError(f"output folder {str(out)!r} is in use by another render (pid {holder}, {str(out / LOCK_FILE)!r}); "
                              f"wait for it to end or choose another output folder")
        state = load_state(out) if resume else None
        if state is None and not overwrite and (out / STATE_FILE).is_file() and not _finished(out):
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
        run = cls(out, cfg, state, overwrite)
        if state is not None and state["config_hash"] != run.chash:
            changed = settings_diff(state.get("settings") or {}, frame_settings(cfg))
            if _extends(changed, state, cfg):  # more frames after the last one: continue from its saved state
                run.state = state = {**state, "complete": False}
            else:
                what = "; ".join(changed[:4]) if changed else f"hash {run.chash} vs {state['config_hash']}"
                raise ConfigError(
                    f"--resume: the settings differ from the render in {str(out)!r} ({what}); resume with the same "
                    f"preset and --set values (see its settings.yaml), or render to a new folder "
                    f"(only a larger animation.frames may extend a render)"
                )
        if state is None and not overwrite and holds_render(out):
            raise ConfigError(f"output folder {str(out)!r} holds an earlier render; render to {str(next_free_folder(out))!r} "
                              f"(the default), or pass --overwrite (overwrite=True) to replace it")
        run._take_lock()
        return run

    def _take_lock(self) -> None:
        """Write ``.lock`` with our pid (exclusive create; a stale lock of a dead pid is replaced)."""
        lock = self.out / LOCK_FILE
        for _ in range(2):
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = locked_by_other(self.out)
                if holder is not None:
                    raise ConfigError(f"output folder {str(self.out)!r} is in use by another render (pid {holder}); "
                                      f"wait for it to end or choose another output folder") from None
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as exc:  # read-only Drive, no permission, a file where a folder should be
                raise ConfigError(f"output folder {str(self.out)!r} cannot be written ({exc.strerror or exc}); "
                                  f"choose a folder you can write to") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._lock = lock
            return
        raise ConfigError(f"output folder {str(self.out)!r}: could not take the lock {str(lock)!r}; choose another output folder")

    def release(self) -> None:
        """Drop the lock; remove the folder when this render made it and never wrote anything."""
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
            self._lock = None
        if self.created and not self.committed:
            try:
                self.out.rmdir()
            except OSError:
                pass

    def check_frames(self, count: int) -> None:
        """A resume relies on frames ``0..count-1``: ConfigError naming the missing ones (never a short video)."""
        missing = [FRAME_NAME.format(i) for i in range(count) if not (self.frames_dir / FRAME_NAME.format(i)).is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ConfigError(f"--resume: {str(self.frames_dir)!r} lacks {shown}, which the saved state relies on; "
                              f"render again with --overwrite (or into a new folder)")

    def commit(self) -> None:
        """The first change to the folder, once checks and models are ready: stale outputs out, settings.yaml in."""
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        # A new or overwriting render: nothing of an earlier one may sit beside its frames.
        stale = ["video.mp4", "contact_sheet.png"]  # a resumed render makes both again from all its frames
        if self.state is None:
            stale = list(_OUTPUTS)
            for old in self.frames_dir.iterdir():
                if _FRAME_RE.match(old.name):
                    old.unlink()
        for name in stale:
            (self.out / name).unlink(missing_ok=True)
        self._write_settings()
        self.committed = True

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


def _extends(changed: list[str], state: dict, cfg: RenderConfig) -> bool:
    """True when the only change is a larger ``animation.frames`` for an optimized engine (its state is per frame).

    ``vqclip render OUT --resume --set animation.frames=N`` then extends a finished render: frames
    0..old-1 stay as they are and the new ones continue from the last frame's saved state, exactly as
    a render of N frames from the start would have made them. Sampled engines are excluded: their
    chunks depend on the frame count.
    """
    from vqclip.production.engines import get_engine

    old = ((state.get("settings") or {}).get("animation") or {}).get("frames")
    return (isinstance(old, int) and changed == [f"animation.frames: {old!r} -> {cfg.animation.frames!r}"]
            and cfg.animation.frames > old and get_engine(cfg.generation.engine).family == "optimized")


def holds_unfinished(out: str | Path) -> bool:
    """True when ``out`` holds resume state of a render that has not ended (continue it with ``--resume``)."""
    from vqclip.production.resume import STATE_FILE

    out = Path(out).expanduser()
    return (out / STATE_FILE).is_file() and not _finished(out)


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
    """Turn the first Ctrl-C, SIGTERM or SIGHUP into a request to stop at the next step (state gets saved); a second one raises.

    SIGTERM is what ``kill``, Colab's runtime restart and job schedulers send; SIGHUP comes when the terminal
    closes: both deserve the same saved state as Ctrl-C. A signal that is ignored when the render starts stays
    ignored: ``nohup`` ignores SIGHUP so a render outlives its terminal, and a shell's background job ignores Ctrl-C.
    """

    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __init__(self):
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # the caller asked for it to be ignored (nohup, a background job)
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        return False
