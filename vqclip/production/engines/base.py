"""The seam every engine plugs into: two families, one render loop.

*Optimized* engines are a :class:`Generator` (what is optimized: a VQGAN latent, RGB pixels) plus an
:class:`Objective` (how a frame is judged: random cutouts + spherical prompt loss, or paper 000's
views + cosine + negatives). They meet in :func:`vqclip.production.step.step`; a frame is many steps.
*Sampled* engines (:class:`SampledEngine`, diffusion) make a chunk of frames per call and report their
denoising steps through the same events. Each part owns its settings section ``generation.<name>``
(its ``Options`` dataclass), so every setting has exactly one reader.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

__all__ = ["EngineContext", "Generator", "Objective", "SampledEngine"]


@dataclass
class EngineContext:
    """What an engine part is built with: the resolved config, the device, the output size and the run's seed."""

    config: Any  # vqclip.settings.render.RenderConfig, fully resolved
    device: torch.device
    height: int
    width: int
    channels_last: bool = False  # NHWC convolutions: faster with fp16/bf16 tensor cores on CUDA
    precision: Any = None  # vqclip.production.precision.Precision
    seed: int = 0
    timeline: Any = None  # vqclip.production.prompts.Timeline: timeline.prompts_at(f) -> [(Prompt, weight)]
    motions: list = field(default_factory=list)  # vqclip.production.animate.Motion per frame
    callback: Callable[[dict], Any] | None = None  # the render's event route: model downloads report through it

    @property
    def options(self) -> Callable[[str], Any]:
        """``ctx.options("pixels")``: the options dataclass of section ``generation.<name>``."""
        return lambda name: self.config.generation.sections[name]


class Generator(ABC):
    """What is optimized for a frame; subclasses register in ``vqclip.production.engines.ENGINES``."""

    name: ClassVar[str]
    Options: ClassVar[type]  # dataclass of generation.<name>
    family: ClassVar[str] = "optimized"
    default_objective: ClassVar[str] = "cutouts"
    reads_models: ClassVar[tuple[str, ...]] = ()  # models.* keys this generator reads (besides models.clip)

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values this generator cannot use (``key`` prefixes messages)."""

    @classmethod
    def defaults(cls, options: Any) -> dict[str, Any]:
        """Values of the shared optimized settings left null: iterations_first_frame, iterations_per_frame, lr, stability_weight."""
        raise NotImplementedError

    @classmethod
    def configure_prompts(cls, prompts_cfg: Any, options: Any) -> Any:
        """Adjust the ``prompts`` section at load time (idempotent: settings.yaml passes through it again)."""
        return prompts_cfg

    @classmethod
    def build(cls, ctx: EngineContext) -> "Generator":
        """Load what the generator needs (e.g. the VQGAN) for the output size."""
        raise NotImplementedError

    @classmethod
    def build_meta(cls, ctx: EngineContext) -> "Generator":
        """The generator with its architecture on ``ctx.device`` (meta) and no weights: what the estimator steps."""
        return cls(ctx)

    @property
    def stability_weight(self) -> float:
        """Weight of the L1 pull toward the warped previous frame (paper 000 eq. 2), resolved by the config."""
        return float(self.ctx.config.generation.stability_weight)

    @abstractmethod
    def start(self, image01: torch.Tensor | None) -> None:
        """Set the frame's parameters from an image ``(1,3,H,W)`` in [0,1], or randomly when None."""

    @abstractmethod
    def parameters(self) -> list[torch.Tensor]:
        """The tensors the optimizer updates (the same objects across frames)."""

    @abstractmethod
    def synth(self) -> torch.Tensor:
        """The frame as a differentiable ``(1,3,H,W)`` image in [0,1] at the output size."""

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to keep a latent inside its valid range)."""

    @torch.no_grad()
    def image(self) -> torch.Tensor:
        """The current frame, detached, as ``(1,3,H,W)`` float32 in [0,1]."""
        return self.synth().detach().float().clamp(0, 1)

    @torch.no_grad()
    def export_image(self) -> torch.Tensor:
        """The frame as written to disk (e.g. denoised); the next frame still starts from :meth:`image`."""
        return self.image()

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors needed to continue this frame exactly after a restart."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> str:
        """A short model description for PNG metadata."""
        return self.name


class Objective(ABC):
    """How a frame is judged: ``loss(frame, iteration, image)`` against the prompts at that frame."""

    name: ClassVar[str]
    Options: ClassVar[type]  # dataclass of generation.<name>

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values this objective cannot use."""

    @classmethod
    @abstractmethod
    def build(cls, ctx: EngineContext, perceptors: list, bank: Any) -> "Objective":
        """Make the objective from the frozen perceptors and the prompt bank (embeddings per perceptor)."""

    @abstractmethod
    def loss(self, frame: int, iteration: int, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The prompt loss of one step and its named parts (floats, for the iteration event)."""


class SampledEngine(ABC):
    """A diffusion engine: makes a chunk of frames per :meth:`sample` call; resume happens at chunk boundaries."""

    name: ClassVar[str]
    Options: ClassVar[type]  # dataclass of generation.<name>
    family: ClassVar[str] = "sampled"
    reads_models: ClassVar[tuple[str, ...]] = ("diffusion",)

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values this engine cannot use."""

    @classmethod
    def configure_prompts(cls, prompts_cfg: Any, options: Any) -> Any:
        """Adjust the ``prompts`` section at load time; default: unchanged."""
        return prompts_cfg

    @classmethod
    @abstractmethod
    def build(cls, ctx: EngineContext) -> "SampledEngine":
        """Load the engine's components (models.diffusion ...)."""

    @classmethod
    @abstractmethod
    def chunks(cls, cfg: Any) -> list[range]:
        """Frame ranges, one per :meth:`sample` call, in order, covering ``range(animation.frames)``."""

    @classmethod
    def chunk_iterations(cls, cfg: Any, frames: range) -> int:
        """Denoising steps one chunk reports (for the progress total); default 1."""
        return 1

    @abstractmethod
    def sample(self, frames: range, emit: Callable[[dict], Any]) -> list[torch.Tensor] | None:
        """``(1,3,H,W)`` float32 in [0,1] per frame of the chunk; None when ``emit`` returned "stop"."""

    def state_dict(self) -> dict:
        """What later chunks need (e.g. the anchor frame's latents), as CPU tensors."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> str:
        """A short model description for PNG metadata."""
        return self.name
