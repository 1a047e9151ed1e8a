"""The frozen CLIP perceptor (open_clip): by open_clip name, the packaged toy, or local files.

The perceptor scores images against text; the render loop differentiates through
`encode_image`, so it takes images in [0, 1] at the model's own input size and applies the
model's own mean/std (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision"; Cherti et al. 2023 for the open_clip/LAION weights).
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vqclip.errors import ConfigError, DownloadError, ModelError

__all__ = ["Perceptor", "load_perceptor", "build_architecture", "uses_quick_gelu"]

_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


class Perceptor(nn.Module):
    """A frozen open_clip model with its tokenizer, input size and normalization."""

    def __init__(self, model: nn.Module, tokenizer: Any, name: str, input_size: int, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        """The device the model's weights live on."""
        return self.mean.device

    @property
    def embed_dim(self) -> int:
        """D, the size of the joint text/image embedding."""
        out = getattr(getattr(self.model, "visual", None), "output_dim", None)
        return int(out) if out else int(self.encode_text(["a"]).shape[-1])

    def train(self, mode: bool = True) -> Perceptor:
        """Stays in eval mode: a perceptor is never trained."""
        return super().train(False)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, D) L2-normalised float32 embeddings."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ConfigError(f"encode_text takes a list of strings, got {texts!r}")
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def encode_image(self, x01: torch.Tensor) -> torch.Tensor:
        """Images (B,3,S,S) in [0,1] at input_size -> (B, D) L2-normalised; differentiable w.r.t. x01."""
        if x01.dim() != 4 or x01.shape[1] != 3 or tuple(x01.shape[-2:]) != (self.input_size, self.input_size):
            raise ConfigError(
                f"{self.name} encode_image got a tensor of shape {tuple(x01.shape)}; "
                f"allowed: (B, 3, {self.input_size}, {self.input_size}) in [0, 1]"
            )
        weight_dtype = next(self.model.parameters()).dtype
        x = (x01 - self.mean.to(x01.dtype)) / self.std.to(x01.dtype)
        return F.normalize(self.model.encode_image(x.to(weight_dtype)).float(), dim=-1)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        """Same as encode_image."""
        return self.encode_image(x01)


# --- loading -------------------------------------------------------------------------------------


def _clip_cache(cache_dir: str | os.PathLike | None) -> str:
    from vqclip.models.registry import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return str(root / "clip")


