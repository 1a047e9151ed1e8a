"""The model registry: entries read from packaged YAML data, a user file, and the one resolver.

The entries live in `vqclip/models/registry/<family>.yaml` (schema in that folder's README.md).
A user adds or changes entries without editing the package in `$VQCLIP_CACHE/models.yaml`, else
`~/.config/vqclip/models.yaml`. `resolve_model(spec, kind)` turns whatever a preset says (a
registry name, local files) into local paths, downloading through `download.fetch_file`; the cache
state every table, the doctor and the resolver report comes from one function, `model_status`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.models.download import CHECKS, RemoteFile, fetch_file, file_state

__all__ = [
    "KINDS",
    "ModelInfo",
    "RemoteFile",
    "ResolvedModel",
    "resolve_model",
    "get_model_info",
    "list_models",
    "all_models",
    "default_cache_dir",
    "user_registry_file",
    "model_dir",
    "resolve_vqgan",
    "download_model",
    "format_model_table",
    "model_status",
    "model_size_text",
    "packaged_dir",
]

KINDS = ("vqgan", "clip", "denoiser", "diffusion", "motion_adapter", "metric")
_ENTRY_KEYS = {"name", "kind", "good_for", "licence", "source", "notes", "pages", "packaged", "folder", "arch", "files"}
_FILE_KEYS = {"name", "urls", "size", "approx_size", "sha256", "check", "min_size", "path"}
_MB = 1_000_000
_GB = 1_000_000_000


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry: its files with their mirrors, build facts, and what it is good for."""

    name: str
    kind: str  # one of KINDS; the cache keeps each kind in its own subfolder
    files: tuple[RemoteFile, ...]  # vqgan: (config .yaml, checkpoint .ckpt)
    good_for: str = ""
    source: str = ""  # provenance
    licence: str = ""
    arch: Mapping[str, Any] | None = None  # family-specific build facts (vqgan: what build_vqgan needs)
    pages: tuple[str, ...] = ()  # web pages to fetch the files by hand when no direct mirror works
    notes: str = ""
    packaged: bool = False  # files ship inside the vqclip package (never downloaded)
    folder: str = ""  # sub-folder of <cache>/<kind>/
    origin: str = ""  # the YAML file(s) the entry came from

    @property
    def architecture(self) -> dict[str, Any]:
        """A fresh copy of the architecture dict (vqgan: kind, n_embed, embed_dim, ddconfig, config_target)."""
        if self.arch is None:
            raise ModelError(f"model {self.name!r} has no registry architecture; it is read from its packaged files")
        return copy.deepcopy(dict(self.arch))

    @property
    def approx_bytes(self) -> int | None:
        """Total download size in bytes (exact where published, else approximate; None if unknown)."""
        sizes = [f.size or f.approx_bytes for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)


@dataclass(frozen=True)
class ResolvedModel:
    """What `resolve_model` found: local paths, the registry entry (None for local files), and how."""

    kind: str
    label: str  # the registry name, or a short text for local files
    paths: tuple[Path, ...]  # in the entry's file order (vqgan: config, checkpoint)
    entry: ModelInfo | None
    found: str  # "packaged" | "cache" | "downloaded" | "local" | "user-file" | "open_clip"
    options: Mapping[str, Any] = field(default_factory=dict)  # the entry's arch facts, e.g. clip: {"quick_gelu": True}
    folder: Path | None = None  # the folder holding the files (diffusers layouts: what from_pretrained takes)

    @property
    def path(self) -> Path:
        """The single (or last: the weights) path."""
        if not self.paths:
            raise ModelError(f"{self.kind} {self.label!r} has no local files (found via {self.found})")
        return self.paths[-1]


# --- reading the YAML files ---------------------------------------------------------------------


def packaged_registry_dir() -> Path:
    """The folder of the packaged registry YAML files."""
    from importlib.resources import files

    return Path(str(files("vqclip.models"))) / "registry"


