"""Speed and memory levers of an optimized render that keep the algorithm: ``torch.compile``, activation
checkpointing, and exact rewrites of a few operations that run slowly as written.

``generation.compile: on`` compiles the VQGAN decoder and each CLIP perceptor's image tower with
inductor (the cutouts and kornia augmentations draw new random shapes every step and stay eager). Only
the steps' gradient-taking calls run compiled: previews, warps and exports under ``no_grad`` stay eager,
so compiling does not pay for a second, inference-only graph. The first step pays the compile (about
1-2 min for the toy pack on one CPU core, seconds on a second render: inductor keeps its FX graph cache
on disk); from then on it fuses GroupNorm + swish and the elementwise work between convolutions, which
is where eager time goes besides the convolutions themselves, and with ``precision: bf16`` the casts
too. On the CPU the decoder keeps NCHW (from profiling the compiled step). It is ``off`` by
default: on the toy default render it does not pay within one render while the cache is cold (README,
"Mixed precision and speed").

The rewrites compute the same function in another order, so they change the last bits: they are made
only where a step is not the bit-pinned fp32 eager one (:func:`off_pinned_path`: ``precision`` fp16/bf16,
or ``compile: on``). Each came from a profile of the benchmark's step (``benchmarks/side_by_side.py``):

- the decoder's nearest-2x upsample + 3x3 convolution as one stride-2 transposed convolution
  (:func:`fuse_upsample_convs`, done by the VQGAN generator): 16/36 of the work, a 4x smaller saved input;
- a CLIP image tower's batch-first attention fed a contiguous sequence-first input
  (:func:`seq_first_attention`): with gradients and autocast or inductor, the projection of the strided
  view copied its weight once per token;
- a ViT's patch embedding as one matrix product (:func:`fuse_patch_embedding`): oneDNN's input gradient
  of a stride-32 convolution is slow;
- on the CPU, attention over few tokens with SDPA's math backend (:func:`math_attention`).
"""

from __future__ import annotations

import importlib.util
import shutil

import torch
import torch.nn.functional as F
from torch import nn

from vqclip.errors import ConfigError

__all__ = ["check_compile", "checkpoint_blocks", "compile_for_steps", "compile_grad_forward", "fuse_patch_embedding",
           "fuse_upsample_convs", "math_attention", "off_pinned_path", "patches_as_matmul", "seq_first_attention",
           "speed_up_perceptors", "upsample_conv_transposed"]


def off_pinned_path(precision, compile_mode: str) -> bool:
    """Whether a step may change the last bits: half precision or ``compile: on`` (fp32 eager frames are pinned)."""
    return precision is not None and (precision.dtype is not None or compile_mode == "on")


#: On the CPU, attention over at most this many tokens runs as plain matrix products (SDPA's math backend):
#: measured fwd + bwd in bf16 over 32 x 12 heads, math against the CPU flash kernel: 50 tokens (ViT-B/32)
#: 35 vs 62 ms (28 vs 66 compiled), 101 tokens 98 vs 140, 145 tokens 156 vs 209, 197 tokens 366 vs 277.
MATH_ATTENTION_MAX_TOKENS = 160


def _image_towers(perceptors) -> list[tuple]:
    """(perceptor, its open_clip image tower ``model.visual``) pairs; a perceptor without a tower is left out."""
    pairs = [(p, getattr(p.model, "visual", None)) for p in perceptors]
    return [(p, tower) for p, tower in pairs if isinstance(tower, nn.Module)]


def _tokens(visual: nn.Module) -> int | None:
    """How many tokens an open_clip image tower attends over (ViT: patches + class; ModifiedResNet: its attention pool)."""
    for owner in (visual, getattr(visual, "attnpool", None)):
        pos = getattr(owner, "positional_embedding", None)
        if isinstance(pos, torch.Tensor) and pos.dim() == 2:
            return int(pos.shape[0])
    return None


def math_attention(visual: nn.Module) -> nn.Module:
    """Make ``visual``'s calls use SDPA's math backend (compiled too: the context is traced); returns it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    inner = visual.forward

    def forward(*args, **kwargs):
        with sdpa_kernel(SDPBackend.MATH):
            return inner(*args, **kwargs)

    visual.forward = forward
    return visual


def speed_up_perceptors(perceptors, precision, compile_mode: str) -> None:
    """Off the pinned path, each perceptor's image tower gets its attention a contiguous input
    (:func:`seq_first_attention`), runs its patch embedding as a matrix product and, on the CPU, short
    attention (:data:`MATH_ATTENTION_MAX_TOKENS`) as plain matrix products."""
    if not off_pinned_path(precision, compile_mode):
        return
    for _, visual in _image_towers(perceptors):
        seq_first_attention(visual)
        fuse_patch_embedding(visual)
        tokens = _tokens(visual)
        if precision.device.type == "cpu" and tokens is not None and tokens <= MATH_ATTENTION_MAX_TOKENS:
            math_attention(visual)


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


def _upsampled_taps(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """A 3-tap kernel along ``dim`` seen through nearest-2x upsampling, as the 4 taps of a stride-2 transposed conv.

    After nearest-2x, an even output row ``2i`` sees source rows ``i-1, i, i`` (taps ``w0``, ``w1 + w2``) and an
    odd one ``2i+1`` sees ``i, i, i+1`` (``w0 + w1``, ``w2``). A stride-2 transposed convolution with padding 1
    gives output ``2i`` taps ``K[1]`` on row ``i`` and ``K[3]`` on ``i-1``, output ``2i+1`` taps ``K[2]`` on ``i``
    and ``K[0]`` on ``i+1``: so ``K = (w2, w1 + w2, w0 + w1, w0)``.
    """
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([w2, w1 + w2, w0 + w1, w0], dim)


def upsample_conv_transposed(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, stride-1, padding-1 ``conv``, in one op.

    The same function (equal up to rounding): a stride-2 transposed convolution with 4x4 kernels made from
    ``conv``'s weights (:func:`_upsampled_taps`). It never builds the 4x larger upsampled tensor, does 16 / 36
    of the multiply-adds (a 3x3 window of a nearest-upsampled image holds only 2x2 distinct source pixels)
    and keeps the small input for backward instead of the upsampled one.
    """
    kernel = _upsampled_taps(_upsampled_taps(conv.weight, 2), 3).transpose(0, 1)  # (in, out, 4, 4)
    return F.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


