"""Shared video helpers: the bundled ffmpeg, probing a file, writing frames as a browser-safe video.

Everything here goes through the ffmpeg binary inside the imageio-ffmpeg wheel, because no
ffprobe ships with it and Colab/CI machines may have no system ffmpeg. `probe` therefore reads
the header that `ffmpeg -i` prints and, for exact counts, decodes the streams to a null muxer.

Videos written here follow the project contract: H.264, yuv420p, even width and height,
`+faststart` (the index at the front so browsers start playing before the download ends),
written to a temporary file beside the target and renamed only when complete.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vqclip.errors import PostError

__all__ = [
    "VideoInfo",
    "ffmpeg_exe",
    "probe",
    "write_video",
    "encode_args",
    "crf_for_quality",
    "temp_path_for",
    "finish_temp",
    "frame_at",
    "run_ffmpeg",
    "QUALITY_LEVELS",
]

# Named quality levels map to x264/VP9 CRF (lower is better); 18 is the usual "visually lossless".
QUALITY_LEVELS = {"lossless": 0, "high": 18, "medium": 23, "low": 28, "draft": 32}

# Containers whose default stream is H.264 in this module (the project-wide contract).
_H264_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv"}


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or $IMAGEIO_FFMPEG_EXE)."""
    import imageio_ffmpeg  # a declared dependency

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise PostError(f"ffmpeg: no usable ffmpeg binary ({exc}); reinstall imageio-ffmpeg") from exc


def run_ffmpeg(args: list[str], what: str, timeout: float | None = None) -> str:
    """Run the bundled ffmpeg with `args` (no leading binary); return stderr, raise PostError on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-4:])
        raise PostError(f"{what}: ffmpeg failed (exit {proc.returncode}): {tail}")
    return proc.stderr


# ----------------------------------------------------------------------------------------- probe


@dataclass
class VideoInfo:
    """What `probe` found in a video (or animated image) file."""

    path: str
    container: str  # e.g. "mov,mp4,m4a,3gp,3g2,mj2", "gif", "matroska,webm"
    codec: str  # video codec, e.g. "h264", "vp9", "gif"
    pix_fmt: str  # e.g. "yuv420p"
    width: int
    height: int
    fps: float  # average frame rate from the header
    n_frames: int | None  # decoded frame count (None when probe(count=False))
    duration: float | None  # container duration in seconds (None when the header has none)
    video_duration: float | None  # n_frames / fps, the length a viewer sees
    has_audio: bool
    audio_codec: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_duration: float | None = None  # decoded audio length in seconds (None when count=False)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width, self.height)


def _split_top(text: str) -> list[str]:
    """Split an ffmpeg stream line on commas that are not inside parentheses or brackets."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur).strip())
    return parts


def _hms(text: str) -> float:
    h, m, s = text.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _parse_rate(token: str) -> float:
    token = token.strip()
    mult = 1000.0 if token.endswith("k") else 1.0
    return float(token.rstrip("k")) * mult


def _parse_header(path: str, text: str) -> VideoInfo:
    container = ""
    m = re.search(r"^Input #0, (.+?), from ", text, re.M)
    if m:
        container = m.group(1)
    duration = None
    m = re.search(r"Duration: (\d+:\d+:\d+(?:\.\d+)?)", text)
    if m:
        duration = _hms(m.group(1))

    vline = re.search(r"Stream #0:\d+.*?: Video: (.+)", text)
    if not vline:
        raise PostError(f"probe: {path!r} has no video stream that ffmpeg can read")
    parts = _split_top(vline.group(1))
    codec = parts[0].split()[0]
    pix_fmt = ""
    if len(parts) > 1:
        pix_fmt = re.split(r"[\s(]", parts[1], maxsplit=1)[0]
    width = height = 0
    fps = 0.0
    for part in parts[1:]:
        sm = re.match(r"(\d+)x(\d+)", part)
        if sm and not width:
            width, height = int(sm.group(1)), int(sm.group(2))
        fm = re.match(r"([\d.]+k?) fps", part)
        if fm:
            fps = _parse_rate(fm.group(1))
    if not fps:  # some muxers only give tbr (the guessed base rate)
        tm = re.search(r"([\d.]+k?) tbr", vline.group(1))
        if tm:
            fps = _parse_rate(tm.group(1))

    info = VideoInfo(
        path=path, container=container, codec=codec, pix_fmt=pix_fmt, width=width, height=height,
        fps=fps, n_frames=None, duration=duration, video_duration=None, has_audio=False,
    )
    aline = re.search(r"Stream #0:\d+.*?: Audio: (.+)", text)
    if aline:
        aparts = _split_top(aline.group(1))
        info.has_audio = True
        info.audio_codec = aparts[0].split()[0]
        for part in aparts[1:]:
            hm = re.match(r"(\d+) Hz", part)
            if hm:
                info.audio_sample_rate = int(hm.group(1))
            elif part in ("mono", "stereo"):
                info.audio_channels = 1 if part == "mono" else 2
            else:
                cm = re.match(r"(\d+) channels", part)
                if cm:
                    info.audio_channels = int(cm.group(1))
    return info


