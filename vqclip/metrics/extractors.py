"""The feature extractors of `vqclip eval`: registry entries (models/registry/metrics.yaml), download, safe load.

A state_dict (the 2015 Inception) loads with ``torch.load(weights_only=True)``. A TorchScript file
(the I3D of FVD) is a program, so it is loaded with ``torch.jit.load`` only after its sha256 matched a
pinned value: the registry's, or one the user gives for a copy they checked. Without a pin vqclip
refuses and prints the file's hash, so trusting it is an explicit decision.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from vqclip.errors import ConfigError, DownloadError, ModelError
from vqclip.models.download import RemoteFile, fetch_file, sha256_of

__all__ = ["MetricModel", "metric_entries", "metric_entry", "resolve_metric_file", "load_inception", "load_i3d", "load_c3d", "check_option"]


@dataclass(frozen=True)
class MetricModel:
    """One metrics.yaml entry: its single file (mirrors, size, sha256), how it loads, licence and notes."""

    name: str
    file: RemoteFile
    format: str  # state_dict | torchscript
    licence: str
    notes: str = ""


def _registry_file() -> Path:
    from importlib.resources import files

    return Path(str(files("vqclip.models"))) / "registry" / "metrics.yaml"


def metric_entries() -> dict[str, MetricModel]:
    """Every feature extractor in metrics.yaml (the registry's schema: kind, models: [entries]), by name."""
    import yaml

    data = yaml.safe_load(_registry_file().read_text(encoding="utf-8")) or {}
    out = {}
    for raw in data.get("models") or []:
        (f,) = raw["files"]  # each extractor is one file
        # "any"/"state_dict": the registry's content checks; vqclip.metrics checks the sha256 and loads the file itself
        remote = RemoteFile(filename=f["name"], urls=tuple(f.get("urls") or ()), size=f.get("size"), sha256=f.get("sha256"),
                            approx_bytes=f.get("approx_size") or f.get("size"), check=f.get("check", "any"))
        out[raw["name"]] = MetricModel(raw["name"], remote, (raw.get("arch") or {}).get("format", "state_dict"),
                                       raw.get("licence", ""), raw.get("notes", ""))
    return out


def metric_entry(name: str) -> MetricModel:
    """The entry called `name`; ModelError naming the known ones otherwise."""
    entries = metric_entries()
    if name not in entries:
        raise ModelError(f"metric model {name!r} is not in the registry; allowed: {', '.join(entries)}")
    return entries[name]


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    from vqclip.models.registry import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "metric"


def resolve_metric_file(name: str, path: str | os.PathLike | None = None, sha256: str | None = None,
                        cache_dir: str | os.PathLike | None = None, download: bool = True,
                        callback: Callable[[dict], Any] | None = None) -> Path:
    """A verified local file for extractor `name`: the given path, or the cached/downloaded registry file."""
    entry = metric_entry(name)
    pinned = (sha256 or entry.file.sha256 or "").lower() or None
    if path is not None:
        local = Path(path).expanduser()
        if not local.is_file():
            raise ModelError(f"{name}: file {str(local)!r} does not exist; give the path of {entry.file.filename}")
        _check_pin(name, local, pinned, entry)
        return local
    remote = dataclasses.replace(entry.file, sha256=pinned)
    if entry.format == "torchscript" and pinned is None:
        raise ModelError(
            f"{name}: no sha256 is published for {entry.file.filename}, and a TorchScript file is code, so vqclip does not "
            f"download and run it unchecked; download it yourself ({entry.file.urls[0]}), check it, and give "
            f"--{name.split('_')[0]} PATH --{name.split('_')[0]}-sha256 HEX"
        )
    dest = _cache_dir(cache_dir) / entry.file.filename
    if not download and not dest.is_file():
        raise ModelError(f"{name}: {entry.file.filename} is not in {dest.parent} and downloads are off")
    try:
        got = _fetch(remote, dest, name, callback)
    except DownloadError as exc:
        raise DownloadError(f"{name}: {exc}; or download it by hand into {dest.parent}") from exc
    return got


def _fetch(remote: RemoteFile, dest: Path, name: str, callback) -> Path:
    """fetch_file with the progress route it has: download events through `callback`, never a bar from here."""
    import inspect

    # the registry rework gives fetch_file a callback (download events) in place of its own tqdm bar
    if "callback" in inspect.signature(fetch_file).parameters:
        return fetch_file(remote, dest, callback=callback, model=name)
    size = remote.size or remote.approx_bytes
    if callback is not None:
        callback({"event": "download", "name": name, "file": remote.filename, "bytes": 0, "total": size})
    got = fetch_file(remote, dest, progress=False)
    if callback is not None:
        done = got.stat().st_size
        callback({"event": "download", "name": name, "file": remote.filename, "bytes": done, "total": done})
    return got


def _check_pin(name: str, path: Path, pinned: str | None, entry: MetricModel) -> None:
    digest = sha256_of(path)
    if pinned is None and entry.format == "torchscript":
        raise ModelError(
            f"{name}: {str(path)!r} is TorchScript (code) and no sha256 is pinned for it; its sha256 is {digest} — "
            f"if that is the copy you trust, pass it with --{name.split('_')[0]}-sha256 {digest}"
        )
    if pinned is not None and digest != pinned:
        raise ModelError(f"{name}: {str(path)!r} has sha256 {digest}, not the expected {pinned}; refusing to load it")


def load_inception(name: str = "inception_2015", path: str | os.PathLike | None = None, sha256: str | None = None,
                   cache_dir=None, download: bool = True, device="cpu", callback=None):
    """The 2015 Inception classifier (vqclip.metrics.inception.InceptionClassifier), weights verified first."""
    from vqclip.metrics.inception import InceptionClassifier, build_inception_2015

    file = resolve_metric_file(name, path, sha256, cache_dir, download, callback)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # tensors only: nothing in it can run
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ModelError(f"{name}: {str(file)!r} is not a readable state_dict ({type(exc).__name__}: {exc})") from exc
    net = build_inception_2015()
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError) as exc:
        raise ModelError(f"{name}: {str(file)!r} does not fit the 2015 Inception ({str(exc).splitlines()[0][:200]})") from exc
    return InceptionClassifier(net).to(device)


