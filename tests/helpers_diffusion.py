"""Tiny seeded Stable Diffusion parts (diffusers' get_dummy_components idea) saved in diffusers' folder layout.

Everything is built from configs with random weights: a 2-block UNet2DConditionModel, a 2-block
AutoencoderKL (4 px per latent cell), a 2-layer CLIPTextModel and a CLIPTokenizer whose vocabulary is
the 26 letters (written by the test), a DDIM-compatible scheduler config and a MotionAdapter that
matches the UNet. Saved with ``save_pretrained(safe_serialization=True)`` so tests go through the same
loader as hub models.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",  # what SD 1.5 ships; engines build their own scheduler from it
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
}


def write_tokenizer(folder: Path) -> None:
    """A CLIP BPE vocabulary of single letters (no merges): enough to tell prompts apart."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16, "tokenizer_class": "CLIPTokenizer"}))


def dummy_sd_folder(root: Path, seed: int = 0) -> Path:
    """Write a tiny SD model (vae, text_encoder, tokenizer, unet, scheduler) under ``root``; returns it."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, sample_size=32,
    )
    torch.manual_seed(seed + 2)
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=54, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=16,
    ))
    root.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(root / "unet", safe_serialization=True)
    vae.save_pretrained(root / "vae", safe_serialization=True)
    text.save_pretrained(root / "text_encoder", safe_serialization=True)
    write_tokenizer(root / "tokenizer")
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG))
    return root


def dummy_motion_adapter_folder(root: Path, seed: int = 0) -> Path:
    """Write a tiny MotionAdapter matching :func:`dummy_sd_folder`'s UNet under ``root``; returns it."""
    from diffusers import MotionAdapter

    torch.manual_seed(seed + 3)
    adapter = MotionAdapter(
        block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=4,
        motion_num_attention_heads=2, motion_max_seq_length=32,
    )
    with torch.no_grad():  # random init couples frames only faintly; make temporal attention matter
        for name, p in adapter.named_parameters():
            if "proj_out" in name or "to_out" in name:
                p.mul_(20.0)
    adapter.save_pretrained(root, safe_serialization=True)
    return root
