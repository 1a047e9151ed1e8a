"""Speed of one VQGAN-CLIP render step: iterations/s, seconds per frame, peak memory, achieved TFLOP/s.

Random weights throughout (speed does not depend on their values), so nothing is downloaded: the
VQGAN is built from a registry entry's architecture and CLIP is ``open_clip.create_model(ARCH)``.
The step is the render loop's own :func:`vqclip.production.step.step`: the generator's synth
(vqgan: straight-through quantize, decode, crop), the objective (cutouts or views), the stability
pull, backward, optimizer step, clamp.

    python benchmarks/bench_render.py --model imagenet_f16_16384 --clip ViT-B-32 --size 256 --cutn 32
    python benchmarks/bench_render.py --size 512 --precision fp16 --device cuda
    python benchmarks/bench_render.py --engine pixels --size 1280x720 --views 4 --iterations-per-frame 25

Memory: on CUDA the peak of ``torch.cuda.max_memory_allocated``; on the CPU the bytes autograd saves
for the backward pass during one step (``saved_tensors_hooks``), which is what grows with size and
cutn. TFLOP/s: ``FlopCounterMode``'s count for one step (forward + backward) divided by its mean time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch


def _parse_size(text: str) -> tuple[int, int]:
    """``256`` or ``640x384`` as (width, height)."""
    w, _, h = text.lower().partition("x")
    return int(w), int(h or w)


def build(args):
    """The generator, objective, optimizer, precision and perceptors of one render step (random weights)."""
    import open_clip

    from vqclip.models.clip import Perceptor
    from vqclip.models.registry import get_model_info
    from vqclip.models.vqgan import build_vqgan
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.generators.pixels import PixelGenerator
    from vqclip.production.generators.vqgan import VQGANGenerator
    from vqclip.production.objectives import get_objective
    from vqclip.production.precision import resolve_device, resolve_precision
    from vqclip.production.prompts import Prompt, PromptBank, Scene, Timeline
    from vqclip.production.speed import speed_up_perceptors
    from vqclip.production.step import make_optimizer
    from vqclip.settings.render import load_config

    width, height = _parse_size(args.size)
    section = {"views": {"count": args.views}} if args.engine == "pixels" else {"cutouts": {"cutn": args.cutn}}
    cfg = load_config({
        "prompts": {"texts": "a painting of a lighthouse in a storm"},
        "size": {"width": width, "height": height},
        "models": {"clip": [a for a in args.clip.split(",")], **({} if args.engine == "pixels" else {"vqgan": args.model})},
        "generation": {"precision": args.precision, "device": args.device, "seed": 0, "engine": args.engine, **section},
    })
    device = resolve_device(cfg.generation.device)
    precision = resolve_precision(cfg.generation.precision, device)
    torch.manual_seed(0)
    timeline = Timeline((Scene((Prompt("a painting of a lighthouse in a storm"),), (), 1),))
    ctx = EngineContext(cfg, device, height, width, precision.channels_last, precision=precision, timeline=timeline)
    if args.engine == "pixels":  # paper 000: no decoder
        generator = PixelGenerator(ctx)
    else:
        model = build_vqgan(get_model_info(args.model).arch or args.model).to(device).eval().requires_grad_(False)
        generator = VQGANGenerator(ctx, model, args.model)
    perceptors = []
    for arch in args.clip.split(","):
        clip = open_clip.create_model(arch, pretrained=None, device=device)
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        perceptors.append(Perceptor(clip, open_clip.get_tokenizer(arch), arch, size,
                                    open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD).to(device))
    if precision.channels_last:
        for p in perceptors:
            p.to(memory_format=torch.channels_last)
    speed_up_perceptors(perceptors, precision, cfg.generation.compile)  # as the render does
    bank = PromptBank.build(timeline, perceptors, [1.0] * len(perceptors), device)
    objective = get_objective(cfg.generation.objective).build(ctx, perceptors, bank)
    generator.start(None)
    optimizer = make_optimizer(cfg.generation.optimizer, generator, cfg.generation.lr)
    return cfg, device, precision, generator, objective, optimizer, perceptors


def timed_step(generator, objective, optimizer, precision):
    """The render loop's own step() on a later frame (its stability pull toward the current image included)."""
    from vqclip.production.step import step

    reference = generator.image()
    count = [0]

    def run() -> float:
        count[0] += 1
        return step(generator, objective, optimizer, precision, 1, count[0], reference).loss

    return run


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(step, modules) -> int:
    """Bytes autograd keeps for backward during one step: each storage once, weights excluded."""
    weights = {t.untyped_storage().data_ptr() for m in modules for t in list(m.parameters()) + list(m.buffers())}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            st = t.untyped_storage()
            if st.data_ptr() not in weights:
                seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
        except (RuntimeError, NotImplementedError):
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one block of numbers."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="imagenet_f16_16384", help="registry VQGAN architecture (random weights)")
    ap.add_argument("--clip", default="ViT-B-32", help="open_clip architecture(s), comma-separated (random weights)")
    ap.add_argument("--size", default="256", help="frame size: 256 or WIDTHxHEIGHT")
    ap.add_argument("--cutn", type=int, default=32)
    ap.add_argument("--engine", default="vqgan", choices=["vqgan", "pixels"], help="what is optimized (pixels: paper 000)")
    ap.add_argument("--views", type=int, default=4, help="pixels engine: augmented views per step")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=3, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iterations-per-frame", type=int, default=30, help="steps of a later frame, for s/frame")
    args = ap.parse_args(argv)

    from torch.utils.flop_counter import FlopCounterMode

    from vqclip.production.animate import Motion, warp

    t_build = time.perf_counter()
    cfg, device, precision, engine, objective, optimizer, perceptors = build(args)
    t_build = time.perf_counter() - t_build
    step = timed_step(engine, objective, optimizer, precision)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    times = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t)
    s_per_it = sum(times) / len(times)

    # The per-frame overhead: warp the finished frame, re-encode it, export the picture.
    t = time.perf_counter()
    engine.start(warp(engine.image(), Motion(zoom=1.02), "reflect"))
    engine.image()
    _sync(device)
    frame_overhead = time.perf_counter() - t

    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB CUDA max allocated"
    else:
        modules = [m for m in (getattr(engine, "model", None), *perceptors) if m is not None]
        memory = f"{saved_activation_bytes(step, modules) / 2**30:.2f} GiB saved activations per step (CPU)"
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()

    w, h = _parse_size(args.size)
    what = f"pixels, {args.views} views" if args.engine == "pixels" else f"{args.model}, cutn {args.cutn}"
    print(f"vqclip bench: {what} + {args.clip} at {w}x{h}, {precision.name} on {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else f' ({torch.get_num_threads()} threads)'}")
    if hasattr(engine, "grid"):
        print(f"  latent grid     {engine.grid[1]}x{engine.grid[0]} (canvas {engine.canvas[1]}x{engine.canvas[0]})")
    print(f"  step times      {', '.join(f'{x:.3f}' for x in times)} s (after {args.warmup} warm-up)")
    print(f"  iterations/s    {1 / s_per_it:.3f}")
    print(f"  s/frame         {args.iterations_per_frame * s_per_it + frame_overhead:.2f} "
          f"({args.iterations_per_frame} steps + {frame_overhead:.2f} s warp/encode/export)")
    print(f"  frames/s        {1 / (args.iterations_per_frame * s_per_it + frame_overhead):.4f}")
    print(f"  peak memory     {memory}")
    print(f"  FLOP per step   {flops / 1e12:.3f} TFLOP (forward + backward)")
    print(f"  achieved        {flops / s_per_it / 1e12:.3f} TFLOP/s")
    print(f"  setup           {t_build:.1f} s (build models, encode prompt)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
