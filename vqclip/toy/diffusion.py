"""Where the toy diffusion pack lives: a diffusers folder (vae, text_encoder, tokenizer, unet, scheduler, motion_adapter).

The folder is a plain Stable Diffusion layout with a `model_index.json`, so
`StableDiffusionPipeline.from_pretrained(toy_diffusion_dir())` and each component's own
`from_pretrained(toy_diffusion_dir() / "unet")` load it like a hub model; the motion adapter
sits beside them (`MotionAdapter.from_pretrained(toy_diffusion_dir() / "motion_adapter")`).
Weights are stored in fp16: load with `dtype=torch.float32` on a CPU.
"""

from __future__ import annotations

from pathlib import Path

COMPONENTS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")


def toy_diffusion_dir() -> Path:
    """The shipped toy diffusion folder (diffusers layout) inside the installed package."""
    return Path(__file__).resolve().parent / "weights" / "diffusion"


def toy_motion_adapter_dir() -> Path:
    """The shipped toy MotionAdapter folder (config.json + diffusion_pytorch_model.safetensors)."""
    return toy_diffusion_dir() / "motion_adapter"
