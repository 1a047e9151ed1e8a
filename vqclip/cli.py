"""`vqclip render|post|models|eval|presets|doctor`: a thin layer over the library.

Every handler imports its library module lazily, so `vqclip --help` stays instant and
bad input becomes one line on stderr with exit code 2 (never a deep traceback).
"""

from __future__ import annotations

import argparse
import sys

from vqclip.errors import VqclipError


def _cmd_render(args: argparse.Namespace) -> int:
    from vqclip.production.render import render_cli

    return render_cli(args.preset, out=args.out, overrides=args.set or [], resume=args.resume)


def _cmd_post(args: argparse.Namespace) -> int:
    from vqclip.postproduction.run import post_cli

    return post_cli(args.file, out=args.out, overrides=args.set or [])


def _cmd_models(args: argparse.Namespace) -> int:
    from vqclip.models import registry

    if args.action == "download":
        if not args.name:
            raise VqclipError("models download: give a model NAME (see `vqclip models list`)")
        for name in args.name:
            registry.download_model(name, cache_dir=args.cache_dir, progress=True)
        return 0
    print(registry.format_model_table(cache_dir=args.cache_dir))
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from vqclip.settings.render import format_preset_table

    print(format_preset_table())
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from vqclip.preproduction.doctor import run_doctor

    return run_doctor(skip_render=args.no_render)


def _cmd_eval(args: argparse.Namespace) -> int:
    from vqclip.metrics.extractors import check_option
    from vqclip.metrics.run import evaluate_runs
    from vqclip.progress import console_bar

    bars: dict = {}

    def progress(event: dict) -> None:
        # eval stages and feature-extractor downloads as console bars (the core only emits events)
        if event.get("event") == "eval":
            key, done, total = ("eval", event["run"], event["stage"]), event["done"], event["total"]
            desc = f"{event['stage']} {event['run']}"[-60:]
        elif event.get("event") == "download":
            key, done, total = ("download", event.get("file") or event.get("name")), int(event.get("bytes") or 0), event.get("total")
            desc = f"download {key[1]}"
        else:
            return
        if key not in bars:
            unit = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if key[0] == "download" else {}
            bars[key] = console_bar(total=total, desc=desc, leave=False, **unit)
        if done > bars[key].n:
            bars[key].update(done - bars[key].n)

    try:
        reports = evaluate_runs(
            args.runs, prompt=args.prompt, clip=args.clip, reference=args.reference, inception=args.inception,
            i3d=args.i3d, i3d_sha256=check_option("--i3d-sha256", args.i3d_sha256), inception_path=args.inception_weights,
            c3d=args.c3d, c3d_sha256=check_option("--c3d-sha256", args.c3d_sha256),
            device=args.device, cache_dir=args.cache_dir, callback=progress,
        )
    finally:
        for bar in bars.values():
            bar.close()
    for r in reports:
        print(r.summary())
        for note in dict.fromkeys(r.notes):
            print(f"  note: {note}")
        print(f"  wrote {r.json_path} and {r.plot_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for the `vqclip` command."""
    parser = argparse.ArgumentParser(prog="vqclip", description="Words to short videos with VQGAN-CLIP.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render frames and a draft video from a preset")
    p.add_argument("preset", help="a preset YAML path or a bundled preset name (see `vqclip presets`)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: renders/<preset>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. generation.seed=3")
    p.add_argument("--resume", action="store_true", help="continue an interrupted render in OUT")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("post", help="post-production: speed, fades, joins, titles, music, export")
    p.add_argument("file", help="a post YAML file, or a render preset with a post: section")
    p.add_argument("-o", "--out", default=None, help="output file (overrides post.output.path)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a post setting")
    p.set_defaults(func=_cmd_post)

    p = sub.add_parser("models", help="list or download the pretrained VQGAN checkpoints")
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list")
    p.add_argument("name", nargs="*", help="model name(s) for download")
    p.add_argument("--cache-dir", default=None, help="where models live (default $VQCLIP_CACHE or ~/.cache/vqclip)")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("eval", help="judge renders: CLIP score, frame consistency, flicker; FVD and IS on request")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="render folder(s) (frames/ + settings.yaml), frame folders or video files")
    p.add_argument("--prompt", default=None, help="the text every frame should show (default: each frame's prompt from settings.yaml)")
    p.add_argument("--clip", default="ViT-B-32/openai", help="the judge: any CLIP spec (default ViT-B-32/openai as in the papers; 'toy' offline)")
    p.add_argument("--reference", default=None, metavar="DIR", help="a folder of 2+ reference videos: FVD of the runs (2+) against them")
    p.add_argument("--i3d", default=None, metavar="PATH", help="a local i3d_torchscript.pt for FVD (TorchScript: needs --i3d-sha256)")
    p.add_argument("--i3d-sha256", default=None, metavar="HEX", help="the sha256 you trust for the I3D file (none is published)")
    p.add_argument("--inception", action="store_true", help="also the frame Inception Score (downloads the 2015 Inception, 96 MB, verified)")
    p.add_argument("--inception-weights", default=None, metavar="PATH", help="a local weights-inception-2015-12-05-6726825d.pth")
    p.add_argument("--c3d", default=None, metavar="PATH", help="a local c3d_ucf101.pt: video IS of 16-frame clips (TorchScript: needs --c3d-sha256)")
    p.add_argument("--c3d-sha256", default=None, metavar="HEX", help="the sha256 you trust for the C3D file (none is published)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda[:N]")
    p.add_argument("--cache-dir", default=None, help="where models live (default $VQCLIP_CACHE or ~/.cache/vqclip)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("presets", help="list the bundled presets")
    p.set_defaults(func=_cmd_presets)

    p = sub.add_parser("doctor", help="check this machine: versions, GPU, ffmpeg, cache, hosts, a toy render")
    p.add_argument("--no-render", action="store_true", help="skip the 2-second toy render")
    p.set_defaults(func=_cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vqclip` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VqclipError as exc:
        print(f"vqclip: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vqclip: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
