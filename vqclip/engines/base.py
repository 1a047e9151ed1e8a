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

    config: Any  # vqclip.config.RenderConfig, fully resolved
    device: torch.device
    height: int
    width: int
    channels_last: bool = False  # NHWC convolutions: faster with fp16/bf16 tensor cores on CUDA


class Engine(ABC):
    """One way of turning parameters into a frame; subclasses register in ``vqclip.engines``."""

    name: ClassVar[str]
    Options: ClassVar[type]  # a dataclass of the engine's own settings, with defaults

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
