"""GPU memory and time of one render step, estimated without computing anything.

The real VQGAN and CLIP architectures are built on PyTorch's ``meta`` device (shapes, no data), one
optimization step is traced there exactly as :func:`vqclip.production.render.render` runs it (decode the latent,
cut ``cutn`` crops, encode them with every perceptor, loss, backward), and:

- the tensors autograd saves for the backward pass are counted with
  ``torch.autograd.graph.saved_tensors_hooks``, once per storage (views share one), weights excluded;
- mixed precision is emulated by a ``TorchFunctionMode`` that casts like CUDA autocast does
  (convolutions and matmuls to fp16, norms/softmax/reductions to fp32, the rest by type promotion),
  because autocast itself does not act on meta tensors;
- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over forward and backward (ViT-B/32 on 32
  cutouts at 224: 0.567 TFLOP; the imagenet f16 decoder at 512x512: 2.04 TFLOP).

On top come the weights (fp32, as the loaders keep them), the optimizer's state of the latent, kornia's
augmentations (measured once on the CPU, as saved batches per augmentation), twice the largest saved
tensor for the gradients in flight during backward, and a fixed allowance for the CUDA context and
cuBLAS/cuDNN workspaces. ``tests/test_estimate.py`` checks the traced bytes against a real CPU step.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vqclip.errors import ConfigError

__all__ = [
    "GpuSpec", "T4", "GpuInfo", "StepEstimate", "FitReport", "Estimator", "estimate", "estimate_config", "detect_gpu",
    "check_fit", "format_estimate_table", "ESTIMATE_PRECISIONS",
]

GiB = 1024**3
MiB = 1024**2
ESTIMATE_PRECISIONS = ("fp32", "fp16", "bf16", "auto")
# The CUDA context, cuBLAS and cuDNN workspaces: outside PyTorch's allocator, so not traced here.
# About 0.3-0.5 GiB on a T4 with recent torch; the rest is headroom for allocator fragmentation.
CUDA_CONTEXT_BYTES = 700 * MiB
FRAGMENTATION = 1.10  # the caching allocator rounds blocks and cannot always reuse freed ones
# Saved tensors per augmentation, in cutout batches (measured on the CPU with vqclip.production.cutouts at
# cutn 32, 224 px; the trailing clamp saves one more batch). kornia cannot trace on meta tensors.
AUG_SAVED_BATCHES = {"affine": 1.7, "perspective": 1.7, "jitter": 12.0, "erasing": 0.1, "hflip": 0.0,
                     "noise": 0.0, "sharpness": 4.1, "grayscale": 0.0}


@dataclass(frozen=True)
class GpuSpec:
    """A GPU's memory and the throughput this estimate assumes for it."""

    name: str
    total_bytes: int
    fp16_tflops: float  # tensor-core peak
    fp32_tflops: float
    bandwidth_gbs: float = 320.0  # memory bandwidth, GB/s
    fp16_efficiency: float = 0.25  # share of the peak the convolutions and matmuls of a step reach
    fp32_efficiency: float = 0.45
    bandwidth_efficiency: float = 0.7

    def tflops(self, precision: str) -> float:
        """Effective TFLOP/s assumed for a step in ``precision``."""
        if precision == "fp32":
            return self.fp32_tflops * self.fp32_efficiency
        return self.fp16_tflops * self.fp16_efficiency


#: Colab's free GPU: 15 GB (mem_get_info reports 14.75 GiB), 65 TFLOP/s fp16 tensor cores, 8.1 fp32, 320 GB/s.
T4 = GpuSpec("Tesla T4", 15_835_660_288, 65.0, 8.1, 320.0)
STEP_OVERHEAD_S = 0.02  # Python, kornia's parameter sampling, the optimizer: per step, on any GPU


@dataclass(frozen=True)
class GpuInfo:
    """The GPU found on this machine."""

    name: str
    total_bytes: int
    free_bytes: int


