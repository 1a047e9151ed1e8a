"""GPU memory and time of one render step, estimated without computing anything.

The estimator builds the render's own generator and objective (the architectures of the configured
VQGAN and CLIP models on PyTorch's ``meta`` device: shapes, no weights, no download) and runs
:func:`vqclip.production.step.step` on them, the very step the render loop runs. While it runs:

- the tensors autograd saves for the backward pass are counted with
  ``torch.autograd.graph.saved_tensors_hooks``, once per storage (views share one), weights excluded;
- mixed precision is emulated by a ``TorchFunctionMode`` that casts like CUDA autocast does
  (convolutions and matmuls to fp16, norms/softmax/reductions to fp32, the rest by type promotion),
  because autocast itself does not act on meta tensors; the same mode answers ``float(loss)`` with NaN;
- FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over forward and backward (ViT-B/32 on 32
  cutouts at 224: 0.567 TFLOP; the imagenet f16 decoder at 512x512: 2.04 TFLOP);
- kornia's augmentations, which cannot run on meta tensors, are replaced by stand-ins of the same output
  shape that save what kornia saves (measured once on the CPU, :data:`AUG_SAVED_BATCHES`).

On top come the weights (fp32, as the loaders keep them), the optimizer's state as the step left it,
twice the largest saved tensor for the gradients in flight during backward, and a fixed allowance for
the CUDA context and cuBLAS/cuDNN workspaces. ``tests/test_estimate.py`` checks the traced bytes against
the same step run on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from vqclip.errors import ConfigError
from vqclip.production.precision import Precision

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
# What each kornia augmentation saves for backward, in batches of its input (measured on the CPU at
# cutn 32, 224 px, inside the default crops pipeline; RandomResizedCrop inside the views pipeline).
# kornia draws its parameters from tensor values, so it cannot run on meta tensors.
AUG_SAVED_BATCHES = {"RandomAffine": 1.7, "RandomPerspective": 1.7, "ColorJitter": 12.0, "RandomErasing": 0.1,
                     "RandomHorizontalFlip": 0.0, "RandomGaussianNoise": 0.0, "RandomSharpness": 4.1,
                     "RandomGrayscale": 0.0, "RandomResizedCrop": 1.0}


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
    cutn: int  # the objective's batch: cutouts per perceptor (cutouts) or views (views)
    precision: str  # fp32 | fp16 | bf16 (auto resolved to fp16, a T4's choice)
    weights_bytes: int  # the generator's model + every CLIP model, fp32
    activation_bytes: int  # tensors saved for backward (traced), augmentations included
    transient_bytes: int  # gradients in flight during backward: twice the largest saved tensor
    optimizer_bytes: int  # the optimized tensors, their gradients and the optimizer's state
    context_bytes: int = CUDA_CONTEXT_BYTES
    tflop: float = 0.0  # forward + backward of one step

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
# Running the step on meta tensors: autocast emulated, values answered, kornia stood in for


_TO_HALF = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "linear", "matmul", "mm", "bmm",
            "baddbmm", "addmm", "addbmm", "einsum", "scaled_dot_product_attention", "_convolution", "prelu", "__matmul__",
            # a Python composite: inside it this mode is off, so cast its inputs; on CUDA it runs linear + sdpa in fp16
            "multi_head_attention_forward"}
_TO_FLOAT = {"group_norm", "layer_norm", "batch_norm", "softmax", "log_softmax", "norm", "normalize", "pow", "exp",
             "log", "sum", "prod", "cumsum", "cumprod", "cosine_similarity", "dist", "cdist", "renorm", "logsumexp",
             "rsqrt", "reciprocal", "softplus", "mse_loss", "l1_loss", "erfinv", "acos", "asin"}
_VALUES = {"__float__", "item"}  # a meta tensor has no value: the step's float(loss) for the iteration event


class _OnMeta(torch.overrides.TorchFunctionMode):
    """Casts floating inputs of the ops CUDA autocast casts (``dtype`` None: none); ``float()`` of a meta tensor is NaN."""

    def __init__(self, dtype: torch.dtype | None):
        super().__init__()
        self.dtype = dtype

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _VALUES and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return float("nan")
        target = None if self.dtype is None else self.dtype if name in _TO_HALF else torch.float32 if name in _TO_FLOAT else None
        if target is not None:
            cast = lambda t: t.to(target) if isinstance(t, torch.Tensor) and t.is_floating_point() else t  # noqa: E731
            args = tuple(cast(a) for a in args)
            kwargs = {k: cast(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


class _MetaPrecision(Precision):
    """The render's Precision on meta: autocast emulated by :class:`_OnMeta`, no gradient scaler."""

    def autocast(self):
        """The emulated autocast of a forward pass."""
        return _OnMeta(self.dtype)


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