def _decode_stats(path: str, stream: str) -> tuple[int | None, float | None]:
    """Decode one stream to the null muxer; return (frames, seconds) from ffmpeg's final progress line."""
    err = run_ffmpeg(["-i", path, "-map", stream, "-f", "null", "-"], what=f"probe {path!r}")
    frames = secs = None
    # ffmpeg rewrites its progress line with \r; the last one holds the totals.
    for line in re.split(r"[\r\n]", err):
        fm = re.search(r"frame=\s*(\d+)", line)
        if fm:
            frames = int(fm.group(1))
        tm = re.search(r"time=\s*(-?\d+:\d+:\d+(?:\.\d+)?)", line)
        if tm and not tm.group(1).startswith("-"):
            secs = _hms(tm.group(1))
    return frames, secs


def probe(path: str | os.PathLike, count: bool = True) -> VideoInfo:
    """Codec, pixel format, size, fps, frame count, durations and audio of a video file."""
    p = Path(path)
    if not p.is_file():
        raise PostError(f"probe: video file {str(p)!r} does not exist (give a path to an .mp4/.webm/.gif/.mov)")
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(p)], capture_output=True, text=True, errors="replace"
    )
    # `ffmpeg -i` with no output always exits 1; a readable file still prints its "Input #0" header.
    if "Input #0" not in proc.stderr:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise PostError(f"probe: {str(p)!r} is not a readable video ({tail[0]})")
    info = _parse_header(str(p), proc.stderr)
    if count:
        info.n_frames, _ = _decode_stats(str(p), "0:v:0")
        if info.n_frames is not None and info.fps:
            info.video_duration = info.n_frames / info.fps
        if info.has_audio:
            _, info.audio_duration = _decode_stats(str(p), "0:a:0")
    return info


# ----------------------------------------------------------------------------------------- write


def crf_for_quality(quality: int | str) -> int:
    """A CRF number (0 best .. 51 worst) from a named level or a CRF given directly."""
    if isinstance(quality, str) and quality.strip().lower() in QUALITY_LEVELS:
        return QUALITY_LEVELS[quality.strip().lower()]
    if isinstance(quality, (int, np.integer)) and not isinstance(quality, bool) and 0 <= int(quality) <= 51:
        return int(quality)
    allowed = ", ".join(QUALITY_LEVELS)
    raise PostError(f"quality: {quality!r} is not allowed; use one of {allowed} or a CRF number 0..51 (lower is better)")


def encode_args(suffix: str, quality: int | str = "high", audio: bool = False) -> list[str]:
    """ffmpeg output arguments for a browser-safe file of this suffix (.mp4/.mov/.mkv H.264, .webm VP9)."""
    crf = crf_for_quality(quality)
    suffix = suffix.lower()
    if suffix in _H264_SUFFIXES:
        args = ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-pix_fmt", "yuv420p"]
        if suffix in (".mp4", ".m4v", ".mov"):
            args += ["-movflags", "+faststart"]
        if audio:
            args += ["-c:a", "aac", "-b:a", "192k"]
    elif suffix == ".webm":
        # VP9 in constant-quality mode needs -b:v 0; row-mt keeps it usable on few cores.
        args = ["-c:v", "libvpx-vp9", "-crf", str(min(63, crf + 13)), "-b:v", "0", "-pix_fmt", "yuv420p",
                "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"]
        if audio:
            args += ["-c:a", "libopus", "-b:a", "128k"]
    else:
        raise PostError(f"output path: suffix {suffix!r} is not a video format here; use .mp4, .mov, .mkv or .webm")
    return args


def temp_path_for(path: str | os.PathLike) -> Path:
    """A hidden temporary path beside `path` with the same suffix (so ffmpeg picks the same muxer)."""
    p = Path(path)
    return p.with_name(f".{p.stem}.partial-{os.getpid()}{p.suffix}")


def finish_temp(tmp: Path, path: str | os.PathLike) -> Path:
    """Atomically move a finished temporary file onto its final path."""
    final = Path(path)
    os.replace(tmp, final)
    return final


