"""The CycleGAN ResNet generator that denoises pixel-engine frames (paper 000, Fig. 3), and its loader.

The architecture is the ResNet generator of Zhu et al.'s CycleGAN (ref. [10] of paper 000) with the
settings the paper's authors trained their denoiser with: 9 residual blocks, 64 filters, instance
norm without affine parameters, reflection padding, a tanh output. Its `state_dict` keys follow the
reference implementation's `nn.Sequential` layout (`model.1.weight`, `model.10.conv_block.5.weight`,
...), so checkpoints trained there load here unchanged.

Checkpoints come in four shapes that all load:
- saved from `nn.DataParallel` (every key starts with `module.`) or not;
- trained with dropout inside the residual blocks (`conv_block.6.*` holds the second conv, since the
  dropout layer takes index 4) or without (`conv_block.5.*`). Dropout is the identity at inference,
  so the loader maps either layout onto the model it builds;
- with or without the `running_mean`/`running_var` buffers that old PyTorch versions saved for
  instance norm layers (they are unused with `track_running_stats=False` and dropped).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from vqclip.errors import ModelError

__all__ = ["ResnetGenerator", "build_generator", "load_generator", "normalize_state_dict"]

# The reference implementation builds every instance norm this way; no parameters, no buffers.
_NORM_KW = dict(affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Residual block: pad, 3x3 conv, norm, ReLU, (dropout), pad, 3x3 conv, norm, plus the input."""

    def __init__(self, dim: int, use_dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, 3, bias=True),
            nn.InstanceNorm2d(dim, **_NORM_KW),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim, **_NORM_KW)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + F(x)."""
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: c7s1-64, d128, d256, n x R256, u128, u64, c7s1-3, tanh (ref. [10] of paper 000)."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, use_dropout: bool = False, in_ch: int = 3, out_ch: int = 3):
        super().__init__()
        self.ngf, self.n_blocks, self.use_dropout = ngf, n_blocks, use_dropout
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7, bias=True),
            nn.InstanceNorm2d(ngf, **_NORM_KW),
            nn.ReLU(True),
        ]
        for i in range(2):  # two stride-2 downsamplings
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult * 2, **_NORM_KW),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, use_dropout) for _ in range(n_blocks)]
        for i in range(2):  # two stride-2 transposed-conv upsamplings
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1, bias=True),
                nn.InstanceNorm2d(ngf * mult // 2, **_NORM_KW),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate a batch; the output is in [-1, 1]. Any H, W works (padded to a multiple of 4 inside)."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4  # two stride-2 stages: odd sizes would come back off by one
        if ph or pw:
            x = nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        return self.model(x)[..., :h, :w]


def build_generator(ngf: int = 64, n_blocks: int = 9, use_dropout: bool = False) -> ResnetGenerator:
    """A generator with random weights, frozen and in eval mode (for tests and benchmarks)."""
    return ResnetGenerator(ngf, n_blocks, use_dropout).eval().requires_grad_(False)


_BLOCK_KEY = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.(weight|bias)$")
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def normalize_state_dict(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict]:
    """Map any of the published key layouts onto a dropout-free generator's keys; returns (state, arch)."""
    # 1. Unwrap containers some trainers save ({"state_dict": ...}, {"netG_A": ...}).
    for wrapper in ("state_dict", "netG_A", "model_state_dict"):
        if wrapper in state and isinstance(state[wrapper], Mapping):
            state = state[wrapper]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError("cyclegan checkpoint: holds no tensors; expected a ResnetGenerator state_dict (netG_A)")
    # 2. Strip the DataParallel prefix (possibly repeated when a wrapped model was wrapped again).
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        while key.startswith("module."):
            key = key[len("module."):]
        if key.endswith(_NORM_STATS):
            continue  # stale instance-norm statistics from PyTorch < 0.4; unused at inference
        out[key] = value
    # 3. Dropout layout: the second conv of each block sits at index 6 instead of 5.
    block_idx = {int(m.group(2)) for k in out if (m := _BLOCK_KEY.match(k))}
    had_dropout = 6 in block_idx
    if had_dropout:
        remapped = {}
        for key, value in out.items():
            m = _BLOCK_KEY.match(key)
            if m and m.group(2) == "6":
                key = f"model.{m.group(1)}.conv_block.5.{m.group(3)}"
            remapped[key] = value
        out = remapped
    if "model.1.weight" not in out:
        sample = ", ".join(sorted(out)[:4])
        raise ModelError(
            f"cyclegan checkpoint: no 'model.1.weight' (first conv); keys start {sample!r}; "
            "expected the CycleGAN ResnetGenerator layout (model.N..., optionally prefixed 'module.')"
        )
    n_blocks = len({int(m.group(1)) for k in out if (m := _BLOCK_KEY.match(k))})
    arch = {"ngf": int(out["model.1.weight"].shape[0]), "n_blocks": n_blocks, "had_dropout": had_dropout}
    return out, arch


def _read_checkpoint(path: Path) -> Mapping:
    """Plain state dicts (safetensors or torch) load as tensors only; other pickles go through the restricted unpickler."""
    from vqclip.models.safe_load import load_weights, safe_load_checkpoint

    try:
        return load_weights(path, "cyclegan checkpoint")
    except ModelError:  # a Lightning-style or otherwise wrapped file: the restricted unpickler reads it or refuses it
        return safe_load_checkpoint(path)


def load_generator(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
) -> ResnetGenerator:
    """Load a CycleGAN generator (netG_A) from a file or state dict, any of the published layouts; frozen."""
    if isinstance(checkpoint, Mapping):
        raw, where = checkpoint, "state dict"
    else:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ModelError(f"cyclegan checkpoint: file {str(path)!r} does not exist; give a netG_A .pth path")
        raw, where = _read_checkpoint(path), str(path)
    state, arch = normalize_state_dict(raw)
    model = ResnetGenerator(ngf=arch["ngf"], n_blocks=arch["n_blocks"], use_dropout=False)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"cyclegan checkpoint {where}: does not match a ResnetGenerator(ngf={arch['ngf']}, "
            f"n_blocks={arch['n_blocks']}): missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval().requires_grad_(False)
