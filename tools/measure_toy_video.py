"""Render toy presets and judge their frames with the toy CLIP: the numbers the toy diffusion pack's quality bars use.

    python -m tools.measure_toy_video t2v_zero_toy animatediff_toy
    python -m tools.measure_toy_video animatediff_toy --set generation.seed=3 --set "prompts.texts=a green square on a black background"
    python -m tools.measure_toy_video animatediff_toy --pack /tmp/pack     # a candidate pack (diffusers folder + motion_adapter/)

Prints one JSON line per render: the share of frames whose best caption (of all 280 toy captions) is the
frame's heaviest prompt, the neighbours' mean embedding cosine, the mean |frame difference|, identity
flips (the best caption's shape changes while the prompt's does not) and the shape's centroid per frame.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def measure(preset: str, overrides: list[str], out: Path, pack: Path | None = None) -> dict:
    """Render ``preset`` with ``overrides`` (and the diffusion folder ``pack``) into ``out``; judge it (`judge_video`)."""
    import vqclip
    from vqclip.models.clip import load_perceptor
    from vqclip.production.prompts import build_timeline
    from vqclip.toy.metrics import frame_prompts, images_to_tensor, judge_video

    overrides = ["output.video=false", *overrides]
    if pack is not None:
        overrides.append(f"models.diffusion={{path: {pack}}}")
        if vqclip.load_config(preset, overrides).generation.engine == "animatediff":
            overrides.append(f"models.motion_adapter={{path: {pack / 'motion_adapter'}}}")
    cfg = vqclip.load_config(preset, overrides)
    result = vqclip.render(cfg, out)
    frames = images_to_tensor(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in result.frames]))
    prompts = frame_prompts(build_timeline(cfg.prompts, cfg.animation.frames), len(result.frames))
    judged = judge_video(frames, prompts, load_perceptor("toy"))
    return {"preset": preset, "overrides": overrides, **judged.summary(), "seconds": round(result.seconds, 1),
            "misread": [f"{i}: {p!r} -> {t!r}" for i, (p, t) in enumerate(zip(prompts, judged.top)) if p != t]}


def main(argv: list[str] | None = None) -> int:
    """Command line: one JSON line per preset."""
    parser = argparse.ArgumentParser(prog="python -m tools.measure_toy_video", description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+", help="bundled preset names or preset files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="a preset override (repeatable)")
    parser.add_argument("--pack", type=Path, default=None, help="judge this toy diffusion folder instead of the shipped one")
    parser.add_argument("--out", type=Path, default=None, help="keep the renders here (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        for i, preset in enumerate(args.presets):
            print(json.dumps(measure(preset, args.overrides, root / f"{i}_{Path(preset).stem}", args.pack and args.pack.resolve())), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