def user_registry_file() -> Path:
    """$VQCLIP_CACHE/models.yaml when $VQCLIP_CACHE is set, else ~/.config/vqclip/models.yaml."""
    env = os.environ.get("VQCLIP_CACHE", "").strip()
    if env:
        return Path(env).expanduser() / "models.yaml"
    return Path("~/.config/vqclip/models.yaml").expanduser()


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"model registry file {str(path)!r} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]}); fix or remove it") from exc
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        raise ConfigError(f"model registry file {str(path)!r}: expected a mapping with 'models: [entries]'; see vqclip/models/registry/README.md")
    return data


def _remote(raw: Any, where: str) -> RemoteFile:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}: each file needs at least 'name:'; got {raw!r}")
    unknown = set(raw) - _FILE_KEYS
    if unknown:
        raise ConfigError(f"{where}: file {raw['name']!r} has unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_FILE_KEYS))}")
    check = raw.get("check", "any")
    if check not in CHECKS:
        raise ConfigError(f"{where}: file {raw['name']!r} check {check!r} is not allowed; allowed: {', '.join(CHECKS)}")
    urls = raw.get("urls") or []
    if isinstance(urls, str) or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"{where}: file {raw['name']!r} urls must be a list of URLs; got {urls!r}")
    for key in ("size", "approx_size", "min_size"):
        if raw.get(key) is not None and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 0):
            raise ConfigError(f"{where}: file {raw['name']!r} {key} {raw[key]!r} is not allowed; give a byte count")
    sha = raw.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())):
        raise ConfigError(f"{where}: file {raw['name']!r} sha256 {sha!r} is not 64 hex digits")
    path = raw.get("path")
    return RemoteFile(
        raw["name"], tuple(urls), raw.get("size"), sha.lower() if sha else None,
        raw.get("approx_size") or raw.get("size"), check, raw.get("min_size"),
        str(Path(str(path)).expanduser()) if path else None,
    )