@dataclass
class StepEstimate:
    """Bytes and FLOPs of one optimization step at one size; all byte counts are peak GPU memory parts."""

    width: int
    height: int
    model: str
    clip: list[str]
    cutn: int
    precision: str  # fp32 | fp16 | bf16 (auto resolved to fp16, a T4's choice)
    weights_bytes: int  # VQGAN + every CLIP model, fp32
    activation_bytes: int  # tensors saved for backward (traced), augmentations included
    transient_bytes: int  # gradients in flight during backward: twice the largest saved tensor
    optimizer_bytes: int  # the latent, its gradient and the optimizer's state
    context_bytes: int = CUDA_CONTEXT_BYTES
    tflop: float = 0.0  # forward + backward of one step
    parts_tflop: dict[str, float] = field(default_factory=dict)  # "vqgan", and one per perceptor

    @property
    def total_bytes(self) -> int:
        """What the GPU must hold: everything above, with a margin for fragmentation."""
        traced = self.weights_bytes + self.activation_bytes + self.transient_bytes + self.optimizer_bytes
        return int(traced * FRAGMENTATION) + self.context_bytes

    @property
    def total_gib(self) -> float:
        """:attr:`total_bytes` in GiB."""
        return self.total_bytes / GiB

    def seconds_per_iteration(self, gpu: GpuSpec = T4) -> float:
        """Estimated seconds per step on ``gpu``: FLOPs at the assumed throughput, plus memory traffic, plus overhead."""
        # The norms and activations between convolutions are memory-bound: each saved tensor is written
        # in the forward pass and read back, with its gradient written, in the backward pass.
        traffic = 3 * self.activation_bytes / (gpu.bandwidth_gbs * 1e9 * gpu.bandwidth_efficiency)
        return self.tflop / gpu.tflops(self.precision) + traffic + STEP_OVERHEAD_S

    def summary(self) -> str:
        """One line: size, memory and time per step on a T4."""
        return (f"{self.width}x{self.height} {self.model} + {', '.join(self.clip)}, cutn {self.cutn}, {self.precision}: "
                f"~{self.total_gib:.1f} GiB GPU memory, {self.tflop:.2f} TFLOP/step, "
                f"~{self.seconds_per_iteration():.2f} s/step on a T4 (estimate)")


@dataclass
class FitReport:
    """Whether a step fits a GPU, and if not, the largest size of the same aspect that does."""

    estimate: StepEstimate
    gpu_name: str
    gpu_bytes: int
    fits: bool
    largest: tuple[int, int] | None  # (width, height) that fits; None when even the smallest does not
    message: str


# ----------------------------------------------------------------------------------------------
# Mixed precision on meta tensors: cast as CUDA autocast would


_TO_HALF = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "linear", "matmul", "mm", "bmm",
            "baddbmm", "addmm", "addbmm", "einsum", "scaled_dot_product_attention", "_convolution", "prelu", "__matmul__",
            # a Python composite: inside it this mode is off, so cast its inputs; on CUDA it runs linear + sdpa in fp16
            "multi_head_attention_forward"}
_TO_FLOAT = {"group_norm", "layer_norm", "batch_norm", "softmax", "log_softmax", "norm", "normalize", "pow", "exp",
             "log", "sum", "prod", "cumsum", "cumprod", "cosine_similarity", "dist", "cdist", "renorm", "logsumexp",
             "rsqrt", "reciprocal", "softplus", "mse_loss", "l1_loss", "erfinv", "acos", "asin"}


class _AutocastOnMeta(torch.overrides.TorchFunctionMode):
    """Casts floating inputs of the ops CUDA autocast casts; other ops promote types as usual."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = self.dtype if name in _TO_HALF else torch.float32 if name in _TO_FLOAT else None
        if target is not None:
            cast = lambda t: t.to(target) if isinstance(t, torch.Tensor) and t.is_floating_point() else t  # noqa: E731
            args = tuple(cast(a) for a in args)
            kwargs = {k: cast(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


class _Saved:
    """Counts the bytes autograd saves for backward, once per storage, parameters excluded."""

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.storages: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        key = s._cdata  # the StorageImpl pointer: shared by views, unique per storage, also on meta
        if key not in self.exclude:
            self.storages[key] = s.nbytes()
        return t  # the graph keeps t alive, so no storage pointer is reused while we count

    @property
    def total(self) -> int:
        return sum(self.storages.values())

    @property
    def largest(self) -> int:
        return max(self.storages.values(), default=0)


# ----------------------------------------------------------------------------------------------
# Building the architectures on meta


@dataclass
class _Perceptor:
    label: str
    model: torch.nn.Module
    input_size: int


def _quiet():
    """Silence open_clip's 'no pretrained weights loaded' warning (we never want weights here)."""
    logger = logging.getLogger()
    level = logger.level

    @contextlib.contextmanager
    def cm():
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)

    return cm()