class _Charge(torch.autograd.Function):
    """Identity that saves ``batches`` times its input's bytes for backward, as the kornia module it stands for."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, batches: float) -> torch.Tensor:
        # kornia saves many tensors, none larger than its input: the largest one sets the gradients in flight
        sizes = [min(1.0, batches - i) for i in range(math.ceil(batches))]
        ctx.save_for_backward(*[x.new_empty(int(b * x.numel())) for b in sizes])
        return x.clone()  # kornia returns a new tensor: what follows saves it, not the input

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class _AugmentationStandIn(torch.nn.Module):
    """A kornia augmentation (or a sequence of them) on meta: its output shape and its saved bytes, no kornia."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        import kornia.augmentation as K

        parts = list(module.children()) if isinstance(module, K.AugmentationSequential) else [module]
        # An augmentation vqclip does not price yet counts as the most expensive one: estimates err on the safe side.
        self.steps = [(AUG_SAVED_BATCHES.get(type(m).__name__, max(AUG_SAVED_BATCHES.values())),
                       tuple(m.flags["size"]) if isinstance(m, K.RandomResizedCrop) else None) for m in parts]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for batches, size in self.steps:
            x = _Charge.apply(x, batches)
            if size is not None:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x


def _stand_in_for_kornia(objective) -> None:
    """Replace every kornia augmentation the objective holds (its cutout makers, its views) by a stand-in."""
    import kornia.augmentation as K

    kinds = (K.AugmentationSequential, K.AugmentationBase2D)
    for holder in _held(objective):
        if isinstance(holder, torch.nn.Module):
            for parent in [holder, *holder.modules()]:
                for name, child in list(parent.named_children()):
                    if isinstance(child, kinds):
                        setattr(parent, name, _AugmentationStandIn(child))


def _held(objective) -> list:
    """What an objective holds in its attributes, lists and dicts flattened."""
    out = []
    for value in vars(objective).values():
        out += list(value.values()) if isinstance(value, dict) else list(value) if isinstance(value, (list, tuple)) else [value]
    return out


def _objective_to_meta(objective) -> None:
    """Move the objective's tensors and modules (built on the CPU) to meta."""
    def move(v):
        return v.to("meta") if isinstance(v, (torch.Tensor, torch.nn.Module)) else v

    for name, value in vars(objective).items():
        if isinstance(value, dict):
            value = {k: move(v) for k, v in value.items()}
        elif isinstance(value, (list, tuple)):
            value = type(value)(move(v) for v in value)
        setattr(objective, name, move(value))


class _BuildPerceptor:
    """A meta perceptor as an objective's build() sees it: text embeddings as CPU zeros of the right shape.

    kornia's modules cannot even be moved to meta, so objectives are built on the CPU, their kornia
    modules stood in for, and then moved; every other attribute is the meta perceptor's.
    """

    def __init__(self, perceptor):
        self._perceptor = perceptor

    def __getattr__(self, name: str):
        return getattr(self._perceptor, name)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.zeros(len(texts), self._perceptor.embed_dim)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


# ----------------------------------------------------------------------------------------------
# The render's models on meta


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


class _MetaTokenizer:
    """Token ids of the right shape: on meta the text tower needs shapes, not words."""

    def __init__(self, context_length: int):
        self.context_length = context_length

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.zeros(len(texts), self.context_length, dtype=torch.long)


def _meta_perceptor(spec: str | dict):
    """A :class:`~vqclip.models.clip.Perceptor` of the architecture load_perceptor builds (QuickGELU where the weights need it), on meta."""
    from open_clip import get_model_preprocess_cfg

    from vqclip.models.clip import Perceptor, build_architecture

    label = spec if isinstance(spec, str) else str(spec.get("name") or Path(str(spec.get("config", "local"))).stem)
    try:
        with _quiet():
            model = build_architecture(spec)
    except ConfigError as exc:  # the resolver's one line, under the setting's name
        raise ConfigError(f"models.clip: {str(exc).removeprefix('CLIP ')}") from None
    cfg = get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    tokenizer = _MetaTokenizer(int(getattr(model, "context_length", 77)))
    return Perceptor(model, tokenizer, label, size, cfg.get("mean", (0.5,) * 3), cfg.get("std", (0.5,) * 3)).to("meta")


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