def _entry(raw: Any, default_kind: str | None, ddconfigs: Mapping[str, Any], where: str) -> ModelInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(f"{where}: each entry needs 'name:'; got {raw!r}")
    name = raw["name"]
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: entry {name!r} has unknown key(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
    kind = raw.get("kind", default_kind)
    if kind not in KINDS:
        raise ConfigError(f"{where}: entry {name!r} kind {kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    files = raw.get("files") or []
    if not isinstance(files, list) or not files:
        raise ConfigError(f"{where}: entry {name!r} needs 'files:' (a list)")
    arch = raw.get("arch")
    if isinstance(arch, dict) and isinstance(arch.get("ddconfig"), str):
        if arch["ddconfig"] not in ddconfigs:
            raise ConfigError(f"{where}: entry {name!r} ddconfig {arch['ddconfig']!r} is not one of {', '.join(ddconfigs) or 'no ddconfigs'}")
        arch = {**arch, "ddconfig": copy.deepcopy(ddconfigs[arch["ddconfig"]])}
    return ModelInfo(
        name, kind, tuple(_remote(f, f"{where}: {name}") for f in files),
        good_for=str(raw.get("good_for", "")), source=str(raw.get("source", "")), licence=str(raw.get("licence", "")),
        arch=arch, pages=tuple(raw.get("pages") or ()), notes=str(raw.get("notes", "")),
        packaged=bool(raw.get("packaged", False)), folder=str(raw.get("folder", "") or ""), origin=where,
    )


@lru_cache(maxsize=1)
def _packaged_entries() -> tuple[ModelInfo, ...]:
    out: dict[tuple[str, str], ModelInfo] = {}
    order = {"vqgan": 0, "clip": 1, "denoiser": 2}  # table order: the families users pick most first
    for path in sorted(packaged_registry_dir().glob("*.yaml"), key=lambda p: (order.get(p.stem, 9), p.stem)):
        data = _read_yaml(path)
        for raw in data.get("models", []):
            info = _entry(raw, data.get("kind"), data.get("ddconfigs") or {}, path.name)
            if (info.kind, info.name) in out:
                raise ConfigError(f"model registry: {info.kind} {info.name!r} is in both {out[info.kind, info.name].origin} and {path.name}")
            out[info.kind, info.name] = info
    return tuple(out.values())


def _merge_files(base: tuple[RemoteFile, ...], raw_files: list, where: str) -> tuple[RemoteFile, ...]:
    by_name = {f.filename: f for f in base}
    for raw in raw_files:
        if not isinstance(raw, dict) or raw.get("name") not in by_name:
            known = ", ".join(by_name)
            raise ConfigError(f"{where}: file {raw.get('name') if isinstance(raw, dict) else raw!r} is not a file of this entry; allowed: {known}")
        old = by_name[raw["name"]]
        new = _remote({"name": old.filename, "check": old.check, **raw}, where)
        by_name[old.filename] = replace(
            old, urls=tuple(dict.fromkeys((*new.urls, *old.urls))),  # the user's mirrors first
            path=new.path or old.path,
            size=raw.get("size", old.size), sha256=new.sha256 or old.sha256,
            approx_bytes=raw.get("approx_size", old.approx_bytes), min_size=raw.get("min_size", old.min_size),
        )
    return tuple(by_name[f.filename] for f in base)


def _user_entries(entries: dict[tuple[str, str], ModelInfo]) -> dict[tuple[str, str], ModelInfo]:
    path = user_registry_file()
    if not path.is_file():
        return entries
    data = _read_yaml(path)
    where = str(path)
    entries = dict(entries)
    for raw in data.get("models", []):
        name = raw.get("name") if isinstance(raw, dict) else None
        kind = raw.get("kind", data.get("kind")) if isinstance(raw, dict) else None
        key = next((k for k in entries if k[1] == name and (kind is None or k[0] == kind)), None)
        if key is not None:
            old = entries[key]
            unknown = set(raw) - {"name", "files", "good_for", "notes", "pages", "licence"}
            if unknown:
                raise ConfigError(f"{where}: {name!r} is a packaged entry; a user file may change only its files, good_for, notes, "
                                  f"pages, licence (not {', '.join(sorted(unknown))}); give a new name for a new model")
            entries[key] = replace(
                old, files=_merge_files(old.files, raw.get("files") or [], f"{where}: {name}"),
                good_for=str(raw.get("good_for", old.good_for)), notes=str(raw.get("notes", old.notes)),
                licence=str(raw.get("licence", old.licence)), pages=tuple(raw.get("pages") or old.pages),
                origin=f"{old.origin} + {path}",
            )
        else:
            info = _entry(raw, data.get("kind"), {}, where)
            entries[info.kind, info.name] = info
    return entries


def all_models() -> list[ModelInfo]:
    """Every entry (packaged, then the user's), in table order; a name may recur across kinds ('toy')."""
    return list(_user_entries({(info.kind, info.name): info for info in _packaged_entries()}).values())


def list_models(kind: str | None = None) -> list[str]:
    """Names of the registry's models (optionally of one kind), in table order, each name once."""
    return list(dict.fromkeys(info.name for info in all_models() if kind is None or info.kind == kind))


def get_model_info(name: str, kind: str | None = None) -> ModelInfo:
    """The registry entry for `name` (of `kind`; without one, the first: vqgan before clip); ModelError if none."""
    entries = all_models()
    for info in entries:
        if info.name == name and (kind is None or info.kind == kind):
            return info
    others = [i.kind for i in entries if i.name == name]
    if others:
        raise ConfigError(f"model {name!r} is a {others[0]}, not a {kind}; allowed: {', '.join(list_models(kind)) or 'none registered'}")
    known = list_models(kind)
    raise ModelError(f"model {name!r} is not in the registry; allowed: {', '.join(known)}")


# --- where files live ----------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """$VQCLIP_CACHE if set, else ~/.cache/vqclip."""
    env = os.environ.get("VQCLIP_CACHE", "").strip()
    return Path(env).expanduser() if env else Path("~/.cache/vqclip").expanduser()


def packaged_dir() -> Path:
    """The folder of the weights that ship inside vqclip (the toy pack)."""
    from importlib.resources import files

    return Path(str(files("vqclip.toy"))) / "weights"


def model_dir(info: ModelInfo | str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder a model's files live in: packaged weights, or <cache>/<kind>/[<folder>/]."""
    info = get_model_info(info) if isinstance(info, str) else info
    if info.packaged:
        return packaged_dir()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / info.kind / info.folder if info.folder else root / info.kind


def file_paths(info: ModelInfo, cache_dir: str | os.PathLike | None = None) -> tuple[Path, ...]:
    """Where each of the entry's files is read from: the user's `path:`, else the cache (or the package)."""
    folder = model_dir(info, cache_dir)
    return tuple(Path(f.path) if f.path else folder / f.filename for f in info.files)


def model_status(info: ModelInfo | str, cache_dir: str | os.PathLike | None = None) -> str:
    """The one cache state every place reports: packaged | missing | yes | local | partial | invalid | no."""
    info = get_model_info(info) if isinstance(info, str) else info
    paths = file_paths(info, cache_dir)
    if info.packaged:
        return "packaged" if all(p.is_file() for p in paths) else "missing"
    states = [file_state(p, f) for p, f in zip(paths, info.files)]
    if all(s == "ok" for s in states):
        return "local" if any(f.path for f in info.files) else "yes"
    if "invalid" in states:
        return "invalid"  # a file is there but fails its check: it is never used
    return "partial" if any(s in ("ok", "partial") for s in states) else "no"


def _packaged_paths(info: ModelInfo) -> tuple[Path, ...]:
    paths = file_paths(info)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ModelError(
            f"model {info.name!r} ships inside vqclip, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; "
            "rebuild the toy pack (`python -m tools.train_toy_vqgan`, `python -m tools.train_toy_clip`) or reinstall vqclip"
        )
    return paths


def _manual_hint(info: ModelInfo, folder: Path) -> str:
    names = " and ".join(f.filename for f in info.files)
    sources = [f"{f.filename}: {f.urls[0]}" for f in info.files if f.urls]
    hint = f"download them by hand and put them in {folder} as {names} (or name them in {user_registry_file()} with path:)"
    if sources:
        hint += f"; from {'; '.join(sources)}"
        hint += f"; or the files at {', '.join(info.pages)}" if info.pages else ""
    return hint


def download_model(name: str | ModelInfo, cache_dir: str | os.PathLike | None = None,
                   callback: Callable[[dict], Any] | None = None) -> tuple[Path, ...]:
    """Fetch a model's files into the cache (verified, resumable, mirror by mirror); return their paths.

    Progress goes to `callback` as {"event": "download", "name", "file", "bytes", "total"} events.
    """
    info = get_model_info(name) if isinstance(name, str) else name
    if info.packaged:
        return _packaged_paths(info)
    folder = model_dir(info, cache_dir)
    paths, failures = [], []
    for remote, path in zip(info.files, file_paths(info, cache_dir)):
        if remote.path:  # the user's own file: verified, never downloaded over
            if file_state(path, remote) != "ok":
                raise ModelError(f"model {info.name!r}: the local file {str(path)!r} named in {user_registry_file()} is missing or fails its check "
                                 f"({remote.check}{', sha256' if remote.sha256 else ''}); fix the path or remove it")
            paths.append(path)
            continue
        try:
            paths.append(fetch_file(remote, path, callback=callback, model=info.name))
        except DownloadError as exc:
            failures.append(str(exc))
    if failures:
        raise DownloadError(f"could not download model {info.name!r}: every mirror failed ({' | '.join(failures)}); " + _manual_hint(info, folder))
    return tuple(paths)


# --- the one resolver ---------------------------------------------------------------------------


def _local_file(value: Any, what: str) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ModelError(f"{what} {str(path)!r} does not exist; give the path of an existing file")
    return path


def _from_registry(info: ModelInfo, cache_dir, download: bool, callback) -> ResolvedModel:
    options, folder = dict(info.arch or {}), model_dir(info, cache_dir)
    if info.packaged:
        return ResolvedModel(info.kind, info.name, _packaged_paths(info), info, "packaged", options, folder)
    paths = file_paths(info, cache_dir)
    if model_status(info, cache_dir) in ("yes", "local"):
        return ResolvedModel(info.kind, info.name, paths, info, "user-file" if any(f.path for f in info.files) else "cache", options, folder)
    if not download:
        state = model_status(info, cache_dir)
        why = " (a file is there but fails its check)" if state == "invalid" else " (only part of it)" if state == "partial" else ""
        raise ModelError(f"model {info.name!r} is not downloaded{why}; "
                         f"run `vqclip models download {info.name}`, or {_manual_hint(info, model_dir(info, cache_dir))}")
    return ResolvedModel(info.kind, info.name, download_model(info, cache_dir, callback=callback), info, "downloaded", options, folder)


def _resolve_clip_local(spec: Mapping[str, Any]) -> ResolvedModel:
    keys = set(spec) - {"quick_gelu"}
    quick = spec.get("quick_gelu", False)
    if not isinstance(quick, bool):
        raise ConfigError(f"CLIP model {dict(spec)!r}: quick_gelu {quick!r} is not allowed; give true (OpenAI-trained weights) or false")
    if keys == {"config", "weights"}:
        config = Path(str(spec["config"])).expanduser()
        return ResolvedModel("clip", f"local:{config.stem}", (config, Path(str(spec["weights"])).expanduser()), None, "local",
                             {"config": str(config), "quick_gelu": quick})
    if keys == {"name", "weights"}:
        weights = Path(str(spec["weights"])).expanduser()
        name = str(spec["name"])
        if name.endswith("-quickgelu"):
            quick = True  # open_clip's own -quickgelu config already says it
        return ResolvedModel("clip", f"{name}/{weights.name}", (weights,), None, "local", {"open_clip": name, "quick_gelu": quick})
    raise ConfigError(f"CLIP model {dict(spec)!r} is not usable; allowed keys: {{config, weights}} or {{name, weights}}, "
                      "each with an optional quick_gelu: true|false (true for OpenAI-trained weights)")


def _resolve_clip_name(spec: str) -> ResolvedModel:
    """An open_clip 'ARCH/PRETRAINED' that is not in the registry: open_clip downloads it itself."""
    import open_clip

    arch, _, tag = spec.partition("/")
    if spec.startswith(("hf-hub:", "local-dir:")):
        return ResolvedModel("clip", spec, (), None, "open_clip", {"open_clip": spec, "pretrained": None, "quick_gelu": False})
    if arch not in open_clip.list_models():
        raise ConfigError(f"CLIP {spec!r}: {arch!r} is not an open_clip architecture; allowed: a registry name ({', '.join(list_models('clip'))}), "
                          "'ARCH/PRETRAINED' from open_clip.list_pretrained(), or local files {name, weights}")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not tag or tag not in tags:
        raise ConfigError(f"CLIP {spec!r}: pretrained weights {tag!r} are not known for {arch}; allowed: {', '.join(tags) or 'a local weights file'}")
    quick = bool(open_clip.get_pretrained_cfg(arch, tag).get("quick_gelu", False)) or arch.endswith("-quickgelu")
    return ResolvedModel("clip", spec, (), None, "open_clip", {"open_clip": arch, "pretrained": tag, "quick_gelu": quick})


def resolve_model(spec: Any, kind: str, cache_dir: str | os.PathLike | None = None, download: bool = True,
                  callback: Callable[[dict], Any] | None = None) -> ResolvedModel:
    """Local paths for a model spec of `kind` (a registry name or local files), downloading when allowed.

    vqgan: NAME | {config, checkpoint}; clip: NAME | 'ARCH/PRETRAINED' | {name|config, weights[, quick_gelu]};
    denoiser/metric: NAME | a file path | {path}; diffusion/motion_adapter: NAME | {path: folder}.
    """
    if kind not in KINDS:
        raise ConfigError(f"model kind {kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    if isinstance(spec, str) and spec in list_models(kind):
        return _from_registry(get_model_info(spec, kind), cache_dir, download, callback)
    if kind == "vqgan":
        if isinstance(spec, Mapping) and set(spec) == {"config", "checkpoint"}:
            paths = (_local_file(spec["config"], "VQGAN config file"), _local_file(spec["checkpoint"], "VQGAN checkpoint file"))
            return ResolvedModel(kind, str(paths[1]), paths, None, "local")
        if isinstance(spec, Mapping):
            raise ConfigError(f"VQGAN model {dict(spec)!r} is not usable; allowed: a registry name or {{'config': .yaml path, 'checkpoint': .ckpt path}}")
        if isinstance(spec, str):
            get_model_info(spec, kind)  # raises: lists the known names
        raise ConfigError(f"VQGAN model {spec!r} is not usable; allowed: a registry name or {{'config': path, 'checkpoint': path}}")
    if kind == "clip":
        if isinstance(spec, Mapping):
            return _resolve_clip_local(spec)
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"CLIP model {spec!r} is not usable; allowed: a registry name ({', '.join(list_models('clip'))}), "
                              "'ARCH/PRETRAINED', or local files {name, weights}")
        return _resolve_clip_name(spec)
    if isinstance(spec, Mapping) and set(spec) == {"path"}:
        path = Path(str(spec["path"])).expanduser()
        if not path.exists():
            raise ModelError(f"{kind} path {str(path)!r} does not exist; give an existing {'folder' if kind in ('diffusion', 'motion_adapter') else 'file'}")
        return ResolvedModel(kind, str(path), (path,), None, "local", folder=path if path.is_dir() else path.parent)
    if isinstance(spec, (str, os.PathLike)) and kind in ("denoiser", "metric") and (Path(str(spec)).suffix or os.sep in str(spec)):
        return ResolvedModel(kind, str(spec), (_local_file(spec, f"{kind} file"),), None, "local")
    known = ", ".join(list_models(kind)) or "none registered"
    raise ConfigError(f"{kind} model {spec!r} is not usable; allowed: a registry name ({known}) or {{path: local {'folder' if kind in ('diffusion', 'motion_adapter') else 'file'}}}")


def resolve_vqgan(spec: str | Mapping[str, Any], cache_dir: str | os.PathLike | None = None, download: bool = True,
                  callback: Callable[[dict], Any] | None = None) -> tuple[Path, Path]:
    """(config_path, checkpoint_path): `resolve_model(spec, "vqgan").paths`, kept for callers outside the model layer."""
    config, ckpt = resolve_model(spec, "vqgan", cache_dir=cache_dir, download=download, callback=callback).paths
    return config, ckpt


# --- the table `vqclip models list` prints ---------------------------------------------------------


def _human(n: int | None, exact: bool) -> str:
    if n is None:
        return "?"
    text = f"{n / _GB:.2f} GB" if n >= _GB else f"{n / _MB:.0f} MB" if n >= _MB else f"{n / 1000:.0f} kB"
    return text if exact else "~" + text


def model_size_text(info: ModelInfo, cache_dir: str | os.PathLike | None = None) -> str:
    """A model's size for people: exact ("1.20 GB"), approximate ("~900 MB") or "?" when unpublished."""
    if info.packaged:
        sizes = [p.stat().st_size for p in file_paths(info) if p.is_file()]
        return _human(sum(sizes), True) if sizes else "?"
    sizes = [f.size or f.approx_bytes for f in info.files]
    known = [s for s in sizes if s is not None]
    if not known or sizes[-1] is None:  # the last file (checkpoint / weights) is what costs time and disk
        return "?"
    return _human(sum(known), all(f.size is not None for f in info.files))


def format_model_table(cache_dir: str | os.PathLike | None = None) -> str:
    """The table `vqclip models list` prints: name, kind, size, what it is for, cache state."""
    rows = [("name", "kind", "size", "good for", "state")]
    for info in all_models():
        rows.append((info.name, info.kind, model_size_text(info, cache_dir), info.good_for, model_status(info, cache_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}".rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    user = user_registry_file()
    lines.append(f"cache: {root}  (set $VQCLIP_CACHE or --cache-dir to move it)")
    lines.append(f"your entries: {user} ({'read' if user.is_file() else 'none yet'}; schema: vqclip/models/registry/README.md)")
    lines.append("download: vqclip models download NAME   (~ = approximate size, ? = not published; "
                 "state: yes/local = verified, invalid = present but fails its check)")
    return "\n".join(lines)
