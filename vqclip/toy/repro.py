"""Deterministic training runs: seed, thread count and deterministic kernels, restored afterwards."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def reproducible(seed: int, threads: int) -> Iterator[torch.Generator]:
    """Seed torch, fix the thread count and use deterministic kernels; yield a seeded generator; restore settings."""
    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])
