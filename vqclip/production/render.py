"""Production: render a preset into frames, a contact sheet and a draft video, with any engine.

:func:`render` reads top to bottom through numbered phases, each one call. Optimized engines
(a generator + an objective, :mod:`vqclip.production.engines.base`) run :func:`_optimize_frames`:
each frame starts from the previous one warped by that frame's motion and takes many
:func:`vqclip.production.step.step` calls. Sampled engines run :func:`_sample_chunks`: a chunk of frames
per call, resumable at chunk boundaries. Both write one :class:`vqclip.production.run.RunFolder`.

Events passed to ``callback`` (it may return ``"stop"`` to end cleanly; state is saved, ``resume=True``
continues; the first Ctrl-C does the same, a second one raises KeyboardInterrupt)::

    {"event": "iteration", "frame", "frames", "iteration", "iterations", "total_iteration",
     "total_iterations", "losses": {"total": float, "<prompt>": distance, ...}}
    {"event": "preview", "frame", "iteration", "image": PIL.Image}     every output.images_interval steps
    {"event": "frame", "frame", "frames", "path", "loss", "iteration", "image": PIL.Image}
    {"event": "done", "result": RenderResult}
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vqclip.production.run import RenderResult, RunFolder, StopOnSigint, holds_render, holds_unfinished, locked_by_other, next_free_folder, to_pil
from vqclip.settings.render import RenderConfig, load_config

__all__ = ["RenderResult", "render", "render_cli", "planned_iterations", "frame_iterations"]


def frame_iterations(cfg: RenderConfig, frame: int) -> int:
    """Optimizer steps of ``frame`` for an optimized engine (the resolved generation.iterations_*)."""
    g = cfg.generation
    return g.iterations_first_frame if frame == 0 else g.iterations_per_frame


def planned_iterations(cfg: RenderConfig) -> int:
    """Steps the whole render takes (optimizer or denoising steps; capped by ``generation.max_iterations``)."""
    from vqclip.production.engines import get_engine

    engine = get_engine(cfg.generation.engine)
    if engine.family == "optimized":
        total = sum(frame_iterations(cfg, f) for f in range(cfg.animation.frames))
    else:
        total = sum(engine.chunk_iterations(cfg, c) for c in engine.chunks(cfg))
    g = cfg.generation
    return total if g.max_iterations < 0 else min(total, g.max_iterations)


def render(
    config: RenderConfig | dict | str | Path,
    out_dir: str | Path,
    callback: Callable[[dict], Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> RenderResult:
    """Render frames, settings, a contact sheet and a draft video into ``out_dir`` (see the module doc for events).

    A folder that holds a finished render is never replaced: the new render goes to ``out_dir-2``, ``-3``...
    (``result.out_dir`` says which) unless ``overwrite=True``. Nothing in the folder changes until the
    settings, device, precision and models are ready, so a bad setting leaves an earlier render untouched.
    """
    from vqclip.production.engines import get_engine

    emit = callback or (lambda event: None)
    cfg = config if isinstance(config, RenderConfig) else load_config(config)
    out = Path(out_dir).expanduser()
    if not resume and not overwrite and ((holds_render(out) and not holds_unfinished(out)) or locked_by_other(out)):
        out = next_free_folder(out)  # an unfinished one is RunFolder.open's clear error: continue it with --resume
    # 1. Check inputs and open the run folder: the config, the seed, the resume state, the lock (nothing written yet).
    run = RunFolder.open(out, cfg, resume, overwrite)
    try:
        # 2. Device, precision and seeding (global RNGs: kornia's augmentations draw from torch's).
        ctx = _context(run, emit)
        # 3. Make the frames with the engine's family loop (it commits the folder once its models are loaded).
        loop = _optimize_frames if get_engine(run.cfg.generation.engine).family == "optimized" else _sample_chunks
        stop_reason, iterations, frame_losses = loop(run, ctx, emit)
        # 4. Finish: contact sheet and draft video from every frame on disk; the done event.
        result = run.finish(stop_reason, iterations, frame_losses)
    finally:
        run.release()
    emit({"event": "done", "result": result})
    return result



# ----------------------------------------------------------------------------------------------
# The phases above


def _context(run: RunFolder, emit=None):
    """Seed every global RNG and describe the run for the engine (device, precision, size, timeline, motion)."""
    from vqclip.production.animate import motion_schedule
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.precision import resolve_device, resolve_precision
    from vqclip.production.prompts import build_timeline

    cfg, seed = run.cfg, run.seed
    device = resolve_device(cfg.generation.device)
    precision = resolve_precision(cfg.generation.precision, device)
    if cfg.generation.compile:
        from vqclip.production.speed import check_compile

        check_compile(cfg.generation.compile, device)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    return EngineContext(
        cfg, device, cfg.size.height, cfg.size.width, precision.channels_last, precision=precision, seed=seed,
        timeline=build_timeline(cfg.prompts, cfg.animation.frames), motions=motion_schedule(cfg.animation, cfg.output.fps), callback=emit,
    )


def _optimize_frames(run: RunFolder, ctx, emit) -> tuple[str, int, list[float]]:
    """The optimized family: a generator and an objective, frame after frame, many steps each."""
    from vqclip.production.animate import warp
    from vqclip.production.engines import get_engine
    from vqclip.production.objectives import get_objective
    from vqclip.production.prompts import PromptBank, load_image01
    from vqclip.production.resume import restore_rng
    from vqclip.production.speed import speed_up_perceptors
    from vqclip.production.step import make_optimizer, step

    cfg, gen, state, precision = run.cfg, run.cfg.generation, run.state, ctx.precision
    n_frames = cfg.animation.frames
    # a. Models: the generator first (building it draws from the seeded RNG), then the perceptors.
    generator = get_engine(gen.engine).build(ctx)
    perceptors = _load_perceptors(cfg, ctx.device, ctx.callback)
    speed_up_perceptors(perceptors, precision, gen.compile)
    bank = PromptBank.build(ctx.timeline, perceptors, [p.weight for p in cfg.models.clip], ctx.device)
    objective = get_objective(gen.objective).build(ctx, perceptors, bank)
    if gen.compile == "on":  # the first step compiles; inductor's on-disk cache makes a second render's cheap
        from vqclip.production.speed import compile_for_steps

        compile_for_steps(generator, perceptors)
    model_label = ", ".join([generator.describe()] + [f"clip:{_spec_label(p.spec)}" for p in cfg.models.clip])
    if state is not None:
        run.check_frames(state["frame"])
    elif cfg.prompts.init_image:
        load_image01(cfg.prompts.init_image, (ctx.height, ctx.width))  # a broken init image fails before the folder changes
    run.commit()  # models are loaded: only now may the folder change

    # b. Start fresh, or restore the state saved at a frame boundary or at a stop.
    first_frame, first_iteration, total_done = 0, 0, 0
    optimizer, reference = None, None
    if state is not None:
        first_frame, first_iteration, total_done = state["frame"], state["iteration"], state["total_iterations"]
        generator.load_state_dict(state["engine"])
        optimizer = make_optimizer(gen.optimizer, generator, gen.lr)
        if state["optimizer"]:
            optimizer.load_state_dict(state["optimizer"])
        if precision.scaler is not None and state.get("scaler"):
            precision.scaler.load_state_dict(state["scaler"])
        reference = state.get("reference")
        reference = reference.to(ctx.device) if reference is not None else None
        restore_rng(state["rng"])
    planned = planned_iterations(cfg)

    def snapshot(frame: int, iteration: int, complete: bool = False) -> None:
        run.save_state({
            "frame": frame, "iteration": iteration, "total_iterations": total_done, "engine": generator.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "scaler": precision.scaler.state_dict() if precision.scaler is not None else {},
            "reference": reference.detach().cpu() if reference is not None else None,
        }, complete)

    # c. The frame loop.
    frame_losses: list[float] = []
    stop_reason = "done"
    with StopOnSigint() as sigint:
        for f in range(first_frame, n_frames):
            iterations = frame_iterations(cfg, f)
            mid_frame = state is not None and f == first_frame and first_iteration > 0
            done_it = first_iteration if mid_frame else 0
            if gen.max_iterations >= 0 and total_done >= gen.max_iterations:
                stop_reason = "max_iterations"
                break
            if not mid_frame:  # the init image or random for the first frame, the warped previous frame after
                if f == 0:
                    init = cfg.prompts.init_image
                    reference = None
                    generator.start(load_image01(init, (ctx.height, ctx.width)).to(ctx.device) if init else None)
                else:
                    reference = warp(generator.image(), ctx.motions[f], cfg.animation.border_mode)
                    generator.start(reference)
                if optimizer is None or gen.reset_optimizer:
                    optimizer = make_optimizer(gen.optimizer, generator, gen.lr)
            loss_value = float("nan")
            while done_it < iterations:
                if gen.max_iterations >= 0 and total_done >= gen.max_iterations:
                    stop_reason = "max_iterations"
                    break
                result = step(generator, objective, optimizer, precision, f, done_it, reference)
                done_it += 1
                total_done += 1
                loss_value = result.loss
                reply = emit({
                    "event": "iteration", "frame": f, "frames": n_frames, "iteration": done_it, "iterations": iterations,
                    "total_iteration": total_done, "total_iterations": planned, "losses": {"total": loss_value, **result.parts},
                })
                if cfg.output.images_interval and done_it % cfg.output.images_interval == 0:
                    reply = emit({"event": "preview", "frame": f, "iteration": done_it, "image": to_pil(generator.image())}) or reply
                if reply == "stop" or sigint.requested:
                    stop_reason = "interrupted" if sigint.requested else "stopped"
                    break
                if cfg.output.save_every and done_it % cfg.output.save_every == 0 and done_it < iterations:
                    snapshot(f, done_it)  # a kill -9 (no handler runs) then costs at most save_every steps
            if stop_reason in ("interrupted", "stopped"):
                snapshot(f, done_it)  # mid-frame: resume finishes this frame
                break
            # Write the frame, then the state at the boundary (or where max_iterations ended it).
            final = to_pil(generator.export_image())
            path = run.write_frame(f, final, ctx.timeline.describe(f), done_it, model_label)
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
    return stop_reason, total_done, frame_losses


def _sample_chunks(run: RunFolder, ctx, emit) -> tuple[str, int, list[float]]:
    """The sampled family: one ``sample()`` call per chunk of frames; state saved at every chunk boundary."""
    from vqclip.production.engines import get_engine
    from vqclip.production.resume import restore_rng

    cfg, state = run.cfg, run.state
    engine_cls = get_engine(cfg.generation.engine)
    engine = engine_cls.build(ctx)
    chunks = engine_cls.chunks(cfg)
    if state is not None:
        run.check_frames(chunks[state["chunk"] - 1].stop if state["chunk"] > 0 else 0)
    run.commit()  # the engine is loaded: only now may the folder change
    n_frames, planned, cap = cfg.animation.frames, planned_iterations(cfg), cfg.generation.max_iterations
    first_chunk, total_done = 0, 0
    if state is not None:
        first_chunk, total_done = state["chunk"], state["total_iterations"]
        engine.load_state_dict(state["engine"])
        restore_rng(state["rng"])
    stop_reason = "done"

    with StopOnSigint() as sigint:

        def chunk_emit(event: dict) -> Any:
            """Number the engine's steps over the whole render; a Ctrl-C or a cap answers "stop"."""
            nonlocal total_done
            if event.get("event") == "iteration":
                total_done += 1
                event = {**event, "frames": n_frames, "total_iteration": total_done, "total_iterations": planned}
            reply = emit(event)
            return "stop" if reply == "stop" or sigint.requested or (0 <= cap <= total_done) else reply

        for ci in range(first_chunk, len(chunks)):
            if ci == first_chunk:  # the boundary this call starts from (a resume starts from a saved one)
                run.save_state({"chunk": ci, "total_iterations": total_done, "engine": engine.state_dict()})
            images = engine.sample(chunks[ci], chunk_emit)
            if images is None:  # stopped mid-chunk: the state on disk is the chunk's start; resume redoes it
                stop_reason = "interrupted" if sigint.requested else "max_iterations" if 0 <= cap <= total_done else "stopped"
                break
            for f, image in zip(chunks[ci], images):
                final = to_pil(image)
                path = run.write_frame(f, final, ctx.timeline.describe(f), 0, engine.describe())
                emit({"event": "frame", "frame": f, "frames": n_frames, "path": str(path), "loss": float("nan"),
                      "iteration": 0, "image": final})
            run.save_state({"chunk": ci + 1, "total_iterations": total_done, "engine": engine.state_dict()},
                           complete=ci + 1 == len(chunks))
            if ci + 1 < len(chunks) and sigint.requested:
                stop_reason = "interrupted"
                break
    return stop_reason, total_done, []