def _to_rgb8(frame: Any, index: int) -> np.ndarray:
    """One frame (array HxWx3/4 uint8 or float 0..1, PIL image, or image path) as HxWx3 uint8."""
    if isinstance(frame, (str, os.PathLike)):
        from PIL import Image

        try:
            with Image.open(frame) as im:
                frame = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise PostError(f"frames: frame {index} ({str(frame)!r}) is not a readable image: {exc}") from exc
    elif hasattr(frame, "convert") and hasattr(frame, "size"):  # a PIL image, without importing PIL eagerly
        frame = np.asarray(frame.convert("RGB"))
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise PostError(f"frames: frame {index} has shape {arr.shape}; expected HxWx3 (RGB) or HxWx4 (RGBA)")
    arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def write_video(
    frames: Iterable[Any],
    path: str | os.PathLike,
    fps: float,
    quality: int | str = "high",
    audio: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write frames as an H.264 yuv420p +faststart mp4 (or VP9 .webm), via a temp file then rename.

    Frames are HxWx3/4 arrays (uint8, or float in 0..1), PIL images or image paths, all one size.
    An odd width or height is cropped by one pixel (not scaled) so the pixels stay sharp.
    `audio` is an optional sound file muxed in and cut to the video's length; `progress(n)` is
    called after each written frame.
    """
    import imageio_ffmpeg

    # 1. Check inputs before anything is created.
    try:
        fps_f = float(fps)
    except (TypeError, ValueError):
        fps_f = float("nan")
    if not np.isfinite(fps_f) or fps_f <= 0:
        raise PostError(f"fps: {fps!r} is not allowed; use a positive number of frames per second (e.g. 12, 24, 30)")
    out = Path(path)
    extra = encode_args(out.suffix, quality, audio=audio is not None)
    if audio is not None and not Path(audio).is_file():
        raise PostError(f"audio: file {str(audio)!r} does not exist")
    frame_iter = iter(frames)
    try:
        first = _to_rgb8(next(frame_iter), 0)
    except StopIteration:
        raise PostError(f"frames: nothing to write to {str(out)!r}; the frame sequence is empty") from None
    h, w = first.shape[:2]
    h2, w2 = h - h % 2, w - w % 2
    if h2 < 2 or w2 < 2:
        raise PostError(f"frames: size {w}x{h} is too small; a video needs at least 2x2 pixels")

    # 2. Encode to a temporary file beside the target, so a failure never leaves half a video.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    output_params = [*extra]
    if audio is not None:
        output_params += ["-shortest"]
    codec = extra[extra.index("-c:v") + 1]
    writer = imageio_ffmpeg.write_frames(
        str(tmp), (w2, h2), pix_fmt_in="rgb24", pix_fmt_out="yuv420p", fps=Fraction(fps_f).limit_denominator(1001),
        codec=codec, quality=None, macro_block_size=1, ffmpeg_log_level="error", output_params=output_params,
        audio_path=str(audio) if audio is not None else None,
    )
    n = 0
    try:
        writer.send(None)
        writer.send(np.ascontiguousarray(first[:h2, :w2]))
        n += 1
        if progress:
            progress(n)
        for i, frame in enumerate(frame_iter, start=1):
            arr = _to_rgb8(frame, i)
            if arr.shape[:2] != (h, w):
                raise PostError(
                    f"frames: frame {i} is {arr.shape[1]}x{arr.shape[0]} but frame 0 is {w}x{h}; all frames must be one size"
                )
            writer.send(np.ascontiguousarray(arr[:h2, :w2]))
            n += 1
            if progress:
                progress(n)
        writer.close()
    except BaseException as exc:
        writer.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise PostError(f"output {str(out)!r}: ffmpeg could not write the video: {exc}") from exc
        raise
    if not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        raise PostError(f"output {str(out)!r}: ffmpeg produced no file")
    return finish_temp(tmp, out)


def frame_at(path: str | os.PathLike, t: float) -> np.ndarray:
    """The decoded RGB frame of a video at time `t` seconds (for checks and previews)."""
    import imageio_ffmpeg

    if not Path(path).is_file():
        raise PostError(f"frame_at: video file {str(path)!r} does not exist")
    # Half a millisecond early: "-ss 1.917" would skip a frame stamped 1.91666.
    gen = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", input_params=["-ss", f"{max(0.0, t - 5e-4):.3f}"])
    try:
        meta = gen.__next__()
        w, h = meta["size"]
        raw = gen.__next__()
    except StopIteration:
        raise PostError(f"frame_at: {str(path)!r} has no frame at t={t}s") from None
    finally:
        gen.close()
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3).copy()
