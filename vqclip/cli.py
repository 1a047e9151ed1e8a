"""`vqclip render|post|models|presets|doctor`: a thin layer over the library.

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