def _load_perceptors(cfg: RenderConfig, device: torch.device, callback=None) -> list:
    """Every configured CLIP perceptor, frozen, on ``device`` (downloads report through ``callback``)."""
    from vqclip.models.clip import load_perceptor

    return [load_perceptor(p.spec, device=device, cache_dir=cfg.models.cache_dir, download=cfg.models.download, callback=callback)
            for p in cfg.models.clip]


def _spec_label(spec: str | dict) -> str:
    if isinstance(spec, str):
        return spec
    return Path(str(spec.get("config") or spec.get("name"))).stem


# ----------------------------------------------------------------------------------------------
# The CLI entry


def render_cli(preset: str, out: str | None = None, overrides: list[str] | tuple = (), resume: bool = False,
               callback: Callable[[dict], Any] | None = None, overwrite: bool = False) -> int:
    """`vqclip render PRESET [-o OUT] [--set k=v ...] [--resume] [--overwrite]`; events go to ``callback`` (the CLI's bars); returns the exit code.

    ``vqclip render OUT --resume`` (or ``OUT/settings.yaml``) continues the render in OUT with its own settings.
    """
    given = Path(str(preset)).expanduser()
    if given.is_dir() and (given / "settings.yaml").is_file():
        given = given / "settings.yaml"
    if given.name == "settings.yaml" and given.is_file():  # a render folder: its settings, and the folder itself as OUT
        preset = str(given)
        out = out or str(given.parent)
    cfg = load_config(preset, list(overrides or []))
    out_dir = Path(out) if out else Path("renders") / Path(str(preset)).stem
    result = render(cfg, out_dir, callback=callback, resume=resume, overwrite=overwrite)
    if result.out_dir != out_dir.expanduser():
        print(f"{out_dir} holds an earlier render, kept as it is; this one is in {result.out_dir} "
              f"(--overwrite replaces it)", file=sys.stderr)
    out_dir = result.out_dir
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
