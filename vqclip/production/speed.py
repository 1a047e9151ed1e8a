"""Speed and memory levers of an optimized render that keep the algorithm: ``torch.compile``, activation checkpointing.

``generation.compile: on`` compiles the VQGAN decoder and each CLIP perceptor's image tower with
inductor (the cutouts and kornia augmentations draw new random shapes every step and stay eager). Only
the steps' gradient-taking calls run compiled: previews, warps and exports under ``no_grad`` stay eager,
so compiling does not pay for a second, inference-only graph. The first step pays the compile (about
1-2 min for the toy pack on one CPU core, seconds on a second render: inductor keeps its FX graph cache
on disk); from then on it fuses GroupNorm + swish and the elementwise work between convolutions, which
is where eager time goes besides the convolutions themselves, and with ``precision: bf16`` the casts
too. Two decoder details come from profiling the compiled step on a CPU: the nearest-2x upsampling
becomes a broadcast (:func:`upsample_as_broadcast`) and the decoder keeps NCHW. It is ``off`` by
default: on the toy default render it does not pay within one render while the cache is cold (README,
"Mixed precision and speed").
"""

from __future__ import annotations

import importlib.util
import shutil

import torch
from torch import nn

from vqclip.errors import ConfigError

__all__ = ["check_compile", "checkpoint_blocks", "compile_for_steps", "compile_grad_forward", "upsample_as_broadcast"]


def check_compile(mode: str, device: torch.device) -> None:
    """ConfigError when ``mode`` is on and this machine cannot compile for ``device`` (no C++ compiler, no triton)."""
    if mode != "on":
        return
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise ConfigError("generation.compile: 'on' needs a C++ compiler on the CPU (install g++); use off")
    if device.type == "cuda" and importlib.util.find_spec("triton") is None:
        raise ConfigError("generation.compile: 'on' needs triton on CUDA (pip install triton); use off")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"generation.compile: 'on' is not allowed on {device.type}; use off")


def compile_grad_forward(module: nn.Module, options: dict | None = None) -> nn.Module:
    """Make ``module``'s calls run compiled (inductor ``options``) while autograd records, eager under ``no_grad``; returns it."""
    eager = module.forward
    compiled = torch.compile(eager, dynamic=False, options=options)

    def forward(*args, **kwargs):
        return compiled(*args, **kwargs) if torch.is_grad_enabled() else eager(*args, **kwargs)

    # An instance attribute: the module keeps its identity, parameters and state_dict keys.
    module.forward = forward
    return module


def _nearest_2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2x upsampling as a broadcast: the same values as ``interpolate(mode="nearest")``."""
    b, c, h, w = x.shape
    return x[:, :, :, None, :, None].expand(b, c, h, 2, w, 2).reshape(b, c, 2 * h, 2 * w)


def upsample_as_broadcast(decoder: nn.Module) -> int:
    """Give the decoder's taming ``Upsample`` blocks a broadcast nearest-2x; returns how many.

    The forward values are identical. Compiled, the backward of ``interpolate`` becomes a scatter-add
    (inductor's ``index_put``), ~7 % of a toy step; the broadcast's backward is a plain 2x2 sum. The sum
    order may differ, so this is only done with compile on (compiled gradients differ in the last bits anyway).
    """
    from taming.modules.diffusionmodules.model import Upsample

    count = 0
    for block in decoder.modules():
        if isinstance(block, Upsample):
            def forward(x, _block=block):
                x = _nearest_2x(x)
                return _block.conv(x) if _block.with_conv else x

            block.forward = forward
            count += 1
    return count


def compile_for_steps(generator, perceptors) -> list[str]:
    """Compile the generator's decoder (when it has one) and every perceptor's image tower; the names compiled."""
    done = []
    decoder = getattr(getattr(generator, "model", None), "decoder", None)
    if isinstance(decoder, nn.Module):
        upsample_as_broadcast(decoder)
        on_cpu = next(decoder.parameters()).device.type == "cpu"
        # On the CPU inductor's channels-last layout makes each GroupNorm reduce a few channels at a stride
        # (2 of 64 on the toy: masked 2-lane loads); NCHW keeps the groups contiguous. Measured: toy
        # bf16 + compile 1.53x -> 1.62x. On CUDA channels-last feeds the tensor cores: inductor decides.
        compile_grad_forward(decoder, {"layout_optimization": False} if on_cpu else None)
        done.append("vqgan decoder")
    for p in perceptors:
        visual = getattr(p.model, "visual", None)
        if isinstance(visual, nn.Module):
            compile_grad_forward(visual)
            done.append(f"clip {p.name} image tower")
    return done


def checkpoint_blocks(decoder: nn.Module, recompute_in=None) -> int:
    """Recompute each of the decoder's residual and attention blocks in backward instead of keeping its activations.

    A block then keeps only its input for backward, not its norms, swishes and convolution outputs, so
    the decoder's saved activations shrink several times (the full-resolution blocks dominate large
    frames) for about one more decoder forward per step. The gradient is the same, bit for bit on the CPU.
    ``recompute_in`` (e.g. ``Precision.autocast``) makes the context the recompute runs in, in backward:
    torch restores a real autocast's state there itself, but not an emulated one (the estimator's on meta).
    Returns how many blocks were wrapped.
    """
    import contextlib

    from taming.modules.diffusionmodules.model import AttnBlock, ResnetBlock
    from torch.utils.checkpoint import checkpoint, noop_context_fn

    context_fn = noop_context_fn if recompute_in is None else lambda: (contextlib.nullcontext(), recompute_in())

    count = 0
    for block in decoder.modules():
        if not isinstance(block, (ResnetBlock, AttnBlock)):
            continue
        eager = block.forward

        def forward(*args, _eager=eager):
            if torch.is_grad_enabled():
                return checkpoint(_eager, *args, use_reentrant=False, context_fn=context_fn)
            return _eager(*args)

        block.forward = forward
        count += 1
    return count