def _meta_vqgan(spec: str | dict):
    """The VQGAN architecture of a registry name or local {config, checkpoint} files, on meta."""
    from vqclip.models.registry import get_model_info, model_dir
    from vqclip.models.vqgan import build_vqgan

    if isinstance(spec, dict):
        arch: Any = Path(str(spec["config"])).expanduser()
    else:
        info = get_model_info(spec)
        if info.kind != "vqgan":
            raise ConfigError(f"models.vqgan: {spec!r} is a {info.kind}, not a VQGAN")
        arch = info.architecture if info.arch is not None else model_dir(info) / info.files[0].filename
        if isinstance(arch, Path) and not arch.is_file():
            raise ConfigError(f"models.vqgan: {spec!r} ships its architecture in {str(arch)!r}, which is missing; reinstall vqclip")
    with torch.device("meta"):
        return build_vqgan(arch).requires_grad_(False)


def _meta_clip(spec: str | dict) -> _Perceptor:
    """A CLIP architecture exactly as load_perceptor builds it (QuickGELU where the weights need it), on meta."""
    from open_clip import get_model_preprocess_cfg

    from vqclip.models.clip import build_architecture

    if isinstance(spec, dict):
        label = str(spec.get("name") or Path(str(spec.get("config", "local"))).stem)
    else:
        label = spec
    try:
        with _quiet():
            model = build_architecture(spec)
    except ConfigError as exc:  # the resolver's one line, under the setting's name
        raise ConfigError(f"models.clip: {str(exc).removeprefix('CLIP ')}") from None
    size = get_model_preprocess_cfg(model).get("size", 224)
    return _Perceptor(label, model.requires_grad_(False), int(size[0] if isinstance(size, (list, tuple)) else size))


def _param_storages(*modules) -> tuple[set[int], int]:
    keys, total = set(), 0
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            keys.add(t.untyped_storage()._cdata)
            total += t.numel() * t.element_size()
    return keys, total


def _resolve_precision(precision: str) -> str:
    p = (precision or "auto").lower()
    if p not in ESTIMATE_PRECISIONS:
        raise ConfigError(f"generation.precision: {precision!r} is not allowed; use one of {', '.join(ESTIMATE_PRECISIONS)}")
    return "fp16" if p == "auto" else p  # auto on a T4 is fp16 (bf16 needs Ampere)


# ----------------------------------------------------------------------------------------------
# The estimator