def load_i3d(path: str | os.PathLike | None = None, sha256: str | None = None, cache_dir=None, download: bool = True,
             device="cpu", callback=None) -> torch.jit.ScriptModule:
    """The I3D TorchScript of FVD, loaded only after its sha256 matched the pinned one."""
    return _load_torchscript("i3d_kinetics400", path, sha256, cache_dir, download, device, callback)


def load_c3d(path: str | os.PathLike | None = None, sha256: str | None = None, cache_dir=None, download: bool = True,
             device="cpu", callback=None) -> torch.jit.ScriptModule:
    """The C3D UCF-101 TorchScript of video IS, loaded only after its sha256 matched the pinned one."""
    return _load_torchscript("c3d_ucf101", path, sha256, cache_dir, download, device, callback)


def _load_torchscript(name: str, path, sha256, cache_dir, download: bool, device, callback) -> torch.jit.ScriptModule:
    file = resolve_metric_file(name, path, sha256, cache_dir, download, callback)
    try:
        return torch.jit.load(str(file), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise ModelError(f"{name}: {str(file)!r} is not a loadable TorchScript file ({str(exc).splitlines()[0][:200]})") from exc


def check_option(key: str, value: str | None) -> str | None:
    """A sha256 option as lower-case hex, or ConfigError naming the option."""
    if value is None:
        return None
    v = value.strip().lower()
    if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
        raise ConfigError(f"{key}: {value!r} is not a sha256; give 64 hex digits")
    return v