#: the option of each objective that sets its batch (what ``cutn`` means in :meth:`Estimator.step`).
_BATCH_OPTION = {"cutouts": "cutn", "views": "count"}


# ----------------------------------------------------------------------------------------------
# The estimator


class Estimator:
    """A render config's generator and objective on meta; :meth:`step` runs production's step() at one size."""

    def __init__(self, cfg):
        from vqclip.production.engines import get_engine
        from vqclip.production.prompts import build_timeline

        g = cfg.generation
        self.engine = get_engine(g.engine)
        if self.engine.family != "optimized":
            raise ConfigError(f"generation.engine: {g.engine!r} has no step to estimate; vqclip.estimate_config covers it")
        self.cfg = cfg
        self.timeline = build_timeline(cfg.prompts, cfg.animation.frames)
        self.perceptors = [_meta_perceptor(p.spec) for p in cfg.models.clip]
        if not self.perceptors:
            raise ConfigError("models.clip: [] is not allowed; give at least one perceptor")
        self.model_label = self.engine.name
        self._generator(16, 16)  # fails early on a bad models.vqgan

    @classmethod
    def of(cls, model: str | dict | None = "imagenet_f16_16384", clip: Sequence[str | dict] = ("ViT-B-32/openai",),
           augmentations: Sequence[str] = ("affine", "perspective", "jitter", "erasing"), cutn: int = 32) -> "Estimator":
        """An estimator of a VQGAN-CLIP render with these models and cutouts (model ``None`` = the pixel generator)."""
        from vqclip.settings.render import load_config

        generation: dict[str, Any] = {"cutouts": {"augmentations": list(augmentations), "cutn": cutn}}
        if model is None:
            generation.update(engine="pixels", objective="cutouts")
        models: dict[str, Any] = {"clip": [{"spec": s} for s in clip]}
        if model is not None:
            models["vqgan"] = model
        return cls(load_config({"prompts": {"texts": "an estimate"}, "models": models, "generation": generation}))

    @property
    def factor(self) -> int:
        """The generator's downsampling (the VQGAN's factor; 1 for pixels)."""
        return self._factor

    def _generator(self, width: int, height: int, precision=None):
        """The render's generator at ``width`` x ``height`` on meta, and the bytes and storages of every model's weights."""
        from vqclip.production.engines.base import EngineContext

        ctx = EngineContext(self.cfg, torch.device("meta"), height, width, precision=precision, timeline=self.timeline)
        generator = self.engine.build_meta(ctx)
        model = getattr(generator, "model", None)  # the VQGAN; pixels have none
        self._factor = int(getattr(model, "factor", 1))
        self.model_label = getattr(generator, "label", self.engine.name)
        keys, weights = _param_storages(*self.perceptors, *([model] if model is not None else []))
        return generator, keys, weights

    def _objective(self, ctx, batch: int | None):
        """The render's objective on meta, its batch option set to ``batch``, kornia stood in for."""
        from vqclip.production.objectives import get_objective
        from vqclip.production.prompts import PromptBank

        g = self.cfg.generation
        options = g.objective_options
        key = _BATCH_OPTION.get(g.objective)
        if batch is not None and key is not None:
            options = dataclasses.replace(options, **{key: batch})
        cfg = dataclasses.replace(self.cfg, generation=dataclasses.replace(g, sections={**g.sections, g.objective: options}))
        ctx = dataclasses.replace(ctx, config=cfg, device=torch.device("cpu"))
        prompts = self.timeline.all_prompts()
        embeds = [{p: torch.zeros(perceptor.embed_dim, device="meta") for p in prompts} for perceptor in self.perceptors]
        bank = PromptBank(self.timeline, [p.weight for p in self.cfg.models.clip], embeds)
        objective = get_objective(g.objective).build(ctx, [_BuildPerceptor(p) for p in self.perceptors], bank)
        _stand_in_for_kornia(objective)
        _objective_to_meta(objective)
        return objective, int(getattr(options, key)) if key else 0

    def step(self, width: int, height: int, cutn: int | None = None, precision: str | None = None) -> StepEstimate:
        """Run one :func:`~vqclip.production.step.step` at ``width`` x ``height`` on meta and return its estimate.

        ``cutn`` replaces the objective's batch (cutouts: cutn, views: count); None keeps the config's.
        """
        from torch.utils.flop_counter import FlopCounterMode

        from vqclip.production.step import make_optimizer, step

        if width < 16 or height < 16:
            raise ConfigError(f"size: {width}x{height} is not allowed; width and height must be at least 16")
        key = _BATCH_OPTION.get(self.cfg.generation.objective, "cutn")
        if cutn is not None and (isinstance(cutn, bool) or not isinstance(cutn, int) or cutn < 1):
            raise ConfigError(f"generation.{self.cfg.generation.objective}.{key}: {cutn!r} is not allowed; use a whole number >= 1")
        prec = _resolve_precision(precision or self.cfg.generation.precision)
        meta = torch.device("meta")
        precision_ = _MetaPrecision(prec, meta, {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec), None)
        g = self.cfg.generation
        generator, param_keys, weights_bytes = self._generator(width, height, precision_)
        objective, batch = self._objective(generator.ctx, cutn)
        optimizer = make_optimizer(g.optimizer, generator, g.lr)
        # A later frame (the usual step): it has a reference, so a stability pull is part of the step when weighted.
        frame = min(1, self.cfg.animation.frames - 1)
        reference = torch.zeros(1, 3, height, width, device=meta) if frame else None
        activation = transient = 0
        tflop = 0.0
        # An objective may use another perceptor each iteration (views: alternate): one step per perceptor, the largest counts.
        with torch.random.fork_rng(devices=[]):  # cutout sizes come from torch's CPU generator: leave a render's stream alone
            torch.manual_seed(0)
            for iteration in range(len(self.perceptors)):
                saved = _Saved(param_keys)
                with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t), \
                        FlopCounterMode(display=False) as fc, _OnMeta(None):
                    step(generator, objective, optimizer, precision_, frame, iteration, reference)
                activation, transient = max(activation, saved.total), max(transient, 2 * saved.largest)
                tflop = max(tflop, fc.get_total_flops() / 1e12)
        state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor) and t.is_meta]
        params = generator.parameters()
        return StepEstimate(
            width=width, height=height, model=self.model_label, clip=[p.name for p in self.perceptors], cutn=batch,
            precision=prec, weights_bytes=weights_bytes, activation_bytes=activation, transient_bytes=transient,
            optimizer_bytes=sum(_nbytes(t) for t in [*params, *params, *state]),  # the tensors, their gradients, the state
            tflop=tflop,
        )

    def largest_fitting(self, width: int, height: int, budget_bytes: int, cutn: int | None = None, precision: str | None = None,
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
    """Estimate one step of a VQGAN-CLIP render (model ``None`` = the pixel generator with cutouts)."""
    return Estimator.of(model, clip, augmentations, cutn).step(width, height, None, precision)


def estimate_config(cfg, precision: str | None = None):
    """Estimate a :class:`~vqclip.settings.render.RenderConfig` by its engine: one step (optimized) or the whole render (sampled)."""
    if _is_sampled(cfg):
        return _sampled_estimate(cfg, cfg.size.width, cfg.size.height, precision)
    return Estimator(cfg).step(cfg.size.width, cfg.size.height, None, precision)


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


# ----------------------------------------------------------------------------------------------
# The GPU here, and whether a render fits it


def detect_gpu() -> GpuInfo | None:
    """The first CUDA device's name, total and free memory (``torch.cuda.mem_get_info``); None without one."""
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(0)
    return GpuInfo(torch.cuda.get_device_name(0), int(total), int(free))


def check_fit(target, width: int | None = None, height: int | None = None, cutn: int | None = None,
              precision: str | None = None, gpu: GpuInfo | GpuSpec | None = None) -> FitReport:
    """Estimate a render (a RenderConfig, or an Estimator with a size) against ``gpu`` (default: this machine's, else a T4).

    ``cutn`` and ``precision`` default to the config's.
    """
    if isinstance(target, Estimator):
        est = target
        if width is None or height is None:
            raise ConfigError("check_fit: an Estimator needs width and height")
    elif _is_sampled(target):
        return _sampled_fit(target, precision, gpu or detect_gpu() or T4)
    else:
        est = Estimator(target)
        width, height = target.size.width, target.size.height
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
    est = Estimator.of(model, clip, cutn=cutn)
    lines = ["| size | fp16 GiB | fp16 s/step | fp32 GiB | fp32 s/step | TFLOP/step |", "|---|---|---|---|---|---|"]
    for w, h in sizes:
        a, b = est.step(w, h, cutn, "fp16"), est.step(w, h, cutn, "fp32")
        lines.append(f"| {w}x{h} | {a.total_gib:.1f} | {a.seconds_per_iteration():.2f} | {b.total_gib:.1f} | "
                     f"{b.seconds_per_iteration():.2f} | {a.tflop:.2f} |")
    return "\n".join(lines)