class Estimator:
    """Meta-device models for one VQGAN and CLIP choice; :meth:`step` estimates one size."""

    def __init__(self, model: str | dict | None = "imagenet_f16_16384", clip: Sequence[str | dict] = ("ViT-B-32/openai",),
                 augmentations: Sequence[str] = ("affine", "perspective", "jitter", "erasing"), views_only: bool = False):
        self.model_label = (model if isinstance(model, str) else Path(str(model["config"])).stem) if model else "pixels"
        self.vqgan = _meta_vqgan(model) if model else None  # None: the pixel engine (no generator)
        self.perceptors = [_meta_clip(s) for s in clip]
        if not self.perceptors:
            raise ConfigError("models.clip: [] is not allowed; give at least one perceptor")
        unknown = [a for a in augmentations if a not in AUG_SAVED_BATCHES]
        if unknown:
            raise ConfigError(f"generation.augmentations: {unknown[0]!r} is not allowed; use names from {', '.join(AUG_SAVED_BATCHES)}")
        self.augmentations = list(augmentations)
        self.views_only = views_only  # pixels in alternate mode: one perceptor per step
        mods = [p.model for p in self.perceptors] + ([self.vqgan] if self.vqgan is not None else [])
        self._param_keys, self.weights_bytes = _param_storages(*mods)

    @property
    def factor(self) -> int:
        """The VQGAN's downsampling (1 for pixels)."""
        return int(self.vqgan.factor) if self.vqgan is not None else 1

    def step(self, width: int, height: int, cutn: int = 32, precision: str = "fp16") -> StepEstimate:
        """Trace one step at ``width`` x ``height`` on meta and return its estimate."""
        from torch.utils.flop_counter import FlopCounterMode

        from vqclip.production.cutouts import Cutouts

        if width < 16 or height < 16:
            raise ConfigError(f"size: {width}x{height} is not allowed; width and height must be at least 16")
        if cutn < 1:
            raise ConfigError(f"generation.cutn: {cutn} is not allowed; use 1 or more")
        prec = _resolve_precision(precision)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec)
        saved = _Saved(self._param_keys)
        mode = _AutocastOnMeta(dtype) if dtype is not None else contextlib.nullcontext()
        flops: dict[str, float] = {}
        batch_bytes = 0
        f = self.factor
        gh, gw = math.ceil(height / f), math.ceil(width / f)
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            # 1. The frame: a latent snapped to the codebook and decoded (vqgan) or the pixels themselves.
            if self.vqgan is not None:
                param = torch.zeros(1, self.vqgan.embed_dim, gh, gw, device="meta", requires_grad=True)
                with FlopCounterMode(display=False) as fc, mode:
                    out = self.vqgan.decode(self.vqgan.quantize_st(param))
                    top, left = (gh * f - height) // 2, (gw * f - width) // 2
                    image = out[:, :, top : top + height, left : left + width]
                    image.float().sum().backward(retain_graph=True)  # decoder backward FLOPs; graph kept for the rest
                flops["vqgan"] = fc.get_total_flops() / 1e12
            else:
                param = torch.zeros(1, 3, height, width, device="meta", requires_grad=True)
                image = param
            # 2. Cutouts through every perceptor, as one batch each; the spherical distance loss.
            losses = []
            for p in self.perceptors:
                with FlopCounterMode(display=False) as fc, mode:
                    batch = Cutouts(p.input_size, cutn)(image)
                    emb = F.normalize(p.model.encode_image((batch - 0.5) / 0.25), dim=-1)
                    target = F.normalize(torch.zeros(1, emb.shape[-1], device="meta"), dim=-1)
                    loss = (emb - target).norm(dim=-1).div(2).arcsin().pow(2).mul(2).mean()
                    torch.autograd.grad(loss, batch, retain_graph=True)  # CLIP backward to its input
                flops[p.label] = fc.get_total_flops() / 1e12
                batch_bytes = max(batch_bytes, batch.numel() * batch.element_size())
                losses.append(loss)
        aug_bytes = int(batch_bytes * (1.0 + sum(AUG_SAVED_BATCHES[a] for a in self.augmentations))) if self.augmentations else 0
        if self.views_only and len(self.perceptors) > 1:  # alternate: one perceptor per step
            clip_flops = [v for k, v in flops.items() if k != "vqgan"]
            step_tflop = flops.get("vqgan", 0.0) + max(clip_flops)
        else:
            step_tflop = sum(flops.values())
        n_param = param.numel() * 4
        return StepEstimate(
            width=width, height=height, model=self.model_label, clip=[p.label for p in self.perceptors], cutn=cutn,
            precision=prec, weights_bytes=self.weights_bytes, activation_bytes=saved.total + aug_bytes,
            transient_bytes=2 * saved.largest, optimizer_bytes=4 * n_param,  # latent, grad, Adam's two moments
            tflop=step_tflop, parts_tflop=flops,
        )

    def largest_fitting(self, width: int, height: int, budget_bytes: int, cutn: int = 32, precision: str = "fp16",
                        multiple: int | None = None) -> tuple[int, int] | None:
        """The largest size with the aspect of ``width:height`` (sides multiples of the VQGAN factor) within ``budget_bytes``."""
        m = multiple or max(self.factor, 2)
        aspect = width / height

        def size_of(w: int) -> tuple[int, int]:
            w = max(m, w // m * m)
            return max(16, w), max(16, int(round(w / aspect)) // m * m)

        def total(w: int) -> int:
            return self.step(*size_of(w), cutn, precision).total_bytes

        # Memory is close to affine in the pixel count (the decoder) plus a constant (weights, CLIP on
        # cutouts), so two traces give a good first guess; a few more walk it to the exact boundary.
        w0 = size_of(max(m, int(128 * aspect) if aspect >= 1 else 128))[0]
        w1 = size_of(width)[0]
        if w1 == w0:
            w1 = w0 * 2
        b0, b1 = total(w0), total(w1)
        if b0 > budget_bytes and total(size_of(16)[0]) > budget_bytes:
            return None
        p0, p1 = w0 * w0, w1 * w1
        slope = (b1 - b0) / (p1 - p0)
        guess = p0 + (budget_bytes - b0) / slope if slope > 0 else p1
        w = size_of(int(math.sqrt(max(guess, 16 * 16))))[0]
        for _ in range(64):  # walk down until it fits
            if total(w) <= budget_bytes or w <= m:
                break
            w = size_of(w - m)[0]
        for _ in range(8):  # and up while the next size still fits
            nxt = size_of(w + m)[0]
            if total(nxt) > budget_bytes:
                break
            w = nxt
        return size_of(w) if total(w) <= budget_bytes else None


def estimate(width: int = 640, height: int = 384, model: str | dict | None = "imagenet_f16_16384",
             clip: Sequence[str | dict] = ("ViT-B-32/openai",), cutn: int = 32, precision: str = "fp16",
             augmentations: Sequence[str] = ("affine", "perspective", "jitter", "erasing")) -> StepEstimate:
    """Estimate one step of a VQGAN-CLIP render (model ``None`` = the pixel engine)."""
    return Estimator(model, clip, augmentations).step(width, height, cutn, precision)


def estimate_config(cfg, precision: str | None = None):
    """Estimate a :class:`~vqclip.settings.render.RenderConfig` by its engine: one step (optimized) or the whole render (sampled)."""
    if _is_sampled(cfg):
        return _sampled_estimate(cfg, cfg.size.width, cfg.size.height, precision)
    est, cutn = _estimator_for(cfg)
    return est.step(cfg.size.width, cfg.size.height, cutn, precision or cfg.generation.precision)


def _is_sampled(cfg) -> bool:
    from vqclip.production.engines import get_engine

    return get_engine(cfg.generation.engine).family == "sampled"


def _sampled_estimate(cfg, width: int, height: int, precision: str | None = None):
    """The diffusion engines' whole-render estimate (:mod:`vqclip.preproduction.diffusion_estimate`) at a size."""
    from vqclip.preproduction.diffusion_estimate import estimate_sampled

    g = cfg.generation
    p = (precision or g.precision or "auto").lower()
    p = "fp16" if p == "auto" else p
    folder = cfg.models.diffusion.get("path") if isinstance(cfg.models.diffusion, dict) else None
    adapter = cfg.models.motion_adapter.get("path") if isinstance(cfg.models.motion_adapter, dict) else None
    e = estimate_sampled(g.engine, width, height, cfg.animation.frames, g.sections[g.engine], p, folder, adapter)
    return e


def _sampled_fit(cfg, precision: str | None, gpu) -> FitReport:
    """check_fit for a diffusion engine: the render's peak against the GPU, else the largest size of the aspect (multiples of 8)."""
    budget = gpu.total_bytes
    w, h = cfg.size.width, cfg.size.height
    est = _sampled_estimate(cfg, w, h, precision)
    fits = est.total_bytes <= budget
    largest = None
    if not fits:
        for scale in [i / 16 for i in range(15, 1, -1)]:
            cw, ch = max(8, int(w * scale) // 8 * 8), max(8, int(h * scale) // 8 * 8)
            if _sampled_estimate(cfg, cw, ch, precision).total_bytes <= budget:
                largest = (cw, ch)
                break
    minutes = est.seconds(gpu if isinstance(gpu, GpuSpec) else None) / 60
    msg = _fit_message(est.total_bytes, gpu.name, budget, largest if not fits else None, fits, (w, h),
                       fitting=f", ~{minutes:.1f} min (estimate)", smaller="fewer frames per chunk, or model CPU offload",
                       nothing="even a small size does not fit")
    return FitReport(est, gpu.name, budget, fits, largest, msg)


def _fit_message(need_bytes: int, gpu_name: str, budget: int, largest, fits: bool, size: tuple[int, int],
                 fitting: str, smaller: str, nothing: str) -> str:
    """The one-line verdict of check_fit, for either family: fits, the largest size that does, or nothing does."""
    need, have = need_bytes / GiB, budget / GiB
    if fits:
        return f"fits: ~{need:.1f} GiB of {have:.1f} GiB on {gpu_name}{fitting}"
    if largest:
        return (f"too big: ~{need:.1f} GiB needed, {gpu_name} has {have:.1f} GiB; the largest {size[0]}:{size[1]} size that fits "
                f"is {largest[0]}x{largest[1]} (or {smaller})")
    return f"too big: ~{need:.1f} GiB needed, {gpu_name} has {have:.1f} GiB, and {nothing}"


def _estimator_for(cfg) -> tuple[Estimator, int]:
    """The estimator of the configured engine: its generator (vqgan decoder or none) and its objective's batch."""
    from vqclip.production.engines import get_engine

    g = cfg.generation
    if get_engine(g.engine).family != "optimized":
        raise ConfigError(f"generation.engine: {g.engine!r} has no memory estimate yet; estimates cover vqgan and pixels")
    specs = [p.spec for p in cfg.models.clip]
    model = cfg.models.vqgan if g.engine == "vqgan" else None  # the pixel generator has no decoder
    o = g.objective_options
    if g.objective == "views":
        return Estimator(model, specs, ["perspective"], views_only=o.perceptor_mode == "alternate"), int(o.count)
    return Estimator(model, specs, o.augmentations), o.cutn


# ----------------------------------------------------------------------------------------------
# The GPU here, and whether a render fits it


def detect_gpu() -> GpuInfo | None:
    """The first CUDA device's name, total and free memory (``torch.cuda.mem_get_info``); None without one."""
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(0)
    return GpuInfo(torch.cuda.get_device_name(0), int(total), int(free))


def check_fit(target, width: int | None = None, height: int | None = None, cutn: int = 32,
              precision: str | None = None, gpu: GpuInfo | GpuSpec | None = None) -> FitReport:
    """Estimate a render (a RenderConfig, or an Estimator with a size) against ``gpu`` (default: this machine's, else a T4)."""
    if isinstance(target, Estimator):
        est = target
        if width is None or height is None:
            raise ConfigError("check_fit: an Estimator needs width and height")
    elif _is_sampled(target):
        return _sampled_fit(target, precision, gpu or detect_gpu() or T4)
    else:
        est, cutn = _estimator_for(target)
        width, height = target.size.width, target.size.height
        precision = precision or target.generation.precision
    precision = precision or "fp16"
    gpu = gpu or detect_gpu() or T4
    step = est.step(width, height, cutn, precision)
    budget = gpu.total_bytes
    fits = step.total_bytes <= budget
    largest = None if fits else est.largest_fitting(width, height, budget, cutn, precision)
    msg = _fit_message(step.total_bytes, gpu.name, budget, largest, fits, (width, height), fitting="",
                       smaller="lower cutn, or use fp16", nothing="even the smallest size does not fit; choose a smaller model")
    return FitReport(step, gpu.name, budget, fits, largest, msg)


def format_estimate_table(sizes: Sequence[tuple[int, int]] = ((256, 256), (512, 288), (400, 400), (640, 360), (360, 640), (512, 512), (640, 384), (768, 432), (1024, 576)),
                          model: str = "imagenet_f16_16384", clip: Sequence[str] = ("ViT-B-32/openai",), cutn: int = 32) -> str:
    """A Markdown table of memory and time per step on a T4, fp16 and fp32, for the common sizes."""
    est = Estimator(model, clip)
    lines = ["| size | fp16 GiB | fp16 s/step | fp32 GiB | fp32 s/step | TFLOP/step |", "|---|---|---|---|---|---|"]
    for w, h in sizes:
        a, b = est.step(w, h, cutn, "fp16"), est.step(w, h, cutn, "fp32")
        lines.append(f"| {w}x{h} | {a.total_gib:.1f} | {a.seconds_per_iteration():.2f} | {b.total_gib:.1f} | "
                     f"{b.seconds_per_iteration():.2f} | {a.tflop:.2f} |")
    return "\n".join(lines)
