"""THE optimization step of an optimized engine: the render loop, the benchmark, the estimator and the tests call it.

synth -> objective loss -> stability pull toward the warped previous frame (paper 000 eq. 2) ->
backward through the precision's scaler -> optimizer step -> the generator's after_step (clamp).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["StepResult", "step", "make_optimizer"]


@dataclass
class StepResult:
    """One step's loss (a float, after the step) and its named parts."""

    loss: float
    parts: dict[str, float] = field(default_factory=dict)


def make_optimizer(name: str, generator, lr: float) -> torch.optim.Optimizer:
    """The ``generation.optimizer`` named ``name`` over the generator's parameters."""
    from vqclip.settings.render import OPTIMIZERS

    return getattr(torch.optim, OPTIMIZERS[name])(generator.parameters(), lr=lr)


def step(generator, objective, optimizer, precision, frame: int, iteration: int,
         reference: torch.Tensor | None) -> StepResult:
    """One optimizer step on ``frame`` (its ``iteration``-th), pulled toward ``reference`` when given."""
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        image = generator.synth()
        loss, parts = objective.loss(frame, iteration, image)
        weight = generator.stability_weight
        if weight > 0 and reference is not None:
            stability = (image.float() - reference.float()).abs().mean()  # paper 000 eq. 2
            loss = loss + weight * stability
            parts["stability"] = float(stability.detach())
    precision.step(loss, optimizer)
    generator.after_step()
    return StepResult(float(loss.detach()), parts)
