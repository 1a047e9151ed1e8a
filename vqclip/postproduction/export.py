"""Export a finished clip: mp4/mov/mkv (H.264), webm (VP9), GIF (ffmpeg palettegen + paletteuse).

Every file is written to a hidden temporary file beside the target and renamed only when complete,
so an interrupted or failed export never leaves half a video and never replaces a good one.
Progress goes only through `callback(dict)` events `{"event": "export", "path", "stage", "done", "total"}`
(stage: "audio" chunks, then "video" frames, or "gif" frames); the CLI and the notebook draw them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vqclip.errors import PostError
from vqclip.video import encode_args, ffmpeg_exe, finish_temp, temp_path_for

__all__ = ["export", "export_video", "export_gif", "Callback"]

Callback = Callable[[dict], Any]
_STAGES = {"chunk": "audio", "frame_index": "video"}  # MoviePy's proglog bar names


def _check_callback(callback: Any) -> None:
    if callback is not None and not callable(callback):
        raise PostError(f"callback: {callback!r} is not allowed; give None or a function taking a dict")


def _moviepy_logger(callback: Callback | None, path: Path):
    """A proglog logger that turns MoviePy's bars into export events (None: MoviePy stays silent)."""
    if callback is None:
        return None
    import proglog

    class _EventLogger(proglog.ProgressBarLogger):
        def bars_callback(self, bar, attr, value, old_value=None):
            if attr == "index" and bar in _STAGES:
                callback({"event": "export", "path": str(path), "stage": _STAGES[bar], "done": max(0, int(value)),
                          "total": self.bars[bar].get("total")})

    return _EventLogger()


def _split_codec_args(args: list[str]) -> tuple[str, str | None, str | None, list[str]]:
    """(video codec, audio codec, audio bitrate, the remaining ffmpeg params) from encode_args output."""
    rest, vcodec, acodec, abitrate = [], "libx264", None, None
    i = 0
    while i < len(args):
        key = args[i]
        if key in ("-c:v", "-c:a", "-b:a"):
            val = args[i + 1]
            vcodec, acodec, abitrate = (val if key == "-c:v" else vcodec, val if key == "-c:a" else acodec,
                                        val if key == "-b:a" else abitrate)
            i += 2
            continue
        rest.append(key)
        i += 1
    return vcodec, acodec, abitrate, rest


def _snap(clip, fps: float):
    """Round the duration to whole frames: sums of float durations (6.99999 s) would drop a frame."""
    n = max(1, int(round(clip.duration * fps)))
    return clip.with_duration((n + 1e-3) / fps), n


def export_video(clip, path: str | os.PathLike, fps: float | None = None, quality: int | str = "high",
                 callback: Callback | None = None) -> Path:
    """Write an mp4/mov/mkv (H.264 yuv420p, even size, +faststart) or webm (VP9) with MoviePy."""
    out = Path(path)
    _check_callback(callback)
    fps = fps or getattr(clip, "fps", None)
    if not fps or fps <= 0:
        raise PostError(f"fps: {fps!r} is not allowed; the export needs a positive frame rate")
    clip, _ = _snap(clip, fps)
    w, h = clip.size
    if w % 2 or h % 2:  # yuv420p needs even sides: crop a pixel rather than scale (keeps pixels sharp)
        clip = clip.cropped(x1=0, y1=0, width=w - w % 2, height=h - h % 2)
    has_audio = clip.audio is not None
    vcodec, acodec, abitrate, params = _split_codec_args(encode_args(out.suffix, quality, audio=has_audio))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    workdir = tempfile.mkdtemp(prefix=".vqclip-audio-", dir=out.parent)
    # MoviePy encodes the sound to a side file first; keep it out of the working directory.
    # 48 kHz: the video standard, and the only common rate Opus (webm) accepts.
    audio_tmp = os.path.join(workdir, "sound.m4a" if acodec == "aac" else "sound.ogg")
    try:
        clip.write_videofile(
            str(tmp), fps=fps, codec=vcodec, audio=has_audio, audio_codec=acodec, audio_bitrate=abitrate,
            audio_fps=48000, temp_audiofile=audio_tmp, ffmpeg_params=params,
            logger=_moviepy_logger(callback, out),
            pixel_format=None,
        )
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, IOError)):
            raise PostError(f"output.path {str(out)!r}: export failed: {str(exc).strip()[-400:]}") from exc
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return finish_temp(tmp, out)


def export_gif(clip, path: str | os.PathLike, fps: float | None = None, width: int | None = None,
               colors: int = 256, dither: str = "sierra2_4a", loop: int = 0, callback: Callback | None = None) -> Path:
    """Write a GIF with a palette made for this clip (ffmpeg palettegen/paletteuse, one pass)."""
    out = Path(path)
    _check_callback(callback)
    if fps is None:
        # GIF frame delays are whole centiseconds: 10, 20, 25 fps keep exact timing (12 fps would be 12.5).
        src = float(getattr(clip, "fps", None) or 10)
        fps = max([f for f in (5.0, 10.0, 20.0, 25.0) if f <= src] or [5.0])
    if fps <= 0:
        raise PostError(f"output.gif.fps: {fps!r} is not allowed; use a positive frame rate")
    if not 2 <= colors <= 256:
        raise PostError(f"output.gif.colors: {colors!r} is not allowed; use 2..256")
    w, h = clip.size
    chain = f"scale={int(width)}:-2:flags=lanczos," if width else ""
    # stats_mode=full: one palette for the whole clip, so colours do not flicker between frames.
    graph = (f"[0:v]{chain}split[a][b];[a]palettegen=max_colors={int(colors)}:stats_mode=full[p];"
             f"[b][p]paletteuse=dither={dither}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", f"{fps:.9g}", "-i", "-", "-filter_complex", graph, "-loop", str(int(loop)),
           "-f", "gif", str(tmp)]
    clip, n_total = _snap(clip, fps)
    errf = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errf)
    try:
        for i, frame in enumerate(clip.iter_frames(fps=fps, dtype="uint8")):
            if i >= n_total:
                break
            proc.stdin.write(np.ascontiguousarray(frame[:, :, :3]).tobytes())
            if callback is not None:
                callback({"event": "export", "path": str(out), "stage": "gif", "done": i + 1, "total": n_total})
        proc.stdin.close()
        rc = proc.wait()
        if rc != 0:
            errf.seek(0)
            raise PostError(f"output.path {str(out)!r}: ffmpeg GIF export failed: "
                            f"{errf.read().decode(errors='replace').strip()[-300:]}")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        errf.close()
    return finish_temp(tmp, out)


def export(clip, path: str | os.PathLike, fps: float | None = None, quality: int | str = "high",
           gif: dict | None = None, callback: Callback | None = None) -> Path:
    """Write the clip in the format its suffix names: .mp4/.mov/.mkv, .webm or .gif."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return export_gif(clip, path, callback=callback, **(gif or {}))
    return export_video(clip, path, fps=fps, quality=quality, callback=callback)
