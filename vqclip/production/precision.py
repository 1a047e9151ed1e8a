"""Device and numeric precision: fp16/bf16 autocast on CUDA, plain fp32 everywhere else.

On a T4 mixed precision is the biggest single speed lever (tensor cores: ~65 TFLOP/s fp16 against
~8 fp32) and it halves activation memory. fp16 needs a gradient scaler so small gradients do not
flush to zero; bf16 has fp32's range and needs none, but only Ampere and newer run it fast. On the
CPU, bf16 autocast is offered where the CPU has bf16 instructions (AVX512-BF16 or AMX); ``auto``
stays fp32 there because the side-by-side benchmark (benchmarks/side_by_side.py) decides it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from vqclip.errors import ConfigError

__all__ = ["Precision", "cpu_has_bf16", "resolve_device", "resolve_precision"]


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX); without it bf16 is emulated and slow."""
    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    if "AMX" in capability or "BF16" in capability:
        return True
    try:  # torch reports only "AVX512" on Cooper Lake / Zen 4, which do have avx512_bf16
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N`` as a torch device."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"generation.device: {spec!r} is not available here (no CUDA device); use auto or cpu")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"generation.device: {spec!r} is not available; this machine has cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return torch.device(spec)


@dataclass
class Precision:
    """How a step runs: the autocast dtype (None = fp32) and whether a gradient scaler is used."""

    name: str  # fp32 | fp16 | bf16
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype; None runs in fp32 without autocast
    scaler: "torch.amp.GradScaler | None"

    def autocast(self):
        """The context a forward pass runs in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @property
    def channels_last(self) -> bool:
        """NHWC convolutions pay off with half-precision tensor cores, not on the CPU."""
        return self.device.type == "cuda" and self.dtype is not None

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimizer step, through the scaler when there is one."""
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()


def resolve_precision(name: str, device: torch.device) -> Precision:
    """Pick fp32/fp16/bf16 for ``device``: ``auto`` is bf16 where fast, else fp16 on CUDA; fp32 on CPU (bf16 on request)."""
    name = (name or "auto").lower()
    if device.type != "cuda":
        if name == "bf16" and device.type == "cpu":
            if not cpu_has_bf16():
                raise ConfigError("generation.precision: 'bf16' is not allowed on this cpu (no AVX512-BF16 or AMX); use auto or fp32")
            return Precision("bf16", device, torch.bfloat16, None)
        if name in ("fp16", "bf16"):
            raise ConfigError(f"generation.precision: {name!r} is not allowed on {device.type}; use auto or fp32 (half precision is for CUDA)")
        return Precision("fp32", device, None, None)
    if name == "auto":
        name = "bf16" if torch.cuda.is_bf16_supported() and torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
    if name == "fp32":
        return Precision("fp32", device, None, None)
    if name == "bf16":
        if not torch.cuda.is_bf16_supported():
            raise ConfigError("generation.precision: 'bf16' is not supported by this GPU; use auto, fp16 or fp32")
        return Precision("bf16", device, torch.bfloat16, None)
    return Precision("fp16", device, torch.float16, torch.amp.GradScaler("cuda"))
