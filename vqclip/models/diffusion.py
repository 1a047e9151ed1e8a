"""Stable Diffusion components in diffusers' folder layout: found, checked and loaded, safetensors only.

A model is a local folder laid out as diffusers saves it (``vae/``, ``text_encoder/``, ``tokenizer/``,
``unet/``, ``scheduler/``, each with a config and ``*.safetensors`` weights), or a registry name whose
files the registry downloads into that same layout in the model cache. Hub models, the toy pack and
the tests' tiny models all load through :func:`load_sd_components`, so one code path is exercised
everywhere. Weights are read with ``use_safetensors=True``: a folder holding only pickled ``.bin``
files is refused rather than unpickled.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from vqclip.errors import ModelError

__all__ = [
    "DEFAULT_DIFFUSION",
    "DEFAULT_MOTION_ADAPTER",
    "SDComponents",
    "require_diffusers",
    "resolve_diffusion_folder",
    "load_sd_components",
    "load_motion_adapter",
    "vae_scale_factor",
]

DEFAULT_DIFFUSION = "stable-diffusion-v1-5"  # models.diffusion: null
DEFAULT_MOTION_ADAPTER = "animatediff-motion-adapter-v1-5-2"  # models.motion_adapter: null

#: subfolder -> what it holds; all must be present in a Stable Diffusion folder.
SD_SUBFOLDERS = {
    "vae": "the autoencoder (AutoencoderKL)",
    "text_encoder": "the CLIP text encoder (CLIPTextModel)",
    "tokenizer": "the CLIP tokenizer",
    "unet": "the denoising UNet (UNet2DConditionModel)",
    "scheduler": "the noise schedule (scheduler_config.json)",
}


def require_diffusers(engine: str) -> None:
    """Raise one ModelError naming the extra to install when diffusers/transformers are missing."""
    missing = [m for m in ("diffusers", "transformers", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"generation.engine: {engine!r} needs the diffusion extra ({', '.join(missing)} not installed); "
            f'install it with: pip install "vqclip[diffusion]"'
        )


@dataclass
class SDComponents:
    """The parts of a Stable Diffusion model, loaded on the CPU in fp32 (the engine places them)."""

    vae: Any  # diffusers.AutoencoderKL
    text_encoder: Any  # transformers.CLIPTextModel
    tokenizer: Any  # transformers.CLIPTokenizer
    unet: Any  # diffusers.UNet2DConditionModel
    scheduler_config: dict[str, Any]  # scheduler/scheduler_config.json; engines build their own scheduler from it
    source: str  # the folder, for PNG metadata and errors


def vae_scale_factor(vae: Any) -> int:
    """Pixels per latent cell of an AutoencoderKL (8 for SD 1.5: three downsamplings)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def resolve_diffusion_folder(
    spec: str | Mapping[str, Any],
    kind: str = "diffusion",
    cache_dir: str | os.PathLike | None = None,
    download: bool = True,
    callback: Callable[[dict], Any] | None = None,
) -> Path:
    """The local folder of ``models.diffusion`` / ``models.motion_adapter``: ``{path: ...}`` or a registry name."""
    key = f"models.{kind}"
    if isinstance(spec, Mapping):
        if set(spec) != {"path"}:
            raise ModelError(f"{key}: {dict(spec)!r} is not a model; give a registry name or {{path: FOLDER}} (a diffusers folder)")
        folder = Path(str(spec["path"])).expanduser()
        if not folder.is_dir():
            raise ModelError(f"{key}.path: {str(folder)!r} is not a folder; give a folder saved in diffusers' layout")
        return folder
    if not isinstance(spec, str) or not spec:
        raise ModelError(f"{key}: {spec!r} is not a model; give a registry name or {{path: FOLDER}}")
    from vqclip.models import registry

    resolve = getattr(registry, "resolve_model", None)
    if resolve is None:  # registry without data-file entries: only local folders can be used
        raise ModelError(f"{key}: registry names are not available in this build; give {{path: FOLDER}} (a diffusers folder)")
    found = resolve(spec, kind, cache_dir=cache_dir, download=download, callback=callback)
    # An entry lists every file of the diffusers folder (unet/config.json, vae/..., or an adapter's two
    # files), so the folder is their common parent.
    return Path(os.path.commonpath([str(p) for p in found.paths])) if len(found.paths) > 1 else Path(found.path)


