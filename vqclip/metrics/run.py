"""`vqclip eval`: judge renders by CLIP score, frame consistency, flicker, and optionally FVD and Inception Score.

    report = evaluate("renders/default", clip="toy", callback=print)
    report.clip_score, report.consistency, report.flicker, report.plot_path

Each run gets `eval.json` and `eval.png` (per-frame CLIP score and consecutive-frame consistency over
time, scene starts marked) beside its frames. Progress goes through ``callback(dict)``:
``{"event": "eval", "run", "stage": "clip" | "inception" | "fvd", "done", "total"}`` and download events.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from vqclip.errors import ConfigError

__all__ = ["EvalReport", "FVDResult", "evaluate", "evaluate_runs", "fvd_between", "DEFAULT_CLIP", "FVD_CLIP_FRAMES"]

DEFAULT_CLIP = "ViT-B-32/openai"  # the judge of papers 001 and 002
FVD_CLIP_FRAMES = 16  # StyleGAN-V's clip length for FVD


@dataclass
class FVDResult:
    """FVD between two sets of 16-frame clips, with what the number can and cannot say."""

    fvd: float
    clips_a: int
    clips_b: int
    videos_a: int
    videos_b: int
    note: str


@dataclass
class EvalReport:
    """One video's scores; per-frame lists index frames (consistency/flicker index consecutive pairs)."""

    source: str
    frames: int
    clip: str  # the judge's perceptor spec
    judge_guided: bool  # the judge also guided the render: its CLIP score is inflated
    clip_score: float | None  # mean over frames with a text prompt
    consistency: float | None  # mean CLIP cosine of consecutive frames
    flicker: float | None  # mean absolute difference of consecutive frames, 0-255 levels
    clip_score_per_frame: list[float | None] = field(default_factory=list)
    consistency_per_pair: list[float] = field(default_factory=list)
    flicker_per_pair: list[float] = field(default_factory=list)
    scene_starts: list[int] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)  # per frame, "text (x0.50) | ..."
    inception_score: tuple[float, float] | None = None  # (mean, std) of the frame IS, 2015 Inception
    video_inception_score: float | None = None  # IS of the video's 16-frame clips under C3D UCF-101
    fvd: FVDResult | None = None
    notes: list[str] = field(default_factory=list)
    json_path: Path | None = None
    plot_path: Path | None = None

    def to_dict(self) -> dict:
        """The report as JSON-ready data (what eval.json holds)."""
        d = asdict(self)
        d["json_path"] = str(self.json_path) if self.json_path else None
        d["plot_path"] = str(self.plot_path) if self.plot_path else None
        return d

    def summary(self) -> str:
        """One line of the headline numbers."""
        parts = [f"{self.source}: {self.frames} frames"]
        if self.clip_score is not None:
            parts.append(f"CLIP score {self.clip_score:.2f} ({self.clip}{', guided the render: inflated' if self.judge_guided else ''})")
        if self.consistency is not None:
            parts.append(f"consistency {self.consistency:.4f}")
        if self.flicker is not None:
            parts.append(f"flicker {self.flicker:.2f}")
        if self.inception_score is not None:
            parts.append(f"IS {self.inception_score[0]:.3f}")
        if self.video_inception_score is not None:
            parts.append(f"video IS {self.video_inception_score:.3f}")
        if self.fvd is not None:
            parts.append(f"FVD {self.fvd.fvd:.1f} ({self.fvd.clips_a} vs {self.fvd.clips_b} clips)")
        return ", ".join(parts)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _emit(callback, **event) -> None:
    if callback is not None:
        callback({"event": "eval", **event})


def _score_video(video, perceptor, clip_spec: str, callback) -> EvalReport:
    from vqclip.metrics.scores import clip_embeddings, clip_scores, flicker, frame_consistency

    run = str(video.source)
    embeds = clip_embeddings(perceptor, video.frames, progress=lambda d, t: _emit(callback, run=run, stage="clip", done=d, total=t))
    per_frame = clip_scores(perceptor, embeds, video.prompts)
    pairs = frame_consistency(embeds) if len(video.frames) > 1 else []
    flick = flicker(video.frames) if len(video.frames) > 1 else []
    guided = clip_spec in video.guides
    notes = []
    if guided:
        notes.append(f"the judge {clip_spec} also guided this render, so its CLIP score is inflated; judge with another CLIP for a fair number")
    if all(s is None for s in per_frame):
        notes.append("no text prompt is known for these frames: give --prompt to get a CLIP score")
    if len(video.frames) < 2:
        notes.append("one frame: consistency and flicker need two")
    prompts = [" | ".join(t + (f" (x{w:.2f})" if w != 1.0 else "") for t, w in items) for items in video.prompts]
    return EvalReport(
        source=run, frames=len(video.frames), clip=clip_spec, judge_guided=guided,
        clip_score=_mean(per_frame), consistency=_mean(pairs), flicker=_mean(flick),
        clip_score_per_frame=per_frame, consistency_per_pair=pairs, flicker_per_pair=flick,
        scene_starts=list(video.scene_starts), prompts=prompts, notes=notes,
    )


