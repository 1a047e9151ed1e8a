"""Production: render a preset into frames, a contact sheet and a draft video (iterative VQGAN-CLIP).

:func:`render` reads top to bottom through numbered phases. Each frame starts from the previous one
warped by that frame's motion (zoom, angle, translation), re-encoded by the engine, and is then
optimized so that random cutouts of it move toward the prompts in CLIP space. Progress goes out
through ``callback(dict)``; the CLI turns it into a tqdm bar, the notebook into a live preview.

Events passed to ``callback`` (it may return ``"stop"`` to end cleanly; state is saved, ``resume=True``
continues; the first Ctrl-C does the same, a second one raises KeyboardInterrupt)::

    {"event": "iteration", "frame", "frames", "iteration", "iterations", "total_iteration",
     "total_iterations", "losses": {"total": float, "<prompt>": distance, ...}}
    {"event": "preview", "frame", "iteration", "image": PIL.Image}     every output.images_interval steps
    {"event": "frame", "frame", "frames", "path", "loss", "iteration", "image": PIL.Image}
    {"event": "done", "result": RenderResult}

Output folder::

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
import random
import re
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from vqclip.settings.render import (
    OPTIMIZERS, RenderConfig, config_hash, config_to_dict, frame_settings, load_config, settings_diff,
)
from vqclip.errors import ConfigError

__all__ = ["RenderResult", "render", "render_cli", "planned_iterations"]

FRAME_NAME = "{:06d}.png"
_FRAME_RE = re.compile(r"^\d{6}\.png$")


@dataclass
class RenderResult:
    """What a render produced and how it ended."""

    out_dir: Path
    frames: list[Path]  # every frame written so far, in order
    settings: Path  # settings.yaml
    seed: int  # the seed used (drawn when the preset said -1)
    iterations: int  # optimizer steps over the whole render, resumed ones included
    completed: bool  # every frame was rendered
    stop_reason: str  # done | interrupted (Ctrl-C) | stopped (callback) | max_iterations
    seconds: float  # wall time of this call
    video: Path | None = None
    contact_sheet: Path | None = None
    frame_losses: list[float] = field(default_factory=list)  # final loss of each frame rendered in this call


def planned_iterations(cfg: RenderConfig) -> int:
    """Steps the whole render takes (capped by ``generation.max_iterations``)."""
    from vqclip.production.engines import get_engine

    g = cfg.generation
    engine_cls = get_engine(g.engine)
    total = sum(engine_cls.frame_iterations(cfg, f) for f in range(cfg.animation.frames))
    return total if g.max_iterations < 0 else min(total, g.max_iterations)


def render(
    config: RenderConfig | dict | str | Path,
    out_dir: str | Path,
    callback: Callable[[dict], Any] | None = None,
    resume: bool = False,
) -> RenderResult:
    """Render frames, settings, a contact sheet and a draft video into ``out_dir`` (see the module doc for events)."""
    from vqclip.production.animate import motion_schedule, warp
    from vqclip.production.cutouts import Cutouts
    from vqclip.production.engines import get_engine
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.precision import resolve_device, resolve_precision
    from vqclip.production.prompts import PromptBank, build_timeline, load_image01
    from vqclip.production.resume import STATE_FILE, capture_rng, load_state, restore_rng, save_state

    t0 = time.time()
    emit = callback or (lambda event: None)

    # 1. Check inputs: the config, the output folder, the seed, and the resume state.
    cfg = config if isinstance(config, RenderConfig) else load_config(config)
    out = Path(out_dir).expanduser()
    frames_dir = out / "frames"
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
    chash = config_hash(cfg)
    if state is not None and state["config_hash"] != chash:
        changed = settings_diff(state.get("settings") or {}, frame_settings(cfg))
        what = "; ".join(changed[:4]) if changed else f"hash {chash} vs {state['config_hash']}"
        raise ConfigError(
            f"--resume: the settings differ from the render in {str(out)!r} ({what}); resume with the same "
            f"preset and --set values (see its settings.yaml), or render to a new folder"
        )
    frames_dir.mkdir(parents=True, exist_ok=True)
    if state is None:
        for old in frames_dir.iterdir():  # a finished older render in this folder: replace its frames
            if _FRAME_RE.match(old.name):
                old.unlink()
    settings_path = _write_settings(out, cfg)
    n_frames, height, width = cfg.animation.frames, cfg.size.height, cfg.size.width
    gen = cfg.generation

    # 2. Device, precision and seeding (global RNGs: kornia's augmentations draw from torch's).
    device = resolve_device(gen.device)
    precision = resolve_precision(gen.precision, device)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)

    # 3. Models: the engine (it loads its own generator, e.g. the VQGAN) and the CLIP perceptors.
    engine_cls = get_engine(gen.engine)
    engine = engine_cls.build(EngineContext(cfg, device, height, width, precision.channels_last))
    perceptors = _load_perceptors(cfg, device)

    # 4. Prompts: the timeline, its embeddings per perceptor, a cutout maker per input size.
    timeline = build_timeline(cfg.prompts, n_frames)
    bank = PromptBank.build(timeline, perceptors, [p.weight for p in cfg.models.clip], device)
    engine.prepare(perceptors, bank)
    cutouts = {
        s: Cutouts(s, gen.cutn, gen.cut_pow, gen.augmentations).to(device)
        for s in sorted({p.input_size for p in perceptors})
    }
    motions = motion_schedule(cfg.animation)
    model_label = ", ".join([engine.describe()] + [f"clip:{_spec_label(p.spec)}" for p in cfg.models.clip])

    def make_optimizer() -> torch.optim.Optimizer:
        return getattr(torch.optim, OPTIMIZERS[gen.optimizer])(engine.parameters(), lr=engine_cls.learning_rate(cfg))

    # 5. Start fresh, or restore the state saved at a frame boundary or at a stop.
    first_frame, first_iteration, total_done = 0, 0, 0
    optimizer: torch.optim.Optimizer | None = None
    reference: torch.Tensor | None = None
    if state is not None:
        first_frame, first_iteration, total_done = state["frame"], state["iteration"], state["total_iterations"]
        engine.load_state_dict(state["engine"])
        optimizer = make_optimizer()
        if state["optimizer"]:
            optimizer.load_state_dict(state["optimizer"])
        if precision.scaler is not None and state.get("scaler"):
            precision.scaler.load_state_dict(state["scaler"])
        reference = state.get("reference")
        reference = reference.to(device) if reference is not None else None
        restore_rng(state["rng"])
    planned = planned_iterations(cfg)

    def snapshot(frame: int, iteration: int, complete: bool = False) -> None:
        save_state(out, {
            "version": 1, "seed": seed, "config_hash": chash, "settings": frame_settings(cfg),
            "frame": frame, "iteration": iteration, "total_iterations": total_done, "complete": complete, "engine": engine.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else {},
            "reference": reference.detach().cpu() if reference is not None else None,
            "rng": capture_rng(),
        })

    # 6. The frame loop.
    frame_losses: list[float] = []
    stop_reason = "done"
    with _StopOnSigint() as sigint:
        for f in range(first_frame, n_frames):
            iterations = engine_cls.frame_iterations(cfg, f)
            mid_frame = state is not None and f == first_frame and first_iteration > 0
            done_it = first_iteration if mid_frame else 0
            if gen.max_iterations >= 0 and total_done >= gen.max_iterations:
                stop_reason = "max_iterations"
                break

            # 6a. Start the frame: the init image or random for the first, the warped previous frame after.
            if not mid_frame:
                if f == 0:
                    init = cfg.prompts.init_image
                    reference = None
                    engine.start(load_image01(init, (height, width)).to(device) if init else None)
                else:
                    reference = warp(engine.image(), motions[f], cfg.animation.border_mode)
                    engine.start(reference)
                if optimizer is None or gen.reset_optimizer:
                    optimizer = make_optimizer()

            # 6b. Optimize: cutouts through every perceptor in one batch each, prompt loss, step.
            loss_value = float("nan")
            while done_it < iterations:
                if gen.max_iterations >= 0 and total_done >= gen.max_iterations:
                    stop_reason = "max_iterations"
                    break
                optimizer.zero_grad(set_to_none=True)
                with precision.autocast():
                    image = engine.synth()
                    custom = engine.loss(f, done_it, image, reference)  # an engine's own objective (pixels), or None
                    if custom is not None:
                        loss, parts = custom
                    else:
                        batches = {s: maker(image) for s, maker in cutouts.items()}
                        embeds = [p.encode_image(batches[p.input_size]) for p in perceptors]
                        loss, parts = bank.loss(f, embeds)
                    if custom is None and gen.stability_weight > 0 and reference is not None:
                        stability = (image.float() - reference).abs().mean()  # paper 000 eq. 2
                        loss = loss + gen.stability_weight * stability
                        parts["stability"] = float(stability)
                precision.step(loss, optimizer)
                engine.after_step()
                done_it += 1
                total_done += 1
                loss_value = float(loss.detach())
                reply = emit({
                    "event": "iteration", "frame": f, "frames": n_frames, "iteration": done_it, "iterations": iterations,
                    "total_iteration": total_done, "total_iterations": planned, "losses": {"total": loss_value, **parts},
                })
                if cfg.output.images_interval and done_it % cfg.output.images_interval == 0:
                    reply = emit({"event": "preview", "frame": f, "iteration": done_it, "image": _to_pil(engine.image())}) or reply
                if reply == "stop" or sigint.requested:
                    stop_reason = "interrupted" if sigint.requested else "stopped"
                    break
            if stop_reason in ("interrupted", "stopped"):
                snapshot(f, done_it)  # mid-frame: resume finishes this frame
                break

            # 6c. Write the frame, then the state at the boundary (or where max_iterations ended it).
            final = _to_pil(engine.export_image())
            path = _write_frame(frames_dir / FRAME_NAME.format(f), final, {
                "prompt": timeline.describe(f), "seed": str(seed), "frame": str(f),
                "iteration": str(done_it), "model": model_label, "software": "vqclip",
            })
            frame_losses.append(loss_value)
            if stop_reason == "max_iterations":
                snapshot(f, done_it)
                break
            snapshot(f + 1, 0, complete=f + 1 == n_frames)
            reply = emit({"event": "frame", "frame": f, "frames": n_frames, "path": str(path), "loss": loss_value,
                          "iteration": done_it, "image": final})
            if f + 1 < n_frames and (reply == "stop" or sigint.requested):
                stop_reason = "interrupted" if sigint.requested else "stopped"
                break

    # 7. Finish: contact sheet and draft video from every frame on disk; the done event.
    frames = sorted(p for p in frames_dir.iterdir() if _FRAME_RE.match(p.name))
    completed = stop_reason == "done"
    sheet = video = None
    if frames and cfg.output.contact_sheet:
        sheet = _write_contact_sheet(frames, out / "contact_sheet.png")
    if completed and cfg.output.video:
        from vqclip.video import write_video

        video = write_video(frames, out / "video.mp4", fps=cfg.output.fps, quality=cfg.output.video_quality)
    result = RenderResult(
        out_dir=out, frames=frames, settings=settings_path, seed=seed, iterations=total_done, completed=completed,
        stop_reason=stop_reason, seconds=time.time() - t0, video=video, contact_sheet=sheet, frame_losses=frame_losses,
    )
    emit({"event": "done", "result": result})
    return result


# ----------------------------------------------------------------------------------------------
# Helpers of the phases above


def _finished(out: Path) -> bool:
    """True when ``out`` holds a completed render (its state says so)."""
    from vqclip.production.resume import load_state

    try:
        return bool(load_state(out).get("complete"))
    except ConfigError:
        return False


def _load_perceptors(cfg: RenderConfig, device: torch.device) -> list:
    """Every configured CLIP perceptor, frozen, on ``device``."""
    from vqclip.models.clip import load_perceptor

    return [load_perceptor(p.spec, device=device, cache_dir=cfg.models.cache_dir) for p in cfg.models.clip]


def _spec_label(spec: str | dict) -> str:
    if isinstance(spec, str):
        return spec
    return Path(str(spec.get("config") or spec.get("name"))).stem


def _write_settings(out: Path, cfg: RenderConfig) -> Path:
    """settings.yaml: the resolved config, loadable as a preset."""
    from vqclip.production.resume import atomic_write_bytes

    path = out / "settings.yaml"
    text = "# the fully resolved settings of this render; `vqclip render settings.yaml` repeats it\n"
    text += yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _to_pil(image01: torch.Tensor):
    """A ``(1,3,H,W)`` tensor in [0,1] as a PIL image."""
    from PIL import Image

    arr = image01[0].detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def _write_frame(path: Path, image, meta: dict[str, str]) -> Path:  # image: a PIL image
    """Save a frame PNG with text metadata, atomically."""
    from PIL.PngImagePlugin import PngInfo

    from vqclip.production.resume import atomic_write_bytes

    info = PngInfo()
    for k, v in meta.items():
        info.add_itxt(k, v)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())
    return path


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


class _StopOnSigint:
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

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ----------------------------------------------------------------------------------------------
# The CLI entry


def render_cli(preset: str, out: str | None = None, overrides: list[str] | tuple = (), resume: bool = False) -> int:
    """`vqclip render PRESET [-o OUT] [--set k=v ...] [--resume]` with a tqdm bar; returns the exit code."""
    from vqclip.progress import console_bar, is_terminal

    cfg = load_config(preset, list(overrides or []))
    out_dir = Path(out) if out else Path("renders") / Path(str(preset)).stem
    bar = None

    def progress(event: dict) -> None:
        nonlocal bar
        if event["event"] == "iteration":
            if bar is None:
                # A bar on a terminal; in a log (not a TTY) a line every LOG_INTERVAL_S, not a redraw every step.
                bar = console_bar(total=event["total_iterations"], initial=event["total_iteration"] - 1, unit="it",
                                  desc="render", dynamic_ncols=True, file=sys.stderr)
            bar.update(1)
            bar.set_postfix(frame=f"{event['frame'] + 1}/{event['frames']}", loss=f"{event['losses']['total']:.3f}", refresh=False)
        elif event["event"] == "frame" and bar is not None:
            line = f"frame {event['frame'] + 1}/{event['frames']}: {event['path']}"
            if is_terminal(sys.stderr):
                bar.write(line)  # above the live bar
            else:
                print(line, flush=True)  # bar.write would clear and redraw the bar in the log for every frame

    try:
        result = render(cfg, out_dir, callback=progress, resume=resume)
    finally:
        if bar is not None:
            bar.close()
    if not result.completed:
        how = {"interrupted": "interrupted", "stopped": "stopped", "max_iterations": "stopped at generation.max_iterations"}[result.stop_reason]
        keep = [o for o in overrides or [] if not o.replace(" ", "").startswith("generation.max_iterations=")]
        if result.stop_reason == "max_iterations":
            keep.append("generation.max_iterations=-1")  # or a higher cap: it is not part of the frame settings
        print(f"{how} after {len(result.frames)} of {cfg.animation.frames} frames; state saved in {out_dir}.\n"
              f"continue with: vqclip render {preset} -o {out_dir} --resume" + "".join(f" --set {o}" for o in keep),
              file=sys.stderr)
        return 130 if result.stop_reason == "interrupted" else 0
    print(f"{len(result.frames)} frames, video {result.video}, contact sheet {result.contact_sheet} "
          f"({result.seconds:.0f} s, seed {result.seed})")
    return 0
