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
    from vqclip.progress import ConsoleProgress

    with ConsoleProgress() as show:
        return render_cli(args.preset, out=args.out, overrides=args.set or [], resume=args.resume, callback=show,
                          overwrite=args.overwrite)


def _cmd_post(args: argparse.Namespace) -> int:
    from vqclip.errors import ConfigError
    from vqclip.postproduction.run import run_post
    from vqclip.progress import ConsoleProgress

    try:
        with ConsoleProgress() as show:
            result = run_post(args.file, overrides=args.set or [], callback=show, out=args.out)
    except ConfigError as exc:
        # Post settings share names with render settings (fps, output.path): say which file's they are.
        raise (exc if str(exc).startswith("post") else ConfigError(f"post: {exc}")) from None
    i = result.info
    audio = f", audio {i.audio_codec}" if i.has_audio else ", no audio"
    print(f"wrote {result.path} ({i.codec} {i.pix_fmt} {i.width}x{i.height} {i.fps:g} fps, "
          f"{i.n_frames} frames, {i.video_duration or 0:.2f} s{audio})")
    for p in result.extra:
        print(f"wrote {p}")
    return 0


class DownloadBars:
    """A download-event callback that draws one console bar per file (the core only emits events)."""

    def __init__(self) -> None:
        self.bars: dict[str, object] = {}

    def __call__(self, event: dict) -> None:
        """Advance (or open) the bar of event["file"]; close it when the file is complete."""
        if event.get("event") != "download":
            return
        from vqclip.progress import console_bar

        key = event["file"]
        bar = self.bars.get(key)
        if bar is None:
            bar = self.bars[key] = console_bar(total=event.get("total"), unit="B", unit_scale=True, unit_divisor=1024,
                                               desc=f"{event['name']}: {key}", leave=False)
        if event.get("total") and bar.total != event["total"]:
            bar.total = event["total"]
        bar.n = event["bytes"]
        bar.refresh()
        if event.get("total") and event["bytes"] >= event["total"]:
            self.close(key)

    def close(self, key: str | None = None) -> None:
        """Close one bar, or all of them."""
        for k in [key] if key else list(self.bars):
            bar = self.bars.pop(k, None)
            if bar is not None:
                bar.close()


def _cmd_models(args: argparse.Namespace) -> int:
    from vqclip.models import registry

    if args.action == "download":
        if not args.name:
            raise VqclipError("models download: give a model NAME (see `vqclip models list`)")
        bars = DownloadBars()
        try:
            for name in args.name:
                for path in registry.download_model(name, cache_dir=args.cache_dir, callback=bars):
                    print(f"{name}: {path}")
        finally:
            bars.close()
        return 0
    print(registry.format_model_table(cache_dir=args.cache_dir))
    return 0


def _bundled_preset(name: str):
    """The bundled preset file called ``name`` (a Traversable), or one error listing the names."""
    import importlib.resources

    from vqclip.errors import ConfigError
    from vqclip.settings.render import list_presets

    names = [n for n, _ in list_presets()]
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"presets copy: no bundled preset {name!r}{hint}; the bundled presets are: {', '.join(names)}")
    return importlib.resources.files("vqclip.presets") / f"{name}.yaml"


def _cmd_presets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vqclip.errors import ConfigError
    from vqclip.settings.render import list_presets

    if args.action == "copy":
        if not args.name:
            raise ConfigError("presets copy: give a preset NAME (see `vqclip presets`), and optionally DEST")
        source = _bundled_preset(args.name)
        dest = Path(args.dest or f"{args.name}.yaml").expanduser()
        if dest.is_dir() or args.dest and args.dest.endswith(("/", "\\")):  # a folder, existing or to be made
            dest = dest / f"{args.name}.yaml"
        if dest.exists() and not args.force:
            raise ConfigError(f"presets copy: {dest} already exists; choose another DEST or add --force to replace it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(source.read_bytes())
        print(f"copied {args.name} to {dest}\nedit it, then: vqclip render {dest} -o renders/{dest.stem}")
        return 0
    if args.name:
        raise ConfigError(f"presets: unexpected {args.name!r}; use `vqclip presets` or `vqclip presets copy NAME [DEST]`")
    import importlib.resources

    folder = importlib.resources.files("vqclip.presets")
    rows = list_presets()
    width = max((len(n) for n, _ in rows), default=4)
    print(f"bundled presets in {folder}:")
    for name, description in rows:
        print(f"  {name.ljust(width)}  {description}")
        print(f"  {''.ljust(width)}  {folder / (name + '.yaml')}")
    print("\nrender one: vqclip render NAME -o OUT [--set key=value ...]\n"
          "copy one to edit: vqclip presets copy NAME [DEST]")
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
    from vqclip import __version__

    parser = argparse.ArgumentParser(prog="vqclip", description="Words to short videos with VQGAN-CLIP.")
    parser.add_argument("--version", action="version", version=f"vqclip {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("render", help="render frames and a draft video from a preset")
    p.add_argument("preset", help="a preset YAML path or a bundled preset name (see `vqclip presets`)")
    p.add_argument("-o", "--out", default=None, help="output folder (default: renders/<preset>)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting, e.g. generation.seed=3")
    p.add_argument("--resume", action="store_true", help="continue an interrupted render in OUT (`vqclip render OUT --resume` needs no other flags)")
    p.add_argument("--overwrite", action="store_true", help="replace the render in OUT (default: a new render goes to OUT-2, OUT-3...)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("post", help="post-production: speed, fades, joins, titles, music, export")
    p.add_argument("file", help="a post YAML file, or a render preset with a post: section")
    p.add_argument("-o", "--out", default=None, help="output file (overrides post.output.path)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a post setting")
    p.set_defaults(func=_cmd_post)

    p = sub.add_parser("models", help="list or download the pretrained models (VQGAN, CLIP, denoiser)")
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

    p = sub.add_parser("presets", help="list the bundled presets (with their paths), or copy one to edit")
    p.add_argument("action", nargs="?", choices=["list", "copy"], default="list")
    p.add_argument("name", nargs="?", help="copy: the bundled preset's name")
    p.add_argument("dest", nargs="?", help="copy: a file or folder (default: ./NAME.yaml)")
    p.add_argument("--force", action="store_true", help="copy: replace DEST if it exists")
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