def _frame_inception_score(video, classifier, callback) -> tuple[float, float]:
    import torch

    from vqclip.metrics.inception import inception_score
    from vqclip.metrics.scores import frames_to_tensor01

    probs = []
    n = len(video.frames)
    device = next(classifier.parameters()).device
    for i in range(0, n, 8):
        with torch.no_grad():
            probs.append(classifier(frames_to_tensor01(video.frames[i:i + 8]).to(device)).double().cpu().numpy())
        _emit(callback, run=str(video.source), stage="inception", done=min(i + 8, n), total=n)
    return inception_score(np.concatenate(probs), splits=1)


def _small_sample_note(n_a: int, n_b: int, dim: int, padded: bool) -> str:
    note = (f"FVD from {n_a} vs {n_b} {FVD_CLIP_FRAMES}-frame clips of {dim}-d I3D features. With fewer clips than "
            f"feature dimensions the covariances are rank-deficient and FVD is biased upward and noisy: compare "
            f"numbers only at equal clip counts; the literature uses 2048 clips per side")
    if min(n_a, n_b) >= 2048:
        note = f"FVD from {n_a} vs {n_b} {FVD_CLIP_FRAMES}-frame clips of {dim}-d I3D features (the literature's 2048+ per side)"
    if padded:
        note += f"; videos shorter than {FVD_CLIP_FRAMES} frames were padded with their last frame"
    return note


def fvd_between(videos_a: Sequence, videos_b: Sequence, detector, device="cpu", callback=None) -> FVDResult:
    """FVD between two sets of EvalVideo (each cut into 16-frame clips); at least 2 videos per side."""
    from vqclip.metrics.frechet import frechet_distance_of
    from vqclip.metrics.scores import i3d_features, video_clips

    if len(videos_a) < 2 or len(videos_b) < 2:
        raise ConfigError(f"FVD needs at least 2 videos per side; got {len(videos_a)} and {len(videos_b)} "
                          "(give more RUN_DIRs, or a --reference folder with 2 or more videos)")
    feats, padded = [], False
    for side, videos in (("a", videos_a), ("b", videos_b)):
        clips = []
        for v in videos:
            c, p = video_clips(v.frames, FVD_CLIP_FRAMES)
            clips += c
            padded |= p
        _emit(callback, run=side, stage="fvd", done=0, total=len(clips))
        feats.append(i3d_features(detector, clips, device))
        _emit(callback, run=side, stage="fvd", done=len(clips), total=len(clips))
    value = frechet_distance_of(feats[0], feats[1])
    return FVDResult(value, len(feats[0]), len(feats[1]), len(videos_a), len(videos_b),
                     _small_sample_note(len(feats[0]), len(feats[1]), feats[0].shape[1], padded))


def reference_videos(folder: str | os.PathLike, prompt: str | None = None) -> list:
    """Every video in a reference folder: video files, frame folders and render folders directly inside it."""
    from vqclip.metrics.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES, load_video

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"--reference: {str(root)!r} is not a folder; give a folder of videos (files or frame folders)")
    videos = []
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(load_video(p, prompt))
        elif p.is_dir() and any(c.suffix.lower() in IMAGE_SUFFIXES for c in (p / "frames" if (p / "frames").is_dir() else p).iterdir()):
            videos.append(load_video(p, prompt))
    return videos


def write_report(report: EvalReport, out_dir: Path, stem: str = "eval") -> EvalReport:
    """Write `<stem>.json` and `<stem>.png` into out_dir; return the report with their paths."""
    from vqclip.metrics.plot import plot_report
    from vqclip.production.resume import atomic_write_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    report.plot_path = plot_report(report, out_dir / f"{stem}.png")
    report.json_path = out_dir / f"{stem}.json"
    atomic_write_bytes(report.json_path, json.dumps(report.to_dict(), indent=2).encode("utf-8"))
    return report