def _finish(model: nn.Module, tokenizer: Any, name: str, device: str | torch.device) -> Perceptor:
    from open_clip import get_model_preprocess_cfg

    cfg = get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            raise ModelError(f"CLIP {name!r} has a non-square input size {tuple(size)}; vqclip needs a square one")
        size = size[0]
    return Perceptor(model, tokenizer, name, size, cfg["mean"], cfg["std"]).to(device)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise ModelError(f"CLIP config file {str(path)!r} does not exist; give an open_clip model config .json")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"CLIP config file {str(path)!r} is not valid JSON ({exc})") from exc
    if isinstance(cfg, dict) and "model_cfg" in cfg:
        raise ConfigError(
            f"CLIP config {str(path)!r} is an open_clip_config.json (with model_cfg); "
            f"give its folder as 'local-dir:{path.parent}' instead, or a bare model config with {', '.join(_CONFIG_KEYS)}"
        )
    missing = [k for k in _CONFIG_KEYS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise ModelError(f"CLIP config file {str(path)!r} lacks {', '.join(missing)}; an open_clip model config needs {', '.join(_CONFIG_KEYS)}")
    return cfg


def _register_config(path: Path) -> str:
    """Register a local model config with open_clip (its add_model_config); return its model name."""
    import hashlib
    import tempfile

    import open_clip

    from vqclip.production.resume import atomic_write_bytes

    cfg = _read_config(path)
    # open_clip keeps custom configs in one process-wide registry keyed by file stem, so two different
    # files both called model.json would shadow each other. Register a copy named by stem + content
    # hash instead: the same config always maps to the same name, different configs never collide.
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    name = f"{path.stem}-{digest}"
    if name not in open_clip.list_models():
        folder = Path(tempfile.gettempdir()) / "vqclip-clip-configs"
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / f"{name}.json"
        if not copy.is_file():
            atomic_write_bytes(copy, json.dumps(cfg).encode("utf-8"))
        open_clip.add_model_config(copy)
    return name


def _create(arch: str, pretrained: str | None, device, cache_dir, label: str, quick_gelu: bool) -> nn.Module:
    import open_clip

    try:
        # force_quick_gelu builds the activation the weights were trained with (OpenAI's: QuickGELU);
        # open_clip's plain configs use GELU and would only warn about the mismatch.
        return open_clip.create_model(arch, pretrained=pretrained, device=device, cache_dir=cache_dir, force_quick_gelu=quick_gelu)
    except (RuntimeError, pickle.UnpicklingError) as exc:
        text = str(exc)
        if "weights only load failed" in text.lower():  # open_clip's own download, refused by torch's safe loader
            from vqclip.models.safe_load import weights_refusal

            raise weights_refusal(Path(pretrained or arch), f"CLIP {label} weights", exc) from None
        if pretrained and os.path.isfile(pretrained):
            raise ModelError(f"CLIP weights {pretrained!r} do not fit {label}: {text.splitlines()[0][:300]}") from None
        if "download" in text.lower() or "connect" in text.lower() or "resolve" in text.lower():
            raise DownloadError(
                f"CLIP {label} could not be downloaded ({text.splitlines()[0][:200]}); offline, give local files: "
                f"{{'name': {arch!r}, 'weights': path to the weights file}}"
            ) from None
        raise ModelError(f"CLIP {label} could not be created: {text.splitlines()[0][:300]}") from None


def _load_local(config: Path | None, arch: str | None, weights: Path, label: str, device, cache_dir, quick_gelu: bool) -> Perceptor:
    import open_clip

    from vqclip.models.safe_load import load_weights

    if config is not None:
        arch = _register_config(config)
    elif arch not in open_clip.list_models():
        raise ConfigError(f"CLIP name {arch!r} is not an open_clip architecture; allowed: {', '.join(open_clip.list_models()[:12])}, ... (open_clip.list_models())")
    from vqclip.models.download import is_safetensors

    load_weights(weights, "CLIP weights")  # refuses anything but plain tensors, in one line, before open_clip reads it
    if is_safetensors(weights) != (weights.suffix == ".safetensors"):  # open_clip picks its reader by the suffix
        kind = "safetensors" if is_safetensors(weights) else "a torch pickle"
        raise ModelError(f"CLIP weights {str(weights)!r} hold {kind} but are named {weights.suffix or 'without a suffix'}; "
                         f"rename the file to end in {'.safetensors' if kind == 'safetensors' else '.pt'}")
    model = _create(arch, str(weights), device, cache_dir, label, quick_gelu)
    return _finish(model, open_clip.get_tokenizer(arch), label, device)


def uses_quick_gelu(model: nn.Module) -> bool:
    """True if the model's transformer/MLP activations are QuickGELU (what OpenAI's weights need)."""
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


def build_architecture(spec: str | Mapping[str, Any], device: str | torch.device = "meta") -> nn.Module:
    """The open_clip model a spec builds, without weights (on `device`; meta by default): for checks and estimates."""
    import open_clip

    from vqclip.models.registry import resolve_model

    found = resolve_model(spec, "clip", download=False) if not _is_registry_name(spec) else _registry_arch(spec)
    options = dict(found.options)
    if "config" in options or (found.entry is not None and found.entry.packaged):
        config = Path(options["config"]) if "config" in options else found.paths[0]
        arch = _register_config(config)
    else:
        arch = options["open_clip"]
        if arch not in open_clip.list_models() and not arch.startswith(("hf-hub:", "local-dir:")):
            raise ConfigError(f"CLIP {found.label!r}: {arch!r} is not an open_clip architecture; allowed: open_clip.list_models()")
    with torch.device(device):
        return open_clip.create_model(arch, pretrained=None, device=device, force_quick_gelu=bool(options.get("quick_gelu")))


def _is_registry_name(spec: Any) -> bool:
    from vqclip.models.registry import list_models

    return isinstance(spec, str) and spec in list_models("clip")


def _registry_arch(spec: str):
    from vqclip.models.registry import ResolvedModel, file_paths, get_model_info

    info = get_model_info(spec, "clip")
    return ResolvedModel("clip", spec, file_paths(info), info, "registry", dict(info.arch or {}))


def load_perceptor(spec: str | Mapping[str, Any], device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None,
                   download: bool = True, callback=None) -> Perceptor:
    """A frozen Perceptor from a registry name, "ARCH/PRETRAINED", or {"config"|"name": ..., "weights": file[, "quick_gelu"]}."""
    import open_clip

    from vqclip.models.registry import resolve_model

    found = resolve_model(spec, "clip", cache_dir=cache_dir, download=download, callback=callback)
    options, cache = dict(found.options), _clip_cache(cache_dir)
    quick = bool(options.get("quick_gelu", False))
    if found.entry is not None and found.entry.packaged:  # the toy: a config + weights shipped in the package
        config, weights = found.paths
        return _load_local(config, None, weights, found.label, device, cache, quick)
    if found.found == "open_clip":  # a tag the registry does not list: open_clip fetches and loads it
        label = found.label
        if options.get("pretrained") is None:  # hf-hub: / local-dir:
            model = _create(label, None, device, cache, label, quick)
            return _finish(model, open_clip.get_tokenizer(label, cache_dir=cache), label, device)
        model = _create(options["open_clip"], options["pretrained"], device, cache, label, quick)
        return _finish(model, open_clip.get_tokenizer(options["open_clip"]), label, device)
    if "config" in options:
        config, weights = found.paths
        if not weights.is_file():
            raise ModelError(f"CLIP weights file {str(weights)!r} does not exist; give the path of an open_clip state_dict (.pt/.bin/.safetensors)")
        return _load_local(config, None, weights, found.label, device, cache, quick)
    weights = found.path
    if not weights.is_file():
        raise ModelError(f"CLIP weights file {str(weights)!r} does not exist; give the path of an open_clip state_dict (.pt/.bin/.safetensors)")
    return _load_local(None, options["open_clip"], weights, found.label, device, cache, quick)
