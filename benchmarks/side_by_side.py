"""vqclip's render step against a plain VQGAN-CLIP loop, same weights and cutouts, alternating A/B in one process.

The plain loop is written here the textbook way: fp32, no autocast, no compile, default memory
format, every cutout through CLIP as one batch, spherical distance to the prompt, Adam, clamp. The
vqclip side is the render loop's own :func:`vqclip.production.step.step` with the chosen precision.
``--compile on`` compiles the vqclip side as ``generation.compile: on`` does; its first step (the
compile, or a load from inductor's disk cache) is timed apart in the ``1st step`` column.
Both sides start from the same latent (or pixels) and share deep copies of the same modules, so
the only differences are the levers. Steps alternate plain/vqclip so the load of a shared machine
hits both alike; the ratio is plain median / vqclip median.

    python benchmarks/side_by_side.py --cases toy,vqgan256 --precision bf16 --iterations 3
    python benchmarks/side_by_side.py --cases vqgan512,pixels720 --device cuda --precision fp16
    OMP_NUM_THREADS=1 python benchmarks/side_by_side.py --cases toy --precision bf16 --compile on --threads 1 --iterations 20

Cases: ``toy`` (presets/default.yaml: toy VQGAN + toy CLIP, 128², cutn 16), ``vqgan256`` / ``vqgan512`` /
``vqgan720`` (1280x720; imagenet_f16_16384's real architecture with random weights + ViT-B-32 random weights, cutn 32),
``pixels720`` (the pixel engine at 1280x720, 4 views, ViT-B-32 random weights). Nothing is downloaded.
Peak memory: CUDA ``max_memory_allocated`` per side; on the CPU the bytes autograd saves for backward.
TFLOP/s: ``FlopCounterMode``'s count of one step over the median time; the share of peak uses the
device's nominal dense peak (a table for common GPUs; cores x clock x SIMD width for the CPU).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CASES = {
    "toy": {"preset": os.path.join(ROOT, "presets", "default.yaml")},
    "vqgan256": {"size": (256, 256), "vqgan": "imagenet_f16_16384", "clip": "ViT-B-32", "cutn": 32},
    "vqgan512": {"size": (512, 512), "vqgan": "imagenet_f16_16384", "clip": "ViT-B-32", "cutn": 32},
    "vqgan720": {"size": (1280, 720), "vqgan": "imagenet_f16_16384", "clip": "ViT-B-32", "cutn": 32},
    "pixels720": {"size": (1280, 720), "engine": "pixels", "clip": "ViT-B-32", "views": 4},
}

# Nominal dense peak TFLOP/s: (fp32 without tensor cores, fp16/bf16 tensor cores). Substring of the device name.
GPU_PEAK = {"H200": (67.0, 989.0), "H100": (67.0, 989.0), "A100": (19.5, 312.0), "L4": (30.3, 121.0),
            "A10": (31.2, 125.0), "T4": (8.1, 65.0), "V100": (15.7, 125.0), "RTX 4090": (82.6, 165.0)}


def _eager():
    """Compiled code runs eagerly inside (same work, so the same FLOPs and saved tensors)."""
    return torch.compiler.set_stance("force_eager")


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_peak_tflops(device: torch.device, half: bool) -> tuple[float | None, str]:
    """Nominal dense peak of ``device`` in TFLOP/s (None when unknown) and where it comes from."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, (fp32, fp16) in GPU_PEAK.items():
            if key in name:
                return (fp16 if half else fp32), f"{name} nominal"
        return None, f"{name} (peak unknown)"
    mhz = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            mhz = max(float(line.split(":")[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        pass
    if not mhz:
        return None, "cpu (clock unknown)"
    cap = str(torch.backends.cpu.get_cpu_capability())
    lanes = 16 if "AVX512" in cap else 8  # fp32 lanes per vector
    per_cycle = lanes * 2 * 2 * (2 if half else 1)  # FMA = 2 FLOP, 2 FMA ports, bf16 dot products double it
    threads = torch.get_num_threads()
    return threads * mhz * 1e6 * per_cycle / 1e12, f"{threads} cores x {mhz:.0f} MHz x {per_cycle} FLOP/cycle nominal"


def build_case(name: str, precision_name: str, device_name: str, compile_mode: str = "off", checkpoint: bool = False):
    """(vqclip side, plain side) for case ``name``: each a zero-arg step callable plus what to measure."""
    import open_clip

    from vqclip.models.clip import Perceptor, load_perceptor
    from vqclip.models.registry import get_model_info
    from vqclip.models.vqgan import build_vqgan
    from vqclip.production.engines.base import EngineContext
    from vqclip.production.generators.pixels import PixelGenerator
    from vqclip.production.generators.vqgan import VQGANGenerator
    from vqclip.production.objectives import get_objective
    from vqclip.production.precision import resolve_device, resolve_precision
    from vqclip.production.prompts import Prompt, PromptBank, Scene, Timeline
    from vqclip.production.speed import speed_up_perceptors
    from vqclip.production.step import make_optimizer, step
    from vqclip.settings.render import load_config

    case = CASES[name]
    text = "a painting of a lighthouse in a storm"
    if "preset" in case:
        import yaml

        with open(case["preset"]) as f:
            raw = yaml.safe_load(f)
        raw.pop("description", None)
        text = raw["prompts"]["texts"]
    else:
        w, h = case["size"]
        engine = case.get("engine", "vqgan")
        section = {"views": {"count": case["views"]}} if engine == "pixels" else {"cutouts": {"cutn": case["cutn"]}}
        raw = {"prompts": {"texts": text}, "size": {"width": w, "height": h},
               "models": {"clip": [case["clip"]], **({"vqgan": case["vqgan"]} if engine == "vqgan" else {})},
               "generation": {"engine": engine, "seed": 0, **section}}
    raw.setdefault("generation", {}).update({"precision": precision_name, "device": device_name, "compile": compile_mode})
    if checkpoint:
        raw["generation"].setdefault("vqgan", {})["checkpoint"] = True
    cfg = load_config(raw)
    device = resolve_device(cfg.generation.device)
    precision = resolve_precision(cfg.generation.precision, device)
    torch.manual_seed(0)
    timeline = Timeline((Scene((Prompt(text),), (), 1),))
    ctx = EngineContext(cfg, device, cfg.size.height, cfg.size.width, precision.channels_last,
                        precision=precision, timeline=timeline)
    engine = cfg.generation.engine

    if "preset" in case:
        perceptor = load_perceptor("toy", device=device)
    else:
        clip = open_clip.create_model(case["clip"], pretrained=None, device=device)
        size = clip.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        perceptor = Perceptor(clip, open_clip.get_tokenizer(case["clip"]), case["clip"], size,
                              open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD).to(device)
    perceptor.requires_grad_(False).eval()
    plain_perceptor = copy.deepcopy(perceptor)  # before any memory-format change on the vqclip side

    if engine == "pixels":
        generator = PixelGenerator(ctx)
        plain_model = None
    else:
        if "preset" in case:
            generator = None
            from vqclip.models.registry import resolve_model
            from vqclip.models.vqgan import load_vqgan

            # loaded bare (not through the generator) so the plain copy gets no vqclip lever such as checkpointing
            model = load_vqgan(*resolve_model(cfg.models.vqgan, "vqgan").paths, device=device)
        else:
            model = build_vqgan(get_model_info(case["vqgan"]).arch or case["vqgan"]).to(device).eval().requires_grad_(False)
        plain_model = copy.deepcopy(model)
        generator = VQGANGenerator(ctx, model, str(case.get("vqgan", "toy")))
    if precision.channels_last:
        perceptor.to(memory_format=torch.channels_last)
    speed_up_perceptors([perceptor], precision, compile_mode)  # as the render does
    bank = PromptBank.build(timeline, [perceptor], [1.0], device)
    objective = get_objective(cfg.generation.objective).build(ctx, [perceptor], bank)
    if cfg.generation.compile == "on":  # as the render does it: the decoder and CLIP's image tower
        from vqclip.production.speed import check_compile, compile_for_steps

        check_compile("on", device)
        compile_for_steps(generator, [perceptor])
    generator.start(None)
    optimizer = make_optimizer(cfg.generation.optimizer, generator, cfg.generation.lr)
    reference = generator.image()
    count = [0]

    def vqclip_step() -> float:
        count[0] += 1
        return step(generator, objective, optimizer, precision, 1, count[0], reference).loss

    # --- the plain loop: textbook VQGAN-CLIP, fp32, same start, same modules (copies) -------------------
    param = generator.parameters()[0].detach().clone().requires_grad_(True)
    plain_opt = torch.optim.Adam([param], lr=cfg.generation.lr)
    with torch.no_grad():
        target = F.normalize(plain_perceptor.encode_text([text]).float(), dim=-1)
    if engine == "pixels":
        views = copy.deepcopy(objective.views[0])

        def plain_step() -> float:
            plain_opt.zero_grad()
            emb = F.normalize(plain_perceptor.encode_image(views(param)), dim=-1)
            loss = -(emb @ target.T).mean()
            loss.backward()
            plain_opt.step()
            with torch.no_grad():
                param.clamp_(0, 1)
            return float(loss.detach())
    else:
        maker = copy.deepcopy(objective.makers[plain_perceptor.input_size])
        top, left, h, w = generator.top, generator.left, cfg.size.height, cfg.size.width
        z_min, z_max = generator.z_min, generator.z_max

        def plain_step() -> float:
            plain_opt.zero_grad()
            image = plain_model.decode(plain_model.quantize_st(param))[:, :, top:top + h, left:left + w]
            emb = F.normalize(plain_perceptor.encode_image(maker(image)), dim=-1)
            loss = (emb - target).norm(dim=-1).div(2).arcsin().pow(2).mul(2).mean()  # spherical distance
            loss.backward()
            plain_opt.step()
            with torch.no_grad():
                param.copy_(torch.maximum(torch.minimum(param, z_max), z_min))
            return float(loss.detach())

    vq_modules = [m for m in (getattr(generator, "model", None), perceptor) if m is not None]
    plain_modules = [m for m in (plain_model, plain_perceptor) if m is not None]
    label = f"{name}: {engine} {cfg.size.width}x{cfg.size.height}"
    return label, device, precision, (plain_step, plain_modules), (vqclip_step, vq_modules), cfg


def measure(name: str, args) -> dict:
    """Warm up both sides, time them alternately, then memory and FLOPs of one step each."""
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, HERE)
    from bench_render import saved_activation_bytes

    t = time.perf_counter()
    label, device, precision, (plain, plain_mods), (vq, vq_mods), cfg = build_case(name, args.precision, args.device, args.compile, args.checkpoint)
    setup = time.perf_counter() - t
    t = time.perf_counter()
    vq()  # with --compile on, this step compiles (from inductor's disk cache when it holds the graphs)
    _sync(device)
    first = time.perf_counter() - t
    for _ in range(args.warmup):
        plain(), vq()
    _sync(device)
    times = {"plain": [], "vqclip": []}
    for i in range(args.iterations):
        order = [("plain", plain), ("vqclip", vq)] if i % 2 == 0 else [("vqclip", vq), ("plain", plain)]
        for side, fn in order:
            t = time.perf_counter()
            fn()
            _sync(device)
            times[side].append(time.perf_counter() - t)
    pairs = [p / v for p, v in zip(times["plain"], times["vqclip"])]
    out = {"label": label, "device": device, "precision": precision.name + ("+compile" if args.compile == "on" else "") + ("+ckpt" if args.checkpoint else ""),
           "setup": setup, "first": first, "pair_ratio": statistics.median(pairs)}
    for side, fn, mods in (("plain", plain, plain_mods), ("vqclip", vq, vq_mods)):
        med = statistics.median(times[side])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            _sync(device)
            mem = torch.cuda.max_memory_allocated(device)
        else:
            with _eager():  # a hook or a dispatch mode would make dynamo compile the graphs again
                mem = saved_activation_bytes(fn, mods)
        with _eager(), FlopCounterMode(display=False) as counter:
            fn()
        flops = counter.get_total_flops()
        half = side == "vqclip" and precision.name != "fp32"
        peak, _ = device_peak_tflops(device, half)
        out[side] = {"s_it": med, "times": times[side], "mem": mem, "tflops": flops / med / 1e12,
                     "share": (flops / med / 1e12 / peak) if peak else None}
    out["ratio"] = out["plain"]["s_it"] / out["vqclip"]["s_it"]
    out["estimate"] = None
    if device.type == "cuda":  # the estimator's bytes (CUDA context excluded) against what the step allocated
        from vqclip.preproduction.estimate import estimate_config

        est = estimate_config(cfg, precision.name)
        out["estimate"] = est.total_bytes - est.context_bytes
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="toy,vqgan256", help=f"comma-separated: {', '.join(CASES)}")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="the vqclip side's")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--iterations", type=int, default=4, help="timed steps per side, alternating")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile", default="off", choices=["off", "on"], help="the vqclip side's generation.compile")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads for both sides (0: torch's default)")
    ap.add_argument("--checkpoint", action="store_true", help="the vqclip side's generation.vqgan.checkpoint (memory for time)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.cases.split(","):
        if name not in CASES:
            ap.error(f"--cases: {name!r} is not a case; allowed: {', '.join(CASES)}")
    load_before = os.getloadavg()[0]  # the 1-minute load: how busy a shared machine was around the figures
    rows = [measure(name, args) for name in args.cases.split(",")]
    dev = rows[0]["device"]
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}"
    print(f"side by side on {where}; torch {torch.__version__}; load {load_before:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"ratio = plain s/it / vqclip s/it (medians of {args.iterations}, alternating); pair = median of the per-pair ratios")
    mem_kind = "CUDA max allocated" if dev.type == "cuda" else "saved activations"
    print(f"{'case':34} {'vqclip':14} {'plain s/it':>10} {'vqclip s/it':>11} {'ratio':>6} {'pair':>6} {'1st step':>8}  {'plain mem':>9} {'vq mem':>9}  "
          f"{'plain TF/s':>10} {'vq TF/s':>8} {'share plain/vq':>15}")
    for r in rows:
        p, v = r["plain"], r["vqclip"]
        share = "/".join(f"{x['share'] * 100:.1f}%" if x["share"] is not None else "?" for x in (p, v))
        print(f"{r['label']:34} {r['precision']:14} {p['s_it']:10.3f} {v['s_it']:11.3f} {r['ratio']:5.2f}x {r['pair_ratio']:5.2f}x {r['first']:7.1f}s  "
              f"{p['mem'] / 2**20:7.0f}Mi {v['mem'] / 2**20:7.0f}Mi  {p['tflops']:10.3f} {v['tflops']:8.3f} {share:>15}"
              + (f"  estimate {r['estimate'] / 2**20:.0f}Mi ({r['estimate'] / v['mem']:.2f}x measured)" if r["estimate"] else ""))
    print(f"memory: {mem_kind}; share: of {device_peak_tflops(dev, False)[1]} (fp32) / the half-precision peak for bf16/fp16")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
