"""The engine shoot-out: the same prompts on every engine, one table of CLIP score, consistency, flicker, speed, memory.

Every engine registered in ``vqclip.production.engines.ENGINES`` takes part when it has a toy preset:
a bundled preset that selects it with toy models, or else a bundled preset that selects it, switched to
the toy models (``models.clip: [toy]``; vqgan/diffusion/motion_adapter -> toy where the preset names one)
with the engine's own options at their defaults. Each (engine, case) renders in its own process, so its
peak memory is its own: CUDA ``max_memory_allocated`` on a GPU, the process's peak RSS on the CPU.
Then ``vqclip.metrics.evaluate_runs`` judges every run with one CLIP (toy; ``--real``: ViT-B-32/openai).

    python benchmarks/engines.py                       # toy pack, CPU, 8 frames per case
    python benchmarks/engines.py --frames 16 --engines vqgan
    python benchmarks/engines.py --real --device cuda  # the engines' real presets and checkpoints (GPU)

s/frame is measured from the first optimizer/denoising step to the last frame (model loading excluded).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The prompts every engine renders: one still prompt, and a two-scene timeline with a zoom.
CASES = {
    "single": {"prompts": {"texts": "a red circle on a blue background"}, "zoom": "0:(1.0)"},
    "timeline+zoom": {
        "prompts": {"scenes": [{"texts": "a red circle on a blue background"}, {"texts": "a yellow star on a green background"}]},
        "zoom": "0:(1.04)",
    },
}
_MODEL_KEYS = ("vqgan", "diffusion", "motion_adapter")


def _engine_of(data: dict) -> str:
    return str((data.get("generation") or {}).get("engine", "vqgan"))


def _is_toy(data: dict) -> bool:
    models = data.get("models") or {}
    clips = models.get("clip") or []
    specs = [c.get("spec") if isinstance(c, dict) else c for c in clips]
    return bool(specs) and all(s == "toy" for s in specs) and all(models.get(k) in (None, "toy") for k in _MODEL_KEYS)


def toy_preset(engine: str) -> tuple[str, dict] | None:
    """(label, preset dict) of the engine's toy preset, or None when it has none."""
    from vqclip.settings.render import list_presets, read_preset

    presets = [(name, read_preset(name)) for name, _ in list_presets()]
    for name, data in presets:
        if _engine_of(data) == engine and _is_toy(data):
            return name, data
    for name, data in presets:
        if _engine_of(data) == engine:
            data = copy.deepcopy(data)
            models = data.setdefault("models", {})
            models["clip"] = [{"spec": "toy"}]
            for key in _MODEL_KEYS:
                if models.get(key) is not None:
                    models[key] = "toy"
            models["download"] = False  # a toy run never downloads; engines fall back or fail clearly
            data["generation"].pop(engine, None)  # the engine's own options at their defaults
            return f"{name} (toy models)", data
    return None


def real_preset(engine: str) -> tuple[str, dict] | None:
    """(label, preset dict) of the first bundled preset that selects the engine with real models."""
    from vqclip.settings.render import list_presets, read_preset

    for name, _ in list_presets():
        data = read_preset(name)
        if _engine_of(data) == engine and not _is_toy(data):
            return name, data
    return None