def evaluate_runs(
    sources: Sequence[str | os.PathLike],
    prompt: str | None = None,
    clip: str | dict = DEFAULT_CLIP,
    reference: str | os.PathLike | None = None,
    inception: bool = False,
    i3d: str | os.PathLike | None = None,
    i3d_sha256: str | None = None,
    inception_path: str | os.PathLike | None = None,
    c3d: str | os.PathLike | None = None,
    c3d_sha256: str | None = None,
    device: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    callback: Callable[[dict], Any] | None = None,
    write: bool = True,
) -> list[EvalReport]:
    """Evaluate several runs with one judge; with `reference`, FVD of the runs (as one set) against it."""
    from vqclip.metrics.video import load_video
    from vqclip.models.clip import load_perceptor
    from vqclip.production.precision import resolve_device

    # 1. Check inputs and read every video before loading any model.
    device = resolve_device(str(device))
    if not sources:
        raise ConfigError("eval: give at least one RUN_DIR (a render folder, a folder of frames, or a video file)")
    videos = [load_video(s, prompt) for s in sources]
    refs = reference_videos(reference, prompt) if reference is not None else None
    if refs is not None and (len(videos) < 2 or len(refs) < 2):
        raise ConfigError(f"--reference: FVD needs at least 2 videos per side; got {len(videos)} run(s) and {len(refs)} "
                          f"reference video(s) in {str(reference)!r}")

    # 2. The judge and the per-frame scores.
    perceptor = load_perceptor(clip, device=device, cache_dir=cache_dir)
    spec = clip if isinstance(clip, str) else perceptor.name
    reports = [_score_video(v, perceptor, spec, callback) for v in videos]
    del perceptor

    # 3. Optional: frame Inception Score (2015 Inception, downloaded and verified once).
    if inception:
        from vqclip.metrics.extractors import load_inception

        classifier = load_inception(path=inception_path, cache_dir=cache_dir, device=device, callback=callback)
        for v, r in zip(videos, reports):
            r.inception_score = _frame_inception_score(v, classifier, callback)
            if r.frames < 50:
                r.notes.append(f"frame IS from {r.frames} frames of one video: IS needs thousands of varied images to "
                               "compare with published numbers; here it only says how varied and confident the frames are")

    # 4. Optional: video IS over each video's 16-frame clips (C3D UCF-101; a TorchScript only run with a pinned hash).
    if c3d is not None or c3d_sha256 is not None:
        from vqclip.metrics.extractors import load_c3d
        from vqclip.metrics.inception import inception_score
        from vqclip.metrics.scores import c3d_probs, video_clips

        detector = load_c3d(c3d, c3d_sha256, cache_dir=cache_dir, device=device, callback=callback)
        for v, r in zip(videos, reports):
            clips, padded = video_clips(v.frames, FVD_CLIP_FRAMES)
            r.video_inception_score = inception_score(c3d_probs(detector, clips, device))[0]
            r.notes.append(f"video IS from {len(clips)} clip(s) of one video{' (padded)' if padded else ''}: papers use "
                           "thousands of clips (2048-10000); with one clip it is 1 by definition")
        del detector

    # 5. Optional: FVD of the runs against the reference set.
    if refs is not None:
        from vqclip.metrics.extractors import load_i3d

        detector = load_i3d(i3d, i3d_sha256, cache_dir=cache_dir, device=device, callback=callback)
        result = fvd_between(videos, refs, detector, device, callback)
        for r in reports:
            r.fvd = result
            r.notes.append(result.note)

    # 6. eval.json + eval.png beside each run.
    if write:
        reports = [write_report(r, v.out_dir, v.stem) for r, v in zip(reports, videos)]
    return reports


def evaluate(run_dir: str | os.PathLike, prompt: str | None = None, clip: str | dict = DEFAULT_CLIP, device: str = "auto",
             callback: Callable[[dict], Any] | None = None, **options: Any) -> EvalReport:
    """Evaluate one render folder, frame folder or video file; writes eval.json and eval.png beside it."""
    return evaluate_runs([run_dir], prompt=prompt, clip=clip, device=device, callback=callback, **options)[0]