def fuse_upsample_convs(decoder: nn.Module) -> int:
    """Run the decoder's taming ``Upsample`` blocks as :func:`upsample_conv_transposed`; returns how many.

    A block without a convolution (``resamp_with_conv: false``) gets the broadcast nearest-2x, whose
    backward inductor compiles to a plain 2x2 sum instead of ``interpolate``'s scatter-add. Values agree
    with taming's to rounding, not bit for bit: the generator does this only where a step is not bit-pinned
    already (half precision or ``compile: on``). Measured: the toy decoder's 128-px upsample convolution
    forward + backward 14.9 -> 7.9 ms in bf16, 25.8 -> 14.2 ms in fp32 (one core).
    """
    from taming.modules.diffusionmodules.model import Upsample

    count = 0
    for block in decoder.modules():
        if isinstance(block, Upsample):
            conv = block.conv if block.with_conv else None
            if conv is not None and (conv.kernel_size, conv.stride, conv.padding) != ((3, 3), (1, 1), (1, 1)):
                continue
            block.forward = _nearest_2x if conv is None else (lambda x, _conv=conv: upsample_conv_transposed(x, _conv))
            count += 1
    return count


def patches_as_matmul(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a non-overlapping ``conv`` (stride = kernel, no padding) as one matrix product over the patches."""
    b, c, height, width = x.shape
    ph, pw = conv.kernel_size
    h, w = height // ph, width // pw
    cols = x[:, :, : h * ph, : w * pw].reshape(b, c, h, ph, w, pw).permute(0, 2, 4, 1, 3, 5).reshape(b * h * w, c * ph * pw)
    out = F.linear(cols, conv.weight.reshape(conv.out_channels, -1), conv.bias)
    return out.reshape(b, h, w, conv.out_channels).permute(0, 3, 1, 2)


def fuse_patch_embedding(module: nn.Module) -> int:
    """Run every non-overlapping convolution in ``module`` (a ViT's patch embedding) as :func:`patches_as_matmul`; how many.

    The same products in another order. oneDNN's input gradient of a stride-32 convolution is slow on the CPU:
    ViT-B/32's patch embedding of 32 cutouts took 0.65 s forward + backward in bf16, the matrix product 0.09 s.
    """
    count = 0
    for conv in module.modules():
        if (isinstance(conv, nn.Conv2d) and conv.kernel_size == conv.stride and conv.kernel_size != (1, 1)
                and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1):
            conv.forward = lambda x, _conv=conv: patches_as_matmul(x, _conv)
            count += 1
    return count


def seq_first_attention(module: nn.Module) -> int:
    """Feed each batch-first ``nn.MultiheadAttention`` in ``module`` a contiguous sequence-first input; returns how many.

    A batch-first attention transposes its input to (L, N, E) and projects that strided view. With gradients
    the projection's matmul does not fold the view into one matrix product: it broadcasts the weight over the
    sequence and copies it, under autocast eagerly and in inductor's graphs alike. ViT-B/32 copied a
    (50, 768, 2304) weight in every layer: ~3 s of a 10 s bf16 + compile step at 256², and a bf16 eager step
    of the pixel engine at 720p took 4.0 s against fp32's 1.3 s. Given a contiguous (L, N, E) tensor the
    projection is one matrix product. The module keeps its weights and state_dict keys; it becomes
    sequence-first inside this wrapper.
    """
    count = 0
    for attention in module.modules():
        if not (isinstance(attention, nn.MultiheadAttention) and attention.batch_first):
            continue
        attention.batch_first = False
        seq_first = attention.forward

        def forward(query, key, value, *args, _seq_first=seq_first, **kwargs):
            q = query.transpose(0, 1).contiguous()
            k = q if key is query else key.transpose(0, 1).contiguous()
            v = q if value is query else (k if value is key else value.transpose(0, 1).contiguous())
            out, weights = _seq_first(q, k, v, *args, **kwargs)
            return out.transpose(0, 1), weights

        attention.forward = forward
        count += 1
    return count


def compile_for_steps(generator, perceptors) -> list[str]:
    """Compile the generator's decoder (when it has one) and every perceptor's image tower; the names compiled."""
    done = []
    decoder = getattr(getattr(generator, "model", None), "decoder", None)
    if isinstance(decoder, nn.Module):
        on_cpu = next(decoder.parameters()).device.type == "cpu"
        # On the CPU inductor's channels-last layout makes each GroupNorm reduce a few channels at a stride
        # (2 of 64 on the toy: masked 2-lane loads); NCHW keeps the groups contiguous. Measured: toy
        # bf16 + compile 1.53x -> 1.62x. On CUDA channels-last feeds the tensor cores: inductor decides.
        compile_grad_forward(decoder, {"layout_optimization": False} if on_cpu else None)
        done.append("vqgan decoder")
    for p, visual in _image_towers(perceptors):
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