def case_config(base: dict, case: str, frames: int, size: int | None, seed: int) -> dict:
    """The base preset with the case's prompts, frame count, zoom and size; no video or contact sheet."""
    data = copy.deepcopy(base)
    data.pop("description", None)
    data.pop("post", None)
    spec = CASES[case]
    prompts = copy.deepcopy(spec["prompts"])
    if "scenes" in prompts:
        per = max(1, frames // len(prompts["scenes"]))
        for s in prompts["scenes"]:
            s["frames"] = per
    data["prompts"] = prompts
    if size:
        data["size"] = {"width": size, "height": size}
    anim = {k: v for k, v in (data.get("animation") or {}).items() if k in ("border_mode",)}
    data["animation"] = {**anim, "frames": frames, "zoom": spec["zoom"]}
    data["output"] = {**(data.get("output") or {}), "video": False, "contact_sheet": False, "images_interval": 0}
    data.setdefault("generation", {})["seed"] = seed
    return data


def worker(job: dict) -> dict:
    """Render one config (in this process) and measure s/frame and peak memory."""
    import resource

    import torch

    from vqclip.production.render import render
    from vqclip.settings.render import load_config

    cfg = load_config(job["config"])
    marks: dict[str, float] = {}

    def callback(event: dict) -> None:
        if event.get("event") == "iteration" and "start" not in marks:
            marks["start"] = time.perf_counter()
        if event.get("event") == "frame":
            marks["end"] = time.perf_counter()

    cuda = str(cfg.generation.device).startswith("cuda") or (cfg.generation.device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = render(cfg, job["out"], callback=callback)
    frames = len(result.frames)
    seconds = marks.get("end", 0.0) - marks.get("start", 0.0)
    if cuda:
        peak, where = torch.cuda.max_memory_allocated() / 2**20, "cuda"
    else:
        peak, where = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss"  # Linux: kB
    return {"frames": frames, "s_per_frame": seconds / max(frames, 1), "peak_mib": peak, "memory": where, "completed": result.completed}


def _run_worker(job: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": tail[:200]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    """Run the shoot-out and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default=None, help="comma-separated engine names (default: every registered engine)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases: {', '.join(CASES)}")
    parser.add_argument("--frames", type=int, default=8, help="frames per case (default 8)")
    parser.add_argument("--size", type=int, default=None, help="square frame size (default: the preset's own; toy: 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="generation.device for every run (default cpu)")
    parser.add_argument("--real", action="store_true", help="the engines' real presets and checkpoints, judged by ViT-B-32/openai")
    parser.add_argument("--clip", default=None, help="the judge (default: toy, or ViT-B-32/openai with --real)")
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from vqclip.metrics.run import evaluate_runs
    from vqclip.production.engines import ENGINES

    engines = args.engines.split(",") if args.engines else list(ENGINES)
    cases = args.cases.split(",")
    judge = args.clip or ("ViT-B-32/openai" if args.real else "toy")
    size = args.size or (None if args.real else 128)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="vqclip-engines-"))
    rows = []
    for engine in engines:
        found = real_preset(engine) if args.real else toy_preset(engine)
        if found is None:
            rows.append((engine, "-", f"skipped: no {'real' if args.real else 'toy'} preset selects this engine"))
            continue
        label, base = found
        for case in cases:
            config = case_config(base, case, args.frames, size, args.seed)
            config["generation"]["device"] = args.device
            out = out_root / f"{engine}-{case.replace('+', '_')}"
            print(f"rendering {engine} / {case} from {label} ...", file=sys.stderr, flush=True)
            measured = _run_worker({"config": config, "out": str(out)})
            if "error" in measured:
                rows.append((engine, case, f"failed: {measured['error']}"))
                continue
            (report,) = evaluate_runs([out], clip=judge, device=args.device, write=True)
            rows.append((engine, case, report, measured, label))
    _print_table(rows, judge, args)
    return 0


def _print_table(rows: list, judge: str, args) -> None:
    header = ("engine", "case", f"CLIP score ({judge})", "consistency", "flicker", "s/frame", "peak MiB", "preset")
    lines = [header]
    for row in rows:
        if len(row) == 3:
            lines.append((row[0], row[1], row[2], "", "", "", "", ""))
            continue
        engine, case, r, m, label = row
        lines.append((engine, case, f"{r.clip_score:.2f}" if r.clip_score is not None else "n/a", f"{r.consistency:.4f}",
                      f"{r.flicker:.2f}", f"{m['s_per_frame']:.2f}", f"{m['peak_mib']:.0f} ({m['memory']})", label))
    print("| " + " | ".join(lines[0]) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for line in lines[1:]:
        print("| " + " | ".join(str(c) for c in line) + " |")
    print(f"\n{args.frames} frames per case, seed {args.seed}, device {args.device}; flicker = mean |frame t+1 - frame t| "
          f"in 0-255 levels; the toy CLIP also guided the toy renders, so its score is inflated (compare engines, not papers)")


if __name__ == "__main__":
    sys.exit(main())
