"""The frozen CLIP perceptor (open_clip): by open_clip name, the packaged toy, or local files.

The perceptor scores images against text; the render loop differentiates through
`encode_image`, so it takes images in [0, 1] at the model's own input size and applies the
model's own mean/std (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision"; Cherti et al. 2023 for the open_clip/LAION weights).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vqclip.errors import ConfigError, DownloadError, ModelError

__all__ = ["Perceptor", "load_perceptor"]

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


def _create(arch: str, pretrained: str | None, device, cache_dir, label: str) -> nn.Module:
    import open_clip

    try:
        return open_clip.create_model(arch, pretrained=pretrained, device=device, cache_dir=cache_dir)
    except RuntimeError as exc:
        text = str(exc)
        if pretrained and os.path.isfile(pretrained):
            raise ModelError(f"CLIP weights {pretrained!r} do not fit {label}: {text.splitlines()[0][:300]}") from exc
        if "download" in text.lower() or "connect" in text.lower() or "resolve" in text.lower():
            raise DownloadError(
                f"CLIP {label} could not be downloaded ({text.splitlines()[0][:200]}); offline, give local files: "
                f"{{'name': {arch!r}, 'weights': path to the weights file}}"
            ) from exc
        raise ModelError(f"CLIP {label} could not be created: {text.splitlines()[0][:300]}") from exc


def _load_local(config: Path | None, arch: str | None, weights: Path, label: str, device, cache_dir) -> Perceptor:
    import open_clip

    if not weights.is_file():
        raise ModelError(f"CLIP weights file {str(weights)!r} does not exist; give the path of an open_clip state_dict (.pt/.bin/.safetensors)")
    if config is not None:
        arch = _register_config(config)
    elif arch not in open_clip.list_models():
        raise ConfigError(f"CLIP name {arch!r} is not an open_clip architecture; allowed: {', '.join(open_clip.list_models()[:12])}, ... (open_clip.list_models())")
    model = _create(arch, str(weights), device, cache_dir, label)
    return _finish(model, open_clip.get_tokenizer(arch), label, device)


def _load_named(spec: str, device, cache_dir) -> Perceptor:
    import open_clip

    if spec.startswith(("hf-hub:", "local-dir:")):  # open_clip resolves these itself
        model = _create(spec, None, device, cache_dir, spec)
        return _finish(model, open_clip.get_tokenizer(spec, cache_dir=cache_dir), spec, device)
    arch, _, pretrained = spec.partition("/")
    if arch not in open_clip.list_models():
        raise ConfigError(f"CLIP {spec!r}: {arch!r} is not an open_clip architecture; allowed: 'ARCH/PRETRAINED' such as "
                          "'ViT-B-32/openai', 'ViT-B-16/laion2b_s34b_b88k' (open_clip.list_pretrained()), 'toy', or local files")
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not pretrained or (pretrained not in tags and not os.path.isfile(pretrained)):
        raise ConfigError(f"CLIP {spec!r}: pretrained weights {pretrained!r} are not known for {arch}; allowed: {', '.join(tags) or 'a local weights file'}")
    model = _create(arch, pretrained, device, cache_dir, spec)
    return _finish(model, open_clip.get_tokenizer(arch), spec, device)


def load_perceptor(spec: str | Mapping[str, Any], device: str | torch.device = "cpu", cache_dir: str | os.PathLike | None = None) -> Perceptor:
    """A frozen Perceptor from "ARCH/PRETRAINED", "toy", {"config": json, "weights": file} or {"name": arch, "weights": file}."""
    cache = _clip_cache(cache_dir)
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"config", "weights"}:
            config, weights = Path(spec["config"]).expanduser(), Path(spec["weights"]).expanduser()
            return _load_local(config, None, weights, f"local:{config.stem}", device, cache)
        if keys == {"name", "weights"}:
            weights = Path(spec["weights"]).expanduser()
            return _load_local(None, str(spec["name"]), weights, f"{spec['name']}/{weights.name}", device, cache)
        raise ConfigError(f"CLIP model {dict(spec)!r} is not usable; allowed keys: {{'config', 'weights'}} or {{'name', 'weights'}}")
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"CLIP model {spec!r} is not usable; allowed: 'ARCH/PRETRAINED' (e.g. 'ViT-B-32/openai'), 'toy', or local files")
    if spec == "toy":
        from vqclip.models import registry

        folder = registry.packaged_dir()
        config, weights = folder / "toy_clip.json", folder / "toy_clip.pt"
        missing = [str(p) for p in (config, weights) if not p.is_file()]
        if missing:
            raise ModelError(
                f"CLIP 'toy' ships inside vqclip, but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing; "
                "rebuild it with `python -m tools.train_toy_clip` or reinstall vqclip"
            )
        return _load_local(config, None, weights, "toy", device, cache)
    return _load_named(spec, device, cache)
