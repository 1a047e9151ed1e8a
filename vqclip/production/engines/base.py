"""The interface every engine implements: what is optimized for a frame and how it becomes pixels.

An engine owns the parameters of one frame (a VQGAN latent, raw pixels, a diffusion latent...).
The render loop only ever asks it to start from an image (or from nothing), to synthesize the frame
as a differentiable ``(1,3,H,W)`` image in [0,1] at exactly the output size, and to tidy up after
each optimizer step. Engine-specific settings live in the engine's own ``Options`` dataclass and
appear in a preset under ``generation.<engine name>``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

__all__ = ["Engine", "EngineContext"]


@dataclass
class EngineContext:
    """What an engine is built with: the resolved config, the device and the output size."""

    config: Any  # vqclip.settings.render.RenderConfig, fully resolved
    device: torch.device
    height: int
    width: int
    channels_last: bool = False  # NHWC convolutions: faster with fp16/bf16 tensor cores on CUDA


class Engine(ABC):
    """One way of turning parameters into a frame; subclasses register in ``vqclip.production.engines``."""

    name: ClassVar[str]
    Options: ClassVar[type]  # a dataclass of the engine's own settings, with defaults
    #: settings outside ``generation.<name>`` this engine never reads -> what to set instead; giving one is a
    #: ConfigError (vqclip.settings.render) and settings.yaml leaves them out, so nothing is silently ignored.
    ignored_settings: ClassVar[dict[str, str]] = {}

    @classmethod
    def validate_options(cls, options: Any, key: str) -> None:
        """Raise ConfigError for option values this engine cannot use (``key`` prefixes messages)."""

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

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors needed to continue this frame exactly after a restart."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> str:
        """A short model description for PNG metadata."""
        return self.name

    # Optional hooks with defaults that keep the shared loop as it is; an engine with its own method
    # (pixels: paper 000's views, cosine loss, temperature and schedule) overrides what it needs.

    @classmethod
    def configure_prompts(cls, prompts_cfg: Any, options: Any) -> Any:
        """Adjust the ``prompts`` section at load time (e.g. scene lengths); default: unchanged.

        Must be idempotent: ``settings.yaml`` holds the adjusted section and is loaded through this
        hook again (`vqclip render OUT/settings.yaml`, ``--resume``), so a second pass changes nothing.
        """
        return prompts_cfg

    @classmethod
    def frame_iterations(cls, cfg: Any, frame: int) -> int:
        """Optimizer steps for ``frame``; default: ``generation.iterations_first_frame`` / ``_per_frame``."""
        g = cfg.generation
        return g.iterations_first_frame if frame == 0 else g.iterations_per_frame

    @classmethod
    def learning_rate(cls, cfg: Any) -> float:
        """The optimizer's learning rate; default: ``generation.lr``."""
        return cfg.generation.lr

    def prepare(self, perceptors: list, bank: Any) -> None:
        """Called once the perceptors and the prompt bank exist (before the first frame)."""

    def loss(self, frame: int, step: int, image: torch.Tensor, reference: torch.Tensor | None) -> tuple[torch.Tensor, dict] | None:
        """The engine's own objective for one step, as ``(loss, parts)``; None: the shared cutouts + prompt loss."""
        return None

    @torch.no_grad()
    def export_image(self) -> torch.Tensor:
        """The frame as written to disk (e.g. denoised); the next frame still starts from :meth:`image`."""
        return self.image()