def _check_layout(folder: Path, subfolders: Mapping[str, str], key: str) -> None:
    for sub, what in subfolders.items():
        if not (folder / sub).is_dir():
            raise ModelError(f"{key}: {str(folder)!r} has no {sub}/ folder ({what}); give a folder saved in diffusers' layout")
        if sub in ("vae", "text_encoder", "unet") and not any((folder / sub).glob("*.safetensors")):
            raise ModelError(
                f"{key}: {str(folder / sub)!r} has no .safetensors weights; vqclip never loads pickled .bin/.ckpt "
                "weights (convert them with diffusers' save_pretrained(safe_serialization=True))"
            )


def _variant(folder: Path) -> str | None:
    """"fp16" when a folder holds only diffusers' fp16 variant files (``*.fp16.safetensors``), as the registry downloads."""
    weights = list(folder.glob("*.safetensors"))
    return "fp16" if weights and all(w.name.endswith(".fp16.safetensors") for w in weights) else None


def _load(what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"cannot load {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def load_sd_components(
    folder: str | os.PathLike, key: str = "models.diffusion", dtype: Any = None, vae_dtype: Any = None
) -> SDComponents:
    """Load VAE, text encoder, tokenizer and UNet from a diffusers folder (safetensors only, on the CPU).

    ``dtype`` is the UNet's and text encoder's, ``vae_dtype`` the VAE's (default fp32): loading in the
    target dtype keeps the modules diffusers marks as fp32-only in fp32.
    """
    require_diffusers("diffusion")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    _check_layout(folder, SD_SUBFOLDERS, key)
    cfg_path = folder / "scheduler" / "scheduler_config.json"
    try:
        scheduler_config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{key}: cannot read {str(cfg_path)!r}: {exc}") from None
    safe = {"use_safetensors": True}
    dtype, vae_dtype = dtype or torch.float32, vae_dtype or torch.float32
    return SDComponents(
        vae=_load(
            f"{folder}/vae", lambda: AutoencoderKL.from_pretrained(
                folder, subfolder="vae", torch_dtype=vae_dtype, variant=_variant(folder / "vae"), **safe
            )
        ).eval(),
        text_encoder=_load(
            f"{folder}/text_encoder",
            lambda: CLIPTextModel.from_pretrained(
                folder, subfolder="text_encoder", dtype=dtype, variant=_variant(folder / "text_encoder"), **safe
            ),
        ).eval(),
        tokenizer=_load(f"{folder}/tokenizer", lambda: CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")),
        unet=_load(
            f"{folder}/unet", lambda: UNet2DConditionModel.from_pretrained(
                folder, subfolder="unet", torch_dtype=dtype, variant=_variant(folder / "unet"), **safe
            )
        ).eval(),
        scheduler_config=scheduler_config,
        source=str(folder),
    )


def load_motion_adapter(folder: str | os.PathLike, key: str = "models.motion_adapter", dtype: Any = None) -> Any:
    """Load an AnimateDiff MotionAdapter from a diffusers folder (its config.json + safetensors weights)."""
    require_diffusers("animatediff")
    from diffusers import MotionAdapter

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{key}: {str(folder)!r} has no config.json; give a MotionAdapter folder saved in diffusers' layout")
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"{key}: {str(folder)!r} has no .safetensors weights; vqclip never loads pickled weights")
    return _load(
        str(folder),
        lambda: MotionAdapter.from_pretrained(
            folder, use_safetensors=True, torch_dtype=dtype or torch.float32, variant=_variant(folder)
        ),
    ).eval()
